"""The fake runtime's streaming server: what containerd serves for CRI Exec and Attach URLs.

It speaks the same protocol as containerd's (Kubernetes remotecommand ``v4.channel.k8s.io``
over SPDY/3.1, built on :mod:`machinery.spdy`), so the node agent's client is tested against
real framing. Semantics:

- :meth:`StreamServer.url` registers a CRI Exec/Attach request and returns
  ``http://127.0.0.1:PORT/{exec|attach}/{token}``; a token serves one session. An unknown
  token gets ``404`` with a text body; a request without ``Upgrade: SPDY/3.1`` or without the
  ``v4.channel.k8s.io`` protocol gets ``400``.
- After the ``101``, the server waits for the client's ``error`` stream and one stream per
  flag of the request (``stdin``, ``stdout``, ``stderr`` unless tty, ``resize`` with tty).
- Exec of ``cat`` with stdin copies stdin to stdout until the stdin stream's FIN, then
  succeeds; any other command gets the fake's ExecSync answer (``set_exec_result``,
  ``exec_handler``, the tiny interpreter) on stdout/stderr. Attach copies stdin to stdout
  until FIN, like a shell echoing its input.
- Every resize message is decoded into :attr:`StreamServer.resizes` (container id → list of
  ``(width, height)``).
- The session ends with a Status on the error stream (``Success``, ``NonZeroExitCode`` with
  the code, or ``InternalError``), then GOAWAY and close, as containerd does.

The server starts lazily, in the running event loop, the first time a URL is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections import defaultdict
from typing import Any

from machinery import spdy

from . import api_pb2 as pb

PROTOCOL = "v4.channel.k8s.io"
STREAM_WAIT = 10.0


def _status(code: int | None, message: str = "") -> bytes:
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    if code is None:
        body = {"status": "Failure", "reason": "InternalError", "code": 500, "message": message}
        return json.dumps({"metadata": {}, **body}).encode()
    cause = {"reason": "ExitCode", "message": str(code)}
    return json.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [cause]},
        }
    ).encode()


class StreamServer:
    """Serves one :class:`~kubelet.cri.fake.FakeRuntime`'s exec and attach sessions."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.resizes: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._requests: dict[str, tuple[str, Any]] = {}
        self._tokens = itertools.count(1)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._serve())
        self._task.add_done_callback(lambda _: self._sock.close())

    def url(self, kind: str, request: pb.ExecRequest | pb.AttachRequest) -> str:
        token = f"t{next(self._tokens)}"
        self._requests[token] = (kind, request)
        return f"http://127.0.0.1:{self.port}/{kind}/{token}"

    def close(self) -> None:
        """Stop accepting sessions (those open end with the loop)."""
        self._task.cancel()

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._handle, sock=self._sock)
        async with server:
            await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = spdy.TcpTransport(reader, writer)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            path = head[0].split(" ")[1] if len(head[0].split(" ")) > 2 else ""
            headers = [line.split(":", 1) for line in head[1:] if ":" in line]
            values = {k.strip().lower(): v.strip() for k, v in headers}
            entry = self._requests.pop(path.rsplit("/", 1)[-1], None)
            if entry is None or not path.startswith(f"/{entry[0]}/"):
                return await self._refuse(transport, 404, "unknown request token")
            if values.get("upgrade", "").lower() != "spdy/3.1":
                return await self._refuse(transport, 400, "SPDY upgrade required")
            if values.get("x-stream-protocol-version") != PROTOCOL:
                return await self._refuse(transport, 400, "unsupported stream protocol")
            await transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                b"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: "
                + PROTOCOL.encode()
                + b"\r\n\r\n"
            )
            await self._session(transport, *entry)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            await transport.close()

    @staticmethod
    async def _refuse(transport: spdy.TcpTransport, code: int, text: str) -> None:
        body = text.encode()
        head = f"HTTP/1.1 {code} Refused\r\nContent-Length: {len(body)}\r\n"
        await transport.write(head.encode() + b"Content-Type: text/plain\r\n\r\n" + body)

    async def _session(self, transport: spdy.TcpTransport, kind: str, req: Any) -> None:
        wanted = {"error"} | {
            name
            for name, on in (
                ("stdin", req.stdin),
                ("stdout", req.stdout),
                ("stderr", req.stderr and not req.tty),
                ("resize", req.tty),
            )
            if on
        }
        streams: dict[str, spdy.Stream] = {}
        ready = asyncio.Event()

        async def on_stream(stream: spdy.Stream) -> None:
            streams[stream.headers.get("streamtype", "")] = stream
            if wanted <= streams.keys():
                ready.set()

        session = spdy.Session(transport, client=False, on_stream=on_stream)
        runner = asyncio.create_task(session.run())
        try:
            await asyncio.wait_for(ready.wait(), STREAM_WAIT)
            resizing = None
            if "resize" in streams:
                resizing = asyncio.create_task(self._resizes(req.container_id, streams["resize"]))
            code, message = await self._run(kind, req, streams)
            await streams["error"].write(_status(code, message))
            if resizing is not None:
                resizing.cancel()
        except (TimeoutError, spdy.StreamReset, ConnectionError):
            pass
        finally:
            await session.close()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner

    async def _run(
        self, kind: str, req: Any, streams: dict[str, spdy.Stream]
    ) -> tuple[int | None, str]:
        out = streams.get("stdout")
        if kind == "attach" or (list(req.cmd) == ["cat"] and "stdin" in streams):
            if "stdin" in streams:
                while data := await streams["stdin"].read():
                    if out is not None:
                        await out.write(data)
            return 0, ""
        try:
            result = self.runtime.ExecSync(
                pb.ExecSyncRequest(container_id=req.container_id, cmd=req.cmd)
            )
        except Exception as err:  # the fake's FakeError: the runtime refused
            return None, f"error executing command in container: {getattr(err, 'message', err)}"
        if result.stdout and out is not None:
            await out.write(result.stdout)
        if result.stderr and "stderr" in streams:
            await streams["stderr"].write(result.stderr)
        return result.exit_code, ""

    async def _resizes(self, container_id: str, stream: spdy.Stream) -> None:
        decoder, buffer = json.JSONDecoder(), ""
        while data := await stream.read():
            buffer += data.decode()
            while buffer.strip():
                try:
                    size, end = decoder.raw_decode(buffer.lstrip())
                except ValueError:
                    break
                buffer = buffer.lstrip()[end:]
                self.resizes[container_id].append((int(size["Width"]), int(size["Height"])))
