"""``pods/portforward`` end to end on containerd: the real ``kubectl port-forward`` (SPDY/3.1
over a WebSocket) and ``tug port-forward`` reaching busybox httpd in a pod, including a server
bound to 127.0.0.1 inside the pod, a payload larger than a SPDY window, two concurrent
connections, and a port nothing listens on."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator

import pytest

from machinery.client import AsyncClient
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess, free_port
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    KUBECTL,
    PODS,
    RealNode,
    container,
    eventually,
    node_session,
    pod,
    require_kubectl,
    running,
)

pytestmark = pytest.mark.e2e
BIG = 300_000  # bytes: several 64 KiB SPDY windows
SERVE = (
    "mkdir -p /www && echo hello > /www/index.html && "
    f"head -c {BIG} /dev/zero | tr '\\0' x > /www/big && "
    "httpd -p 80 -h /www && exec httpd -f -p 127.0.0.1:8082 -h /www"
)


@pytest.fixture
async def web(
    api: ApiServerProcess, containerd_runtime: ContainerdRuntime
) -> AsyncIterator[tuple[AsyncClient, RealNode]]:
    async with node_session(api, containerd_runtime, "e2e-pf") as (client, n):
        main = container("web", containerd_runtime.busybox_image, command=["sh", "-c", SERVE])
        await client.create(PODS, pod("pf", n.name, [main]), "default")
        await eventually("pf running", lambda: running(client, "pf"))
        yield client, n


class Forward:
    """A running port-forward command; its output lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            asyncio.create_task(self._collect(proc.stdout, self.out)),
            asyncio.create_task(self._collect(proc.stderr, self.err)),
        ]

    @staticmethod
    async def _collect(stream: asyncio.StreamReader | None, into: list[str]) -> None:
        assert stream is not None
        while line := await stream.readline():
            into.append(line.decode())

    async def wait_for(self, text: str, where: str = "out", timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        lines = self.out if where == "out" else self.err
        while time.monotonic() < deadline:
            found = [line for line in lines if text in line]
            if found:
                return found[0]
            if self.proc.returncode is not None and all(t.done() for t in self._readers):
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {text!r} on std{where}: out={self.out} err={self.err}")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
        await asyncio.wait_for(self.proc.wait(), 10)
        await asyncio.gather(*self._readers, return_exceptions=True)


async def start(api: ApiServerProcess, *argv: str) -> Forward:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "KUBECONFIG": api.kubeconfig},
    )
    return Forward(proc)


async def get(port: int, path: str = "/") -> bytes:
    """The body of an HTTP/1.0 GET to 127.0.0.1:port (the server closes when done)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], response[:200]
    return body


async def closed_without_data(port: int) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    try:
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


async def exercise(forward: Forward, open_port: int, loopback_port: int) -> None:
    """Sequential, large, concurrent and loopback-only requests through ``forward``."""
    assert await get(open_port) == b"hello\n"
    assert await get(open_port) == b"hello\n"
    assert await get(open_port, "/big") == b"x" * BIG
    bodies = await asyncio.gather(get(open_port, "/big"), get(open_port))
    assert bodies == [b"x" * BIG, b"hello\n"]
    assert await get(loopback_port) == b"hello\n"  # bound to 127.0.0.1 inside the pod
    await forward.wait_for(f"Handling connection for {open_port}")


async def test_kubectl_port_forward(
    api: ApiServerProcess, web: tuple[AsyncClient, RealNode]
) -> None:
    require_kubectl()
    p1, p2, p3 = free_port(), free_port(), free_port()
    fwd = await start(
        api,
        str(KUBECTL),
        "port-forward",
        "pod/pf",
        f"{p1}:80",
        f"{p2}:8082",
        "--address",
        "127.0.0.1",
    )
    try:
        await fwd.wait_for(f"Forwarding from 127.0.0.1:{p1} -> 80")
        await fwd.wait_for(f"Forwarding from 127.0.0.1:{p2} -> 8082")
        await exercise(fwd, p1, p2)
        assert fwd.proc.returncode is None, fwd.err
    finally:
        await fwd.stop()

    # Nothing listens on 81: the connection closes, kubectl prints Kubernetes' message and
    # (kubectl >= 1.23 gives up the session after a failed connection) exits.
    fwd = await start(api, str(KUBECTL), "port-forward", "pf", f"{p3}:81", "--address", "127.0.0.1")
    try:
        await fwd.wait_for(f"Forwarding from 127.0.0.1:{p3} -> 81")
        assert await closed_without_data(p3) == b""
        line = await fwd.wait_for(f"an error occurred forwarding {p3} -> 81", "err")
        assert "error forwarding port 81 to pod pf, uid " in line
        assert "failed to connect to localhost:81 inside namespace" in line
        assert "connection refused" in line
    finally:
        await fwd.stop()


async def test_tug_port_forward(api: ApiServerProcess, web: tuple[AsyncClient, RealNode]) -> None:
    client, _ = web
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "pf-svc", "namespace": "default"},
        "spec": {"selector": {"pf": "yes"}, "ports": [{"port": 8000, "targetPort": 80}]},
    }
    await client.patch(PODS, "pf", {"metadata": {"labels": {"pf": "yes"}}}, "default")
    await client.create(lookup("services"), service, "default")
    p1, p2, p3, p4 = free_port(), free_port(), free_port(), free_port()
    tug = [sys.executable, "-m", "cli.main", "port-forward"]
    fwd = await start(api, *tug, "pf", f"{p1}:80", f"{p2}:8082", f"{p3}:81")
    try:
        await fwd.wait_for(f"Forwarding from 127.0.0.1:{p1} -> 80")
        await fwd.wait_for(f"Forwarding from 127.0.0.1:{p3} -> 81")
        await exercise(fwd, p1, p2)
        # a closed port is an error on that connection only: the session goes on
        assert await closed_without_data(p3) == b""
        line = await fwd.wait_for(f"an error occurred forwarding {p3} -> 81", "err")
        assert "connection refused" in line
        assert await get(p1) == b"hello\n"
        assert fwd.proc.returncode is None, fwd.err
    finally:
        await fwd.stop()

    fwd = await start(api, *tug, "svc/pf-svc", f"{p4}:8000")
    try:
        await fwd.wait_for(f"Forwarding from 127.0.0.1:{p4} -> 80")
        assert await get(p4) == b"hello\n"
    finally:
        await fwd.stop()
        await client.delete(lookup("services"), "pf-svc", "default")
