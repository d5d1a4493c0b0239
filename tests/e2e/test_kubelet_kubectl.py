"""The real kubectl reaching containers on containerd through the API server's proxy:
``kubectl logs [-f] [--tail] [-c]`` and ``kubectl exec [-i]`` with exit codes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from machinery.client import AsyncClient
from tests.conftest import ApiServerProcess
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    KUBECTL,
    PODS,
    RealNode,
    container,
    eventually,
    kubectl,
    node_session,
    pod,
    require_kubectl,
    running,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def node(
    api: ApiServerProcess, containerd_runtime: ContainerdRuntime
) -> AsyncIterator[tuple[AsyncClient, RealNode]]:
    require_kubectl()
    async with node_session(api, containerd_runtime, "e2e-kubectl") as pair:
        yield pair


async def test_kubectl_logs_and_exec_on_containerd(
    api: ApiServerProcess,
    node: tuple[AsyncClient, RealNode],
    containerd_runtime: ContainerdRuntime,
) -> None:
    client, n = node
    bb = containerd_runtime.busybox_image
    script = (
        "for i in 1 2 3; do echo line$i; done; echo err >&2; "
        "while true; do sleep 0.3; echo tick; done"
    )
    main = container("main", bb, command=["sh", "-c", script])
    side = container("side", bb, command=["sh", "-c", "echo from side; exec sleep 3600"])
    await client.create(PODS, pod("kc", n.name, [main, side]), "default")
    await eventually("kc running", lambda: running(client, "kc"))

    async def logged() -> str | None:
        out = await asyncio.to_thread(kubectl, api, "logs", "kc", "-c", "side")
        return out.stdout if out.stdout else None

    assert await eventually("side's log", logged) == "from side\n"
    out = await asyncio.to_thread(kubectl, api, "logs", "kc", "-c", "main", "--tail=-1")
    first = out.stdout.splitlines()[:4]
    # stdout keeps its order; where stderr's line lands among them is up to the runtime's two
    # pipes (as in Kubernetes)
    assert [line for line in first if line != "err"] == ["line1", "line2", "line3"], out.stderr
    assert "err" in first, out.stdout
    out = await asyncio.to_thread(kubectl, api, "logs", "kc", "--tail=1")
    assert out.stdout == "tick\n", out.stderr  # the first container by default

    # -f keeps streaming: new ticks arrive while kubectl runs.
    proc = await asyncio.create_subprocess_exec(
        str(KUBECTL),
        "logs",
        "-f",
        "kc",
        "-c",
        "main",
        "--tail=0",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "KUBECONFIG": api.kubeconfig},
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 10)
        second = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert (first, second) == (b"tick\n", b"tick\n")
    finally:
        proc.terminate()
        await proc.wait()

    out = await asyncio.to_thread(
        kubectl,
        api,
        "exec",
        "kc",
        "-c",
        "side",
        "--",
        "sh",
        "-c",
        "echo $HOSTNAME; cat /proc/1/comm",
    )
    assert (out.returncode, out.stdout) == (0, "kc\nsleep\n"), out.stderr
    out = await asyncio.to_thread(kubectl, api, "exec", "kc", "--", "sh", "-c", "exit 42")
    assert out.returncode == 42, out.stderr
    out = await asyncio.to_thread(
        kubectl,
        api,
        "exec",
        "-i",
        "kc",
        "-c",
        "side",
        "--",
        "sh",
        "-c",
        "read x; echo got $x",
        stdin="hello\n",
    )
    assert (out.returncode, out.stdout) == (0, "got hello\n"), out.stderr
