"""``tug logs -l``: several pods, ``--prefix``, ``--all-containers``, ``-f`` across pods at once
and ``--max-log-requests``, next to the real kubectl. Logs come from a node agent on the fake
runtime (the same path containerd's logs take from the agent on; tests/e2e covers that side)."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.app import run
from cli.config import Session
from kubelet.agent import AgentConfig, NodeAgent
from kubelet.cri.client import AsyncRuntimeClient
from kubelet.cri.fake import FakeRuntime, FakeServer
from kubelet.server import RunningServer, serve
from machinery.client import AsyncClient
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess, free_port

from .conftest import KUBECTL, Result, run_tug

PODS = lookup("pods")


@dataclass
class Node:
    api: ApiServerProcess
    client: AsyncClient
    fake: FakeRuntime

    def tug(self, *argv: str) -> Result:
        return run_tug("--kubeconfig", self.api.kubeconfig, *argv)

    def kubectl(self, *argv: str) -> Result:
        import os
        import subprocess

        p = subprocess.run(
            [str(KUBECTL), "--kubeconfig", self.api.kubeconfig, *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "KUBECTL_COMMAND_HEADERS": "false"},
        )
        return Result(p.returncode, p.stdout, p.stderr)

    async def pod(self, name: str, containers: list[str], app: str) -> dict[str, str]:
        """A running pod; returns its container ids by container name."""
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {
                "nodeName": "node-l",
                "containers": [
                    {"name": n, "image": "busybox:1.35", "command": ["sleep", "3600"]}
                    for n in containers
                ],
            },
        }
        await self.client.create(PODS, body, "default")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pod = await self.client.get(PODS, name, "default")
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            if len(statuses) == len(containers) and all("running" in s["state"] for s in statuses):
                return {s["name"]: s["containerID"].split("//")[1] for s in statuses}
            await asyncio.sleep(0.05)
        raise AssertionError(f"pod {name} not running in 15 s")


@pytest.fixture
async def node(fresh_api: ApiServerProcess, tmp_path: Path) -> AsyncIterator[Node]:
    if not KUBECTL.exists():
        pytest.skip("kubectl not installed (bash hack/get-kubectl.sh)")
    client = fresh_api.async_client()
    fake = FakeRuntime(pod_cidr="10.244.8.0/24")
    server = FakeServer(fake)
    runtime = AsyncRuntimeClient(await server.start())
    config = AgentConfig(
        node_name="node-l", pleg_period=0.05, log_root=str(tmp_path / "logs"), port=free_port()
    )
    agent = NodeAgent(client, runtime, config)
    await agent.start()
    http: RunningServer = await serve(agent, "127.0.0.1", config.port)
    yield Node(fresh_api, client, fake)
    await http.stop()
    await agent.stop()
    await runtime.close()
    await server.stop()
    await client.aclose()


async def _both(node: Node, *argv: str) -> tuple[Result, Result]:
    mine = await asyncio.to_thread(node.tug, "logs", *argv)
    theirs = await asyncio.to_thread(node.kubectl, "logs", *argv)
    return mine, theirs


async def test_selector_prefix_tail_and_all_containers_like_kubectl(node: Node) -> None:
    one = await node.pod("chat-1", ["main"], "chat")
    two = await node.pod("chat-2", ["main"], "chat")
    side = await node.pod("chat-3", ["main", "side"], "side")
    await node.pod("other", ["main"], "other")
    node.fake.write_log(one["main"], "".join(f"one {i}\n" for i in range(15)))
    node.fake.write_log(two["main"], "two a\ntwo b\n")
    node.fake.write_log(side["main"], "main says\n")
    node.fake.write_log(side["side"], "side says\n")
    cases: list[tuple[str, ...]] = [
        ("-l", "app=chat"),
        ("-l", "app=chat", "--prefix"),
        ("-l", "app=chat", "--prefix", "--tail", "1"),
        ("-l", "app=side", "--all-containers", "--prefix"),
        ("-l", "app=side", "-c", "side", "--prefix"),
        ("-l", "app in (chat,side)", "--all-containers", "--prefix", "--tail=-1"),
        ("-l", "app=nobody"),
    ]
    for argv in cases:
        mine, theirs = await _both(node, *argv)
        # kubectl keeps its streams in a Go map: its order varies from run to run, tug's is
        # the pods' (by name), each pod's containers in spec order
        assert (mine.code, _lines(mine.out)) == (theirs.code, _lines(theirs.out)), argv
        assert _lines(mine.err) == _lines(theirs.err), argv
    mine, _ = await _both(node, "-l", "app=chat", "--prefix")
    assert mine.out.splitlines() == [
        *(f"[pod/chat-1/main] one {i}" for i in range(5, 15)),  # the last 10 by default
        "[pod/chat-2/main] two a",
        "[pod/chat-2/main] two b",
    ]


def _lines(text: str) -> list[str]:
    """Sorted lines, less kubectl's usage hint (tug's errors are one line)."""
    return sorted(ln for ln in text.splitlines() if not ln.startswith("See 'kubectl "))


async def test_errors_like_kubectl(node: Node) -> None:
    for name in ("f-1", "f-2", "f-3"):
        await node.pod(name, ["main", "side"], "many")
    unbound = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unbound"},
        "spec": {
            "initContainers": [{"name": "setup", "image": "busybox:1.35"}],
            "containers": [{"name": "a", "image": "busybox:1.35"}],
        },
    }
    await node.client.create(PODS, unbound, "default")
    for argv in (
        ("-l", "app=many", "-f", "--all-containers"),  # 6 streams > 5
        ("-l", "app=many", "-f", "--max-log-requests", "2"),
        ("f-1", "-l", "app=many"),
        ("unbound",),  # kubectl names the container it picked, then the server's error
    ):
        mine, theirs = await _both(node, *argv)
        assert (mine.code, mine.out) == (theirs.code, theirs.out), argv
        assert _lines(mine.err) == _lines(theirs.err), argv
        last = mine.err.splitlines()[-1]
        assert mine.code == 1 and last.startswith(("error: ", "Error from server")), last


def _poll(what: str, probe: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_follow_streams_every_pod_at_once(node: Node) -> None:
    ids = [(await node.pod(f"live-{i}", ["main"], "live"))["main"] for i in range(3)]
    node.fake.write_log(ids[0], "before 0\n")
    out, err = io.StringIO(), io.StringIO()
    argv = ["--kubeconfig", node.api.kubeconfig, "logs", "-l", "app=live", "-f", "--prefix"]
    codes: list[int] = []
    runner = threading.Thread(
        target=lambda: codes.append(run(argv, Session(out=out, err=err))), daemon=True
    )
    runner.start()
    await asyncio.to_thread(_poll, "the first stream", lambda: "before 0" in out.getvalue())
    # the first pod's stream stays open (its container runs on): a line written to the last
    # pod shows that its stream is followed at the same time, not after
    node.fake.write_log(ids[2], "live line 2\n")
    await asyncio.to_thread(_poll, "the last pod's line", lambda: "line 2" in out.getvalue())
    node.fake.write_log(ids[1], "live line 1\n")
    node.fake.write_log(ids[0], "live line 0\n")
    await asyncio.to_thread(_poll, "every line", lambda: out.getvalue().count("\n") == 4)
    assert runner.is_alive(), "-f keeps following while the containers run"
    for cid in ids:
        node.fake.exit_container(cid, 0)  # the streams end with their containers
    await asyncio.to_thread(runner.join, 20)
    assert not runner.is_alive() and codes == [0], err.getvalue()
    assert sorted(out.getvalue().splitlines()) == [
        "[pod/live-0/main] before 0",
        "[pod/live-0/main] live line 0",
        "[pod/live-1/main] live line 1",
        "[pod/live-2/main] live line 2",
    ]
