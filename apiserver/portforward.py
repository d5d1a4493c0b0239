"""``pods/portforward``: kubectl's SPDY/3.1 session, terminated here, relayed to the node agent.

kubectl 1.33 opens ``GET .../pods/NAME/portforward`` as a WebSocket with the subprotocol
:data:`TUNNEL_PROTOCOL`; every binary message then carries SPDY/3.1 bytes (the WebSocket is a
byte pipe). Per forwarded TCP connection the client opens two streams sharing the headers
``port`` and ``requestID``: ``streamType: error`` (which it half-closes at once) and
``streamType: data``. This module serves that session with :mod:`machinery.spdy`:

- when both streams of a ``requestID`` are open (within :data:`PAIR_TIMEOUT`), one WebSocket is
  opened to the node agent's ``/portForward/{ns}/{pod}?port=N`` (protocol in
  :mod:`kubelet.portforward`: binary = bytes, empty binary = half-close, text = an error);
- data-stream bytes go to the agent, the agent's bytes come back on the data stream; a FIN
  either way is passed on as a half-close; a reset data stream ends the connection;
- an error (bad port header, agent unreachable, nothing listening in the pod) is written as
  text on the error stream, which is then closed — kubectl prints it as
  ``an error occurred forwarding L -> R: <text>``. Both streams are closed when the forwarded
  connection ends, as the Kubernetes kubelet does.

Refusals before the upgrade (no such pod, no node, no SPDY subprotocol offered) are HTTP
``Status`` responses. kubectl's fallback, a plain ``Upgrade: SPDY/3.1`` POST, is not served:
it gets ``400 Upgrade request required`` from the REST path like any non-WebSocket request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import websockets
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers as HttpHeaders
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from apiserver import proxy
from machinery import errors, spdy

log = logging.getLogger(__name__)

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
AGENT_PROTOCOL = "portforward.tugboat.io"
WS_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/portforward"
PAIR_TIMEOUT = 30.0


class _LenientHandshake(ServerProtocol):
    def process_subprotocol(self, headers: HttpHeaders) -> Subprotocol | None:
        offered = [
            Subprotocol(p.strip())
            for value in headers.get_all("Sec-WebSocket-Protocol")
            for p in value.split(",")
            if p.strip()
        ]
        return self.select_subprotocol(offered)


class WebSocketProtocol(WebSocketsSansIOProtocol):  # type: ignore[misc]
    """uvicorn's WebSocket protocol, accepting subprotocol names that are not RFC 6455 tokens.

    ``SPDY/3.1+portforward.k8s.io`` contains ``/``, which the ``websockets`` handshake rejects
    (400 before the application sees the request); Kubernetes' server and kubectl accept it.
    The application still chooses the subprotocol in its ``accept``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _LenientHandshake(
            extensions=self.conn.available_extensions,
            max_size=self.conn.max_size,
            logger=self.conn.logger,
        )


