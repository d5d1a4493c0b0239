"""Serving TLS with uvicorn and handing the verified client certificate to the application.

uvicorn verifies a client certificate when ``ssl_cert_reqs=CERT_OPTIONAL`` and a CA are set,
but puts nothing about it in the ASGI scope. :func:`with_peer_cert` subclasses a uvicorn
protocol class (HTTP, and WebSocket, which takes the connection over after an upgrade) to read
the verified peer certificate once per connection, when the handshake is done, and to add the
ASGI TLS extension to the scope of every request on that connection:
``scope["extensions"]["tls"]["client_cert_subject"]`` is the subject of the verified
certificate as :meth:`ssl.SSLSocket.getpeercert` gives it (``((("commonName", "alice"),), ...)``)
and ``client_cert_name`` a readable form; no ``tls`` extension without a certificate. The dict
lives as long as the connection (authentication caches the user in it).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

Subject = tuple[tuple[tuple[str, str], ...], ...]


def peer_subject(transport: asyncio.BaseTransport) -> Subject | None:
    """The subject of the verified client certificate on ``transport`` (None without one).

    ``getpeercert()`` returns a non-empty dict only for a certificate that passed verification
    against the server's CA."""
    cert = transport.get_extra_info("peercert")
    return tuple(cert.get("subject") or ()) if cert else None


class _WithTls:
    """ASGI wrapper for one connection: adds its TLS facts to each scope."""

    __slots__ = ("app", "tls")

    def __init__(self, app: Any, tls: dict[str, Any]) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        ext = scope.get("extensions")
        if ext is None:
            scope["extensions"] = ext = {}
        ext["tls"] = self.tls
        await self.app(scope, receive, send)


def _tls_info(subject: Subject) -> dict[str, Any]:
    name = ",".join(f"{k}={v}" for rdn in reversed(subject) for k, v in rdn)
    return {"client_cert_subject": subject, "client_cert_name": name}


def with_peer_cert(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """A subclass of uvicorn protocol class ``base`` (HTTP, or WebSocket after an upgrade)
    whose requests carry the connection's verified client certificate in their scope."""

    def connection_made(self: Any, transport: asyncio.Transport) -> None:
        base.connection_made(self, transport)
        subject = peer_subject(transport)
        if subject:
            self.app = _WithTls(self.app, _tls_info(subject))

    return type(f"Tls{base.__name__}", (base,), {"connection_made": connection_made})


def uvicorn_options(
    cert_file: str,
    key_file: str,
    client_ca_file: str | None,
    ws: type[asyncio.Protocol] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` serving TLS, asking for (not requiring) a client
    certificate signed by ``client_ca_file``; ``ws`` is the WebSocket protocol class to extend
    (default: uvicorn's)."""
    opts: dict[str, Any] = {
        "ssl_certfile": cert_file,
        "ssl_keyfile": key_file,
        "http": with_peer_cert(AutoHTTPProtocol),
        "ws": with_peer_cert(ws or AutoWebSocketsProtocol),  # type: ignore[arg-type]
    }
    if client_ca_file:
        opts |= {"ssl_ca_certs": client_ca_file, "ssl_cert_reqs": ssl.CERT_OPTIONAL}
    return opts
