"""Exec and attach through a CRI runtime's streaming server, relayed to a channel WebSocket.

CRI ``Exec``/``Attach`` answer with a URL on the runtime's streaming server (containerd's).
:func:`open_session` speaks Kubernetes' remotecommand protocol ``v4.channel.k8s.io`` over
SPDY/3.1 to it, as the Kubernetes API server does to a kubelet: one ``POST`` with
``Upgrade: SPDY/3.1``, then one client-opened SPDY stream per ``streamType`` (``error``, then
``stdin``, ``stdout``, ``stderr``, ``resize`` for those the CRI request asked for; the runtime
waits for exactly that set). SPDY rather than the runtime's WebSocket endpoint because only
SPDY can end stdin on its own (a FIN on the stdin stream), which ``echo x | kubectl exec -i``
needs.

:func:`relay` joins a client WebSocket (``v5.channel.k8s.io`` or ``v4.channel.k8s.io``) to a
session:

- channel 0 → the stdin stream; the v5 close frame ``[255, 0]`` → FIN on the stdin stream;
  channel 4 (``{"Width","Height"}``) → the resize stream;
- stdout and stderr bytes go out on channels 1 and 2 as the runtime sends them;
- once the runtime ends the session, the Status it wrote on the error stream (``Success``,
  ``NonZeroExitCode`` with the exit code, or a failure) goes out on channel 3, after all the
  output; an empty error stream counts as ``Success`` (as in client-go);
- if the client leaves first, the session is closed (the command is not killed, as in
  Kubernetes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect

from machinery import channels, spdy
from machinery.channels import CLOSE, RESIZE, STATUS, STDERR, STDIN, STDOUT

PROTOCOL = "v4.channel.k8s.io"
CONNECT_TIMEOUT = 10.0
MAX_ERROR_BODY = 64 * 1024


class StreamError(Exception):
    """The streaming server could not be reached or refused the session."""


@dataclass(frozen=True)
class Streams:
    """Which streams a session has (the same flags go into the CRI request)."""

    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False

    def types(self) -> list[str]:
        """The ``streamType`` of every stream to open, in client-go's order."""
        wanted = [
            ("error", True),
            ("stdin", self.stdin),
            ("stdout", self.stdout),
            ("stderr", self.stderr and not self.tty),
            ("resize", self.tty),
        ]
        return [name for name, on in wanted if on]


class Session:
    """An open remotecommand session: its SPDY session and its streams by ``streamType``."""

    def __init__(self, spdy_session: spdy.Session, runner: asyncio.Task[None]) -> None:
        self.spdy, self.runner = spdy_session, runner
        self.streams: dict[str, spdy.Stream] = {}

    async def status(self) -> bytes:
        """The error stream's content once the runtime ended it (a JSON Status, maybe empty)."""
        chunks = []
        while data := await self.streams["error"].read():
            chunks.append(data)
        return b"".join(chunks)

    async def close(self) -> None:
        await self.spdy.close()
        self.runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.runner


async def open_session(url: str, streams: Streams) -> Session:
    """Upgrade ``url`` to SPDY and open ``streams`` (:class:`StreamError` if refused)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise StreamError(f"unsupported streaming URL {url!r}")
    port = parts.port or 80
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, port), CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError) as err:
        raise StreamError(f"error dialing the streaming server {parts.netloc}: {err}") from None
    transport = spdy.TcpTransport(reader, writer)
    try:
        await _upgrade(reader, writer, parts.netloc, parts.path or "/")
    except BaseException:
        await transport.close()
        raise
    # no WINDOW_UPDATEs: see machinery.spdy (the runtime closes right after its last frame)
    connection = spdy.Session(transport, client=True, window_updates=False)
    session = Session(connection, asyncio.create_task(connection.run()))
    try:
        for kind in streams.types():
            session.streams[kind] = await connection.open_stream(
                {"streamtype": kind}, timeout=CONNECT_TIMEOUT
            )
    except (spdy.StreamReset, TimeoutError, ConnectionError) as err:
        await session.close()
        raise StreamError(f"the streaming server refused the streams: {err}") from None
    return session


async def _upgrade(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str
) -> None:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n"
        f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {PROTOCOL}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    try:
        writer.write(request.encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as err:
        raise StreamError(f"no answer from the streaming server: {err}") from None
    lines = head.decode("latin-1").split("\r\n")
    fields = lines[0].split(" ", 2)
    code = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
    if code == 101:
        return
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    length = next((v for k, v in headers.items() if k.strip().lower() == "content-length"), "")
    body = b""
    with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
        size = min(int(length), MAX_ERROR_BODY) if length.strip() else MAX_ERROR_BODY
        body = await asyncio.wait_for(reader.read(size), CONNECT_TIMEOUT)
    text = body.decode(errors="replace").strip() or " ".join(fields[1:])
    raise StreamError(text)


def failure(message: str) -> bytes:
    """A channel-3 payload for an error that is not the command's exit code."""
    status = {"metadata": {}, "status": "Failure", "message": message}
    return json.dumps({**status, "reason": "InternalError", "code": 500}).encode()


def _final_status(raw: bytes) -> bytes:
    if not raw.strip():
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    try:
        json.loads(raw)
    except ValueError:
        return failure(raw.decode(errors="replace").strip())
    return raw


async def relay(ws: WebSocket, session: Session) -> None:
    """Relay between an accepted channel WebSocket and ``session`` (see the module docstring)."""
    streams = session.streams

    async def output(stream: spdy.Stream, channel: int) -> None:
        while data := await stream.read():
            await ws.send_bytes(bytes([channel]) + data)

    async def runtime_side() -> bytes:
        status = asyncio.create_task(session.status())
        try:
            outputs = (("stdout", STDOUT), ("stderr", STDERR))
            await asyncio.gather(*(output(streams[k], c) for k, c in outputs if k in streams))
            return await status
        finally:
            status.cancel()

    async def client_side() -> None:
        stdin, resize = streams.get("stdin"), streams.get("resize")
        async for data in channels.received(ws):
            if not data:
                continue
            channel, payload = data[0], data[1:]
            target = {STDIN: stdin, RESIZE: resize}.get(channel)
            with contextlib.suppress(spdy.StreamReset, ConnectionError):
                if target is not None and payload:
                    await target.write(payload)
                elif channel == CLOSE and payload[:1] == bytes([STDIN]) and stdin is not None:
                    await stdin.close()

    runtime = asyncio.create_task(runtime_side())
    client = asyncio.create_task(client_side())
    try:
        await asyncio.wait({runtime, client}, return_when=asyncio.FIRST_COMPLETED)
        if runtime.done() and runtime.exception() is None:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await ws.send_bytes(bytes([STATUS]) + _final_status(runtime.result()))
    finally:
        for task in (runtime, client):
            task.cancel()
        await asyncio.gather(runtime, client, return_exceptions=True)
        await session.close()