class WebSocketTransport:
    """A Starlette WebSocket as a :class:`machinery.spdy.Transport` (binary messages)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return b""
                data = message.get("bytes")
                if data:
                    return bytes(data)
        except (WebSocketDisconnect, RuntimeError):
            return b""

    async def write(self, data: bytes) -> None:
        try:
            await self.ws.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError) as err:
            raise ConnectionError(f"client went away: {err}") from None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


@dataclass
class _Pair:
    error: spdy.Stream | None = None
    data: spdy.Stream | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)


class Forwarder:
    """One kubectl session: pairs streams by ``requestID`` and forwards each pair."""

    def __init__(self, pod: dict[str, Any], agent: str) -> None:
        meta = pod.get("metadata") or {}
        self.namespace, self.name = meta.get("namespace", ""), meta.get("name", "")
        self.agent = agent
        self.pairs: dict[str, _Pair] = {}

    async def on_stream(self, stream: spdy.Stream) -> None:
        kind = stream.headers.get("streamtype")
        request_id = stream.headers.get("requestid", "")
        if kind not in ("error", "data"):
            await stream.reset(spdy.PROTOCOL_ERROR)
            return
        pair = self.pairs.setdefault(request_id, _Pair())
        if getattr(pair, kind) is not None:
            await stream.reset(spdy.PROTOCOL_ERROR)
            return
        setattr(pair, kind, stream)
        if pair.error is None or pair.data is None:
            try:
                await asyncio.wait_for(pair.complete.wait(), PAIR_TIMEOUT)
            except TimeoutError:
                self.pairs.pop(request_id, None)
                await _fail(stream if kind == "error" else None, "timed out waiting for streams")
                await stream.reset(spdy.CANCEL)
            return
        pair.complete.set()
        self.pairs.pop(request_id, None)
        await self.forward(pair.error, pair.data)

    async def forward(self, error: spdy.Stream, data: spdy.Stream) -> None:
        """Forward one connection; both streams are closed when it ends."""
        port = error.headers.get("port") or data.headers.get("port") or ""
        try:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise _Failed(f'invalid port "{port}"')
            url = (
                f"ws://{self.agent}/portForward/{quote(self.namespace, safe='')}/"
                f"{quote(self.name, safe='')}?port={int(port)}"
            )
            try:
                upstream = await websockets.connect(
                    url,
                    subprotocols=[AGENT_PROTOCOL],  # type: ignore[list-item]
                    max_size=None,
                    open_timeout=proxy.CONNECT_TIMEOUT,
                    ping_interval=None,
                )
            except (OSError, TimeoutError, websockets.WebSocketException) as err:
                raise _Failed(f"error dialing node agent {self.agent}: {err}") from None
            async with upstream:
                await _relay(data, upstream)
        except _Failed as failure:
            await _fail(error, str(failure))
        finally:
            with contextlib.suppress(spdy.StreamReset, ConnectionError):
                await data.close()
            with contextlib.suppress(spdy.StreamReset, ConnectionError):
                await error.close()


class _Failed(Exception):
    pass


async def _fail(error: spdy.Stream | None, message: str) -> None:
    if error is not None:
        with contextlib.suppress(spdy.StreamReset, ConnectionError):
            await error.write(message.encode())


async def _relay(data: spdy.Stream, upstream: Any) -> None:
    """Relay until the agent closes, or the client resets the data stream."""

    async def client_to_agent() -> None:
        while chunk := await data.read():
            await upstream.send(chunk)
        if data.reset_status is not None:
            await upstream.close()  # the client gave up on this connection
        else:
            await upstream.send(b"")  # the client's half-close

    async def agent_to_client() -> None:
        async for message in upstream:
            if isinstance(message, str):
                raise _Failed(message)
            if not message:
                await data.close()
            else:
                await data.write(message)

    sender = asyncio.create_task(client_to_agent())
    try:
        await agent_to_client()
    except (websockets.ConnectionClosed, spdy.StreamReset, ConnectionError):
        pass
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


def websocket_endpoint(registry: Any) -> Any:
    """A Starlette WebSocket endpoint for :data:`WS_PATH` over ``registry``."""

    async def endpoint(ws: WebSocket) -> None:
        p = ws.path_params
        offered = [x.strip() for x in (ws.headers.get("sec-websocket-protocol") or "").split(",")]
        try:
            pod, node = proxy.resolve(registry, p["namespace"], p["name"])
            agent = proxy.kubelet_address(node)
            if TUNNEL_PROTOCOL not in offered:
                raise errors.BadRequest(
                    f"pods/portforward needs the WebSocket subprotocol {TUNNEL_PROTOCOL}"
                )
        except errors.ApiError as err:
            await proxy._deny(ws, err)
            return
        await ws.accept(subprotocol=TUNNEL_PROTOCOL)
        forwarder = Forwarder(pod, agent)
        session = spdy.Session(WebSocketTransport(ws), client=False, on_stream=forwarder.on_stream)
        await session.run()

    return endpoint
