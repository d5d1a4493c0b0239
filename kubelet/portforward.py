"""``pods/portforward`` on the node agent: one WebSocket per forwarded TCP connection.

``/portForward/{namespace}/{pod}?port=N`` (WebSocket, subprotocol :data:`PROTOCOL`; the API
server is the only client, it terminates kubectl's SPDY session and opens one of these per
forwarded connection). The agent always accepts, then:

- on failure (no such pod, pod not running, nothing listening on the port) sends **one text
  message**, Kubernetes' ``error forwarding port N to pod ...`` line, and closes;
- otherwise relays bytes: **binary messages** carry TCP data both ways, and an **empty binary
  message** is a half-close (the sender's EOF). The agent closes the WebSocket once both
  directions have ended or the pod side resets.

As Kubernetes does, the TCP connection is made to ``localhost:N`` *inside the pod's network
namespace* (127.0.0.1, then ::1), so a server bound to loopback in the pod is reachable. The
socket is created by a dedicated short-lived thread that ``setns``-es into the namespace
(found in the CRI sandbox's verbose info); the thread is discarded afterwards, so no other
thread ever runs in the pod's namespace. ``hostNetwork`` pods are dialled from the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from .cri.errors import CriError
from .observe import observe
from .specs import meta, spec

log = logging.getLogger(__name__)

PROTOCOL = "portforward.tugboat.io"
CLONE_NEWNET = 0x40000000
DIAL_TIMEOUT = 10.0
READ_SIZE = 64 * 1024
LOOPBACKS = ((socket.AF_INET, "127.0.0.1", "IPv4"), (socket.AF_INET6, "::1", "IPv6"))


class ForwardError(Exception):
    """Why a connection cannot be forwarded (the text goes back to the user)."""

    def __init__(self, message: str, uid: str = "") -> None:
        super().__init__(message)
        self.uid = uid


def socket_in_netns(netns: str, family: int) -> socket.socket:
    """A TCP socket created inside the network namespace at path ``netns``."""
    box: dict[str, Any] = {}

    def enter_and_create() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        target = os.open(netns, os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            box["socket"] = socket.socket(family, socket.SOCK_STREAM)
        except OSError as err:
            box["error"] = err
        finally:
            os.close(target)

    thread = threading.Thread(target=enter_and_create, name="portforward-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["socket"]  # type: ignore[no-any-return]


async def dial(netns: str | None, port: int) -> socket.socket:
    """A connected socket to ``localhost:port`` in ``netns`` (``None``: the node's)."""
    loop = asyncio.get_running_loop()
    failures = []
    for family, host, label in LOOPBACKS:
        try:
            if netns is None:
                sock = socket.socket(family, socket.SOCK_STREAM)
            else:
                sock = await asyncio.to_thread(socket_in_netns, netns, family)
        except OSError as err:
            failures.append(f"{label}: {err.strerror or err}")
            continue
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), DIAL_TIMEOUT)
            return sock
        except (OSError, TimeoutError) as err:
            sock.close()
            errno = getattr(err, "errno", None)
            reason = os.strerror(errno).lower() if errno else "i/o timeout"
            failures.append(f"{label}: dial tcp {host}:{port}: connect: {reason}")
    where = f' inside namespace "{netns}"' if netns else " on the node"
    raise ForwardError(f"failed to connect to localhost:{port}{where}, " + ", ".join(failures))


async def sandbox_netns(runtime: Any, sandbox_id: str) -> str:
    """The sandbox's network namespace path, from the runtime's verbose status."""
    try:
        info = json.loads((await runtime.pod_sandbox_info(sandbox_id)).get("info") or "{}")
    except (CriError, ValueError) as err:
        raise ForwardError(f"cannot read the pod sandbox status: {err}") from None
    linux = (info.get("runtimeSpec") or {}).get("linux") or {}
    for ns in linux.get("namespaces") or []:
        if ns.get("type") == "network" and ns.get("path"):
            return str(ns["path"])
    if info.get("pid"):
        return f"/proc/{int(info['pid'])}/ns/net"
    raise ForwardError("the pod's network namespace is unknown to the runtime")


Dialer = Callable[[str | None, int], Awaitable[socket.socket]]


class PortForwarder:
    """Serves ``/portForward`` for one node agent (``dialer`` is injectable for tests)."""

    def __init__(self, agent: Any, dialer: Dialer = dial) -> None:
        self.agent, self.dialer = agent, dialer

    async def serve(self, ws: WebSocket) -> None:
        p = ws.path_params
        offered = [x.strip() for x in (ws.headers.get("sec-websocket-protocol") or "").split(",")]
        await ws.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
        try:
            port = int(ws.query_params.get("port") or "0")
            if not 0 < port < 65536:
                raise ForwardError(f"invalid port {ws.query_params.get('port')!r}")
            sock = await self._connect(p["namespace"], p["pod"], port)
        except ForwardError as err:
            port_text = ws.query_params.get("port")
            message = f"error forwarding port {port_text} to pod {p['pod']}, uid {err.uid}: {err}"
            with contextlib.suppress(Exception):
                await ws.send_text(message)
                await ws.close()
            return
        try:
            await relay(ws, sock)
        finally:
            sock.close()
            with contextlib.suppress(Exception):
                await ws.close()

    async def _connect(self, namespace: str, name: str, port: int) -> socket.socket:
        pod = self.agent.find_pod(namespace, name)
        if pod is None:
            raise ForwardError(f'pods "{name}" not found')
        uid = meta(pod).get("uid", "")
        try:
            rt = await observe(self.agent.runtime, uid, self.agent.name)
            sandbox = rt.sandbox
            if sandbox is None or not sandbox.ready:
                raise ForwardError("pod is not running (no ready sandbox)")
            netns = None
            if not spec(pod).get("hostNetwork"):
                netns = await sandbox_netns(self.agent.runtime, sandbox.id)
            return await self.dialer(netns, port)
        except ForwardError as err:
            raise ForwardError(str(err), uid) from None
        except CriError as err:
            raise ForwardError(str(err), uid) from None


async def relay(ws: WebSocket, sock: socket.socket) -> None:
    """Relay between ``ws`` (the module's message protocol) and ``sock`` until both ends end."""
    reader, writer = await asyncio.open_connection(sock=sock)

    async def ws_to_pod() -> None:
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    pod_side.cancel()  # the client is gone: nobody reads the pod's answer
                    return
                data = message.get("bytes")
                if data is None:
                    continue
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except WebSocketDisconnect:
            pod_side.cancel()
        except ConnectionError:
            return

    async def pod_to_ws() -> None:
        with contextlib.suppress(ConnectionError, WebSocketDisconnect, RuntimeError):
            while data := await reader.read(READ_SIZE):
                await ws.send_bytes(data)
            await ws.send_bytes(b"")

    pod_side = asyncio.create_task(pod_to_ws())
    tasks = {pod_side, asyncio.create_task(ws_to_pod())}
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
