"""The scheduler against a real API server with plain Node objects (no kubelet)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from machinery import errors
from machinery.client import AsyncClient
from machinery.kinds import lookup
from scheduler.scheduler import Scheduler
from scheduler.testing import make_node, make_pod

PODS, NODES, EVENTS = lookup("pods"), lookup("nodes"), lookup("events")
PRIORITY_CLASSES = lookup("priorityclasses")
NS = "default"


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy (or fail at the deadline)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout} s (last: {last!r})")


@dataclass
class Cluster:
    client: AsyncClient
    scheduler: Scheduler

    async def node(self, name: str, **kw: Any) -> None:
        await self.client.create(NODES, make_node(name, **kw))

    async def pod(self, name: str, **kw: Any) -> None:
        await self.client.create(PODS, make_pod(name, **kw), NS)

    async def get(self, name: str) -> dict[str, Any]:
        return await self.client.get(PODS, name, NS)

    async def bound(self, name: str, timeout: float = 15.0) -> str:
        async def check() -> str:
            return ((await self.get(name)).get("spec") or {}).get("nodeName") or ""

        return await eventually(check, timeout)

    async def unschedulable(self, name: str, message: str) -> dict[str, Any]:
        """Wait for PodScheduled=False with exactly ``message``; returns the condition."""

        async def check() -> dict[str, Any] | None:
            pod = await self.get(name)
            for c in (pod.get("status") or {}).get("conditions") or ():
                if c["type"] == "PodScheduled" and c.get("message") == message:
                    return c
            return None

        cond = await eventually(check)
        assert cond["status"] == "False"
        assert cond["reason"] == "Unschedulable"
        assert not (await self.get(name))["spec"].get("nodeName")
        return cond

    async def events_for(self, name: str, reason: str) -> list[str]:
        async def check() -> list[str]:
            items = (await self.client.list(EVENTS, NS))["items"]
            return [
                e["message"]
                for e in items
                if e["involvedObject"]["name"] == name and e["reason"] == reason
            ]

        return await eventually(check)


@pytest.fixture
async def cluster(fresh_api) -> AsyncIterator[Cluster]:
    client = fresh_api.async_client()
    sched = Scheduler(client)
    task = asyncio.create_task(sched.run())
    kubelet = asyncio.create_task(_finish_terminating_pods(client))
    try:
        yield Cluster(client, sched)
    finally:
        for t in (task, kubelet):
            t.cancel()
        await asyncio.gather(task, kubelet, return_exceptions=True)
        await sched.recorder.aclose()
        await client.aclose()


async def _finish_terminating_pods(client: AsyncClient) -> None:
    """Stand in for kubelets: a bound pod marked for deletion is removed at once."""
    while True:
        for pod in (await client.list(PODS, NS))["items"]:
            if pod["metadata"].get("deletionTimestamp"):
                with contextlib.suppress(errors.NotFound):
                    await client.delete(PODS, pod["metadata"]["name"], NS, grace_period_seconds=0)
        await asyncio.sleep(0.05)


async def test_resources_exhausted_then_new_node_schedules_the_pod(cluster: Cluster):
    await cluster.node("n1", cpu="1")
    await cluster.node("n2", cpu="1")
    await cluster.pod("a", cpu="800m")
    await cluster.pod("b", cpu="800m")
    placed = {await cluster.bound("a"), await cluster.bound("b")}
    assert placed == {"n1", "n2"}

    await cluster.pod("c", cpu="800m")
    message = (
        "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: "
        "2 No preemption victims found for incoming pod."
    )
    await cluster.unschedulable("c", message)
    assert message in await cluster.events_for("c", "FailedScheduling")

    await cluster.node("n3", cpu="1")
    assert await cluster.bound("c") == "n3"
    assert "Successfully assigned default/c to n3" in await cluster.events_for("c", "Scheduled")
    conditions = (await cluster.get("c"))["status"]["conditions"]
    assert {"type": "PodScheduled", "status": "True"}.items() <= next(
        c for c in conditions if c["type"] == "PodScheduled"
    ).items()


async def test_taints_and_tolerations(cluster: Cluster):
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    await cluster.node("gpu", taints=[taint])
    await cluster.pod("plain")
    await cluster.pod(
        "tolerant",
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
        ],
    )
    assert await cluster.bound("tolerant") == "gpu"
    await cluster.unschedulable(
        "plain",
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
    )
    # Removing the taint is a node update the parked pod waits for.
    await cluster.client.patch(NODES, "gpu", {"spec": {"taints": None}})
    assert await cluster.bound("plain") == "gpu"


async def test_anti_affinity_spreads_replicas(cluster: Cluster):
    for i in range(3):
        await cluster.node(f"n{i}")
    anti = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": "web"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    for i in range(4):
        await cluster.pod(f"web-{i}", labels={"app": "web"}, affinity=anti)
    nodes = set()
    pending = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pods = [await cluster.get(f"web-{i}") for i in range(4)]
        nodes = {p["spec"].get("nodeName") for p in pods} - {None}
        pending = [p["metadata"]["name"] for p in pods if not p["spec"].get("nodeName")]
        if len(nodes) == 3:
            break
        await asyncio.sleep(0.05)
    assert nodes == {"n0", "n1", "n2"}
    assert len(pending) == 1
    await cluster.unschedulable(
        pending[0],
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. "
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
    )


async def test_topology_spread_balances_zones(cluster: Cluster):
    for zone in ("a", "b"):
        for i in range(2):
            await cluster.node(f"{zone}{i}", labels={"zone": zone})
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "db"}},
        }
    ]
    for i in range(6):
        await cluster.pod(f"db-{i}", labels={"app": "db"}, topologySpreadConstraints=spread)
        await cluster.bound(f"db-{i}")  # one at a time: each placement sees the last
    zones = [(await cluster.bound(f"db-{i}"))[0] for i in range(6)]
    assert sorted(zones) == ["a"] * 3 + ["b"] * 3
    # After each pod the zones differ by at most maxSkew.
    for k in range(1, 7):
        assert abs(zones[:k].count("a") - zones[:k].count("b")) <= 1


async def test_preemption_evicts_a_lower_priority_pod(cluster: Cluster):
    for name, value in (("low", 10), ("high", 1000)):
        await cluster.client.create(
            PRIORITY_CLASSES,
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
            },
        )
    await cluster.node("only", cpu="2")
    await cluster.pod("low-1", cpu="1", priorityClassName="low")
    await cluster.pod("low-2", cpu="1", priorityClassName="low")
    await cluster.bound("low-1")
    await cluster.bound("low-2")

    await cluster.pod("vip", cpu="1", priorityClassName="high")
    assert await cluster.bound("vip") == "only"

    async def survivors() -> list[str]:
        items = (await cluster.client.list(PODS, NS))["items"]
        names = [p["metadata"]["name"] for p in items if p["metadata"]["name"].startswith("low")]
        return names if len(names) == 1 else []

    (survivor,) = await eventually(survivors)
    victim = "low-2" if survivor == "low-1" else "low-1"
    assert any("on node only" in m for m in await cluster.events_for(victim, "Preempted"))
