"""Node-lifecycle controller in a controller-manager against a real API server, with a node
agent on the fake runtime that stops heartbeating (shortened timers)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from controllers.manager import ControllerManager
from kubelet.agent import AgentConfig, NodeAgent
from kubelet.cri.client import AsyncRuntimeClient
from kubelet.cri.fake import FakeRuntime, FakeServer
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess

PODS, NODES = lookup("pods"), lookup("nodes")


async def eventually(what: str, check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout} s (last: {last!r})")


def ready_of(node: dict) -> dict:
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


async def test_stopped_agent_makes_node_unknown_tainted_and_pods_evicted(
    fresh_api: ApiServerProcess, tmp_path: Path
) -> None:
    client = fresh_api.async_client()
    fake = FakeRuntime(pod_cidr="10.244.8.0/24")
    server = FakeServer(fake)
    runtime = AsyncRuntimeClient(await server.start())
    config = AgentConfig(
        node_name="frail", pleg_period=0.05, log_root=str(tmp_path), port=0, lease_period=0.5
    )
    agent = NodeAgent(client, runtime, config)
    await agent.start()
    manager = ControllerManager(
        client,
        controllers=["nodelifecycle"],
        leader_elect=False,
        options={"nodelifecycle": {"grace_period": 2.0, "monitor_period": 0.5}},
    )
    ctl_task = asyncio.create_task(manager.run())
    try:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "patient"},
            "spec": {
                "nodeName": "frail",
                "containers": [
                    {"name": "c", "image": "busybox:1.35", "command": ["sleep", "3600"]}
                ],
            },
        }
        default = await client.create(PODS, body, "default")
        tolerations = {t["key"]: t for t in default["spec"]["tolerations"]}
        assert tolerations["node.kubernetes.io/unreachable"]["tolerationSeconds"] == 300
        assert tolerations["node.kubernetes.io/not-ready"]["tolerationSeconds"] == 300
        quick = {"key": "node.kubernetes.io/unreachable", "operator": "Exists"}
        quick |= {"effect": "NoExecute", "tolerationSeconds": 1}
        body["metadata"] = {"name": "quick"}
        body["spec"]["tolerations"] = [quick]
        await client.create(PODS, body, "default")

        async def both_running() -> bool:
            items = (await client.list(PODS, "default"))["items"]
            return sum(p["status"].get("phase") == "Running" for p in items) == 2

        await eventually("pods running", both_running)
        # Healthy for longer than the grace period: nothing happens.
        await asyncio.sleep(2.5)
        n = await client.get(NODES, "frail")
        assert ready_of(n)["status"] == "True" and not n["spec"].get("taints")

        await agent.stop()  # the heartbeat stops; containers keep running

        async def unknown() -> dict | None:
            n = await client.get(NODES, "frail")
            return n if ready_of(n)["status"] == "Unknown" and n["spec"].get("taints") else None

        n = await eventually("Ready=Unknown", unknown, timeout=10)
        assert ready_of(n)["reason"] == "NodeStatusUnknown"
        effects = {(t["key"], t["effect"]) for t in n["spec"]["taints"]}
        assert ("node.kubernetes.io/unreachable", "NoExecute") in effects

        async def quick_evicted() -> bool:
            p = await client.get(PODS, "quick", "default")
            return bool(p["metadata"].get("deletionTimestamp"))

        await eventually("quick evicted", quick_evicted, timeout=10)
        patient = await client.get(PODS, "patient", "default")
        assert not patient["metadata"].get("deletionTimestamp")  # 300 s to go
        ready = next(c for c in patient["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False"
    finally:
        ctl_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ctl_task
        await agent.stop()
        await runtime.close()
        await server.stop()
        await client.aclose()
