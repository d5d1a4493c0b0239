"""Fixtures: run ``tug`` in-process against the session's real API server."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.app import run
from cli.config import Session

KUBECTL = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "kubectl"


@dataclass
class Result:
    code: int
    out: str
    err: str


Tug = Callable[..., Result]


def run_tug(*argv: str, stdin: str | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    session = Session(out=out, err=err)
    if stdin is not None:
        import sys

        old, sys.stdin = sys.stdin, io.StringIO(stdin)
        try:
            code = run(list(argv), session)
        finally:
            sys.stdin = old
    else:
        code = run(list(argv), session)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def tug(api) -> Tug:
    """``tug(*argv)`` with ``--kubeconfig`` pointing at the test API server."""

    def call(*argv: str, stdin: str | None = None) -> Result:
        return run_tug("--kubeconfig", api.kubeconfig, *argv, stdin=stdin)

    return call


@pytest.fixture
def ns(tug: Tug) -> str:
    """A fresh namespace for one test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    res = tug("create", "namespace", name)
    assert res.code == 0, res.err
    return name


@pytest.fixture
def kubectl(api):
    """The real kubectl against the same server, or skip when it is not installed."""
    import subprocess

    if not KUBECTL.exists():
        pytest.skip("kubectl not installed (bash hack/get-kubectl.sh)")

    def call(*argv: str) -> Result:
        p = subprocess.run(
            [str(KUBECTL), "--kubeconfig", api.kubeconfig, *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "KUBECTL_COMMAND_HEADERS": "false"},
        )
        return Result(p.returncode, p.stdout, p.stderr)

    return call


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@dataclass
class Plane:
    """A fresh API server, the replicaset/deployment/garbage-collector controllers and one node
    agent (``NODE``) on the fake runtime, serving logs, exec and resource metrics."""

    api: Any
    client: Any  # AsyncClient
    fake: Any  # FakeRuntime

    def tug(self, *argv: str, stdin: str | None = None) -> Result:
        return run_tug("--kubeconfig", self.api.kubeconfig, *argv, stdin=stdin)

    async def atug(self, *argv: str, stdin: str | None = None) -> Result:
        """``tug`` in a thread, so that this loop keeps serving the node agent meanwhile."""
        return await asyncio.to_thread(lambda: self.tug(*argv, stdin=stdin))

    async def until(self, what: str, probe: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Poll ``probe`` (sync or async) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = probe()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")


NODE = "node-w"


@pytest.fixture
async def plane(fresh_api, tmp_path: Path) -> AsyncIterator[Plane]:
    from controllers.manager import ControllerManager
    from kubelet.agent import AgentConfig, NodeAgent
    from kubelet.cri.client import AsyncRuntimeClient
    from kubelet.cri.fake import FakeRuntime, FakeServer
    from kubelet.server import serve
    from tests.conftest import free_port

    client = fresh_api.async_client()
    fake = FakeRuntime(pod_cidr="10.244.7.0/24")
    server = FakeServer(fake)
    runtime = AsyncRuntimeClient(await server.start())
    config = AgentConfig(
        node_name=NODE,
        pleg_period=0.05,
        log_root=str(tmp_path / "logs"),
        port=free_port(),
        metrics_period=0.2,
        backoff_initial=0.05,
    )
    agent = NodeAgent(client, runtime, config)
    await agent.start()
    http = await serve(agent, "127.0.0.1", config.port)
    manager = ControllerManager(
        client, controllers=["replicaset", "deployment", "garbagecollector"], leader_elect=False
    )
    task = asyncio.create_task(manager.run())
    try:
        yield Plane(fresh_api, client, fake)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await http.stop()
        await agent.stop()
        await runtime.close()
        await server.stop()
        await client.aclose()
