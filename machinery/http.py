"""The HTTP layer under :class:`machinery.client.AsyncClient`.

Controllers, the scheduler and node agents make thousands of API requests a second, so the
client's own CPU per request matters: with aiohttp (whose HTTP parser is compiled) a GET of a
small object costs about 0.23 ms of client CPU here, against 1.9 ms with httpx
(``bench``-style loop of 2,000 GETs, ``time.process_time``). :class:`AiohttpTransport` is
therefore the default; :class:`HttpxTransport` serves a caller that injects an
``httpx.AsyncBaseTransport`` (the unit tests' in-process fake API server).

Both return a :class:`Reply` and raise httpx's exception types for transport failures
(``httpx.ConnectError``, ``httpx.TimeoutException``, ``httpx.RemoteProtocolError`` ...), so
callers catch one family whichever transport runs.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import httpx
import orjson

from machinery import errors

log = logging.getLogger(__name__)


@dataclass
class Reply:
    """A complete HTTP response: the subset of ``httpx.Response`` the client uses."""

    status_code: int
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    reason_phrase: str = ""

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


def error_from_response(resp: Reply | httpx.Response) -> errors.ApiError:
    """The :mod:`machinery.errors` exception for a failed response (``Status`` body or not)."""
    try:
        body = orjson.loads(resp.content) if resp.content else None
    except orjson.JSONDecodeError:
        body = None
    if not (isinstance(body, dict) and body.get("kind") == "Status"):
        text = resp.text.strip()[:1000] if resp.content else ""
        body = {"message": text or f"HTTP {resp.status_code} {resp.reason_phrase}".strip()}
    err = errors.from_status(body, resp.status_code)
    err.code = resp.status_code  # type: ignore[misc]
    retry_after = resp.headers.get("Retry-After")
    if retry_after and retry_after.isdigit():
        err.details.setdefault("retryAfterSeconds", int(retry_after))
    return err


class Transport(Protocol):
    """What :class:`~machinery.client.AsyncClient` needs from an HTTP library."""

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply: ...

    def lines(
        self, path: str, params: Mapping[str, str], read_timeout: float | None
    ) -> AsyncIterator[bytes]:
        """GET ``path`` and yield its body line by line as it arrives (a watch); an error
        status is raised as its :class:`~machinery.errors.ApiError`."""
        ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """Keep-alive connections through one lazily made ``aiohttp.ClientSession`` (a session
    belongs to the event loop it was made on, and clients are often built outside one)."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        verify: bool | ssl.SSLContext,
        timeout: float,
        max_connections: int = 100,
    ) -> None:
        self.base_url = base_url
        self.headers = dict(headers)
        self.ssl = verify
        self.timeout = timeout
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl, limit=self.max_connections),
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.timeout, sock_read=self.timeout
                ),
                trust_env=False,  # a control plane on loopback must not go through $HTTP_PROXY
            )
        return self._session

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        try:
            async with self._open().request(
                method, self.base_url + path, params=params, data=content, headers=headers
            ) as resp:
                body = await resp.read()
                reply = Reply(resp.status, body, resp.headers, resp.reason or "")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise _as_httpx(e) from e
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %d %s", method, path, reply.status_code, reply.reason_phrase)
        return reply

    async def lines(
        self, path: str, params: Mapping[str, str], read_timeout: float | None
    ) -> AsyncIterator[bytes]:
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=read_timeout)
        try:
            async with self._open().get(
                self.base_url + path, params=params, timeout=timeout
            ) as resp:
                if resp.status >= 400:
                    body = await resp.read()
                    raise error_from_response(
                        Reply(resp.status, body, resp.headers, resp.reason or "")
                    )
                pending = b""
                async for chunk in resp.content.iter_any():
                    *complete, pending = (pending + chunk).split(b"\n")
                    for line in complete:
                        yield line
                if pending:
                    yield pending
        except (aiohttp.ClientError, TimeoutError) as e:
            raise _as_httpx(e) from e

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _as_httpx(e: BaseException) -> httpx.TransportError:
    """The httpx exception a failure of aiohttp corresponds to."""
    message = str(e) or type(e).__name__
    if isinstance(e, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return (
            httpx.ConnectTimeout(message)
            if isinstance(e, TimeoutError)
            else httpx.ConnectError(message)
        )
    if isinstance(e, TimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(e, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message)
    return httpx.ReadError(message)


class HttpxTransport:
    """The same interface over ``httpx.AsyncClient`` (for an injected httpx transport)."""

    def __init__(self, base_url: str, headers: Mapping[str, str], **httpx_options: Any) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=dict(headers), trust_env=False, **httpx_options
        )
        self.timeout = self._http.timeout

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        resp = await self._http.request(
            method, path, params=params, content=content, headers=headers
        )
        return Reply(resp.status_code, resp.content, resp.headers, resp.reason_phrase)

    async def lines(
        self, path: str, params: Mapping[str, str], read_timeout: float | None
    ) -> AsyncIterator[bytes]:
        timeout = httpx.Timeout(self.timeout.connect, read=read_timeout)
        async with self._http.stream("GET", path, params=params, timeout=timeout) as resp:
            if resp.is_error:
                await resp.aread()
                raise error_from_response(resp)
            async for line in resp.aiter_lines():
                yield line.encode()

    async def aclose(self) -> None:
        await self._http.aclose()
