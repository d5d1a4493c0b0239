"""The whole autoscaling loop on hollow nodes: synthetic load set on the fake runtimes → node
agents' samplers → the API server's metrics.k8s.io → the HPA controller → Deployment scale.

A real API server process; hollow nodes and the controller-manager (replicaset, deployment,
horizontalpodautoscaler) in this process with short periods (sampling 0.3 s, sync 1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from controllers.manager import ControllerManager
from kubelet.agent import AgentConfig
from kubelet.hollow import HollowNodes
from machinery import errors
from machinery.client import AsyncClient
from machinery.kinds import builtin, lookup
from tests.conftest import ApiServerProcess

PODS, DEPLOYMENTS = lookup("pods"), lookup("deployments")
HPAS = builtin("autoscaling/v2", "HorizontalPodAutoscaler")
HPAS_V1 = builtin("autoscaling/v1", "HorizontalPodAutoscaler")
SYNC = 1.0
NS = "default"


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout} s (last: {last!r})")


class Load:
    """Keeps every running pod of ``app`` at ``millicores`` on its hollow node."""

    def __init__(self, client: AsyncClient, hollow: HollowNodes, app: str) -> None:
        self.client, self.hollow, self.app = client, hollow, app
        self.millicores = 0

    async def run(self) -> None:
        while True:
            pods = await self.client.list(PODS, NS, label_selector=f"app={self.app}")
            for p in pods["items"]:
                runtime = self.hollow.runtimes.get(p["spec"].get("nodeName") or "")
                if runtime is not None:
                    runtime.set_usage(p["metadata"]["uid"], self.millicores, 50 * 1024 * 1024)
            await asyncio.sleep(0.1)


@pytest.fixture
async def cluster(fresh_api: ApiServerProcess) -> AsyncIterator[tuple[AsyncClient, HollowNodes]]:
    client = AsyncClient(fresh_api.url)
    template = AgentConfig(
        node_name="", pleg_period=0.5, resync=None, port=0, log_root="/tmp/tugboat-hollow"
    )
    hollow = HollowNodes(
        client, 2, prefix="hpa-node-", template=replace(template, metrics_period=0.3)
    )
    await hollow.start()
    manager = ControllerManager(
        client,
        controllers=["replicaset", "deployment", "horizontalpodautoscaler"],
        leader_elect=False,
        options={"horizontalpodautoscaler": {"sync_period": SYNC}},
    )
    task = asyncio.create_task(manager.run())
    try:
        yield client, hollow
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await hollow.stop()
        await client.aclose()


def deployment(name: str, replicas: int, node: str, cpu: str | None = "100m") -> dict:
    resources = {"requests": {"cpu": cpu}} if cpu else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeName": node,
                    "containers": [
                        {"name": "app", "image": "busybox:1.35", "resources": resources}
                    ],
                },
            },
        },
    }


def hpa(name: str, lo: int, hi: int, down_window: int) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": lo,
            "maxReplicas": hi,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": down_window}},
        },
    }


def condition(obj: dict, ctype: str) -> dict:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {}
    )


async def test_scales_up_within_a_sync_and_down_after_the_window(cluster) -> None:
    client, hollow = cluster
    await client.create(DEPLOYMENTS, deployment("web", 2, "hpa-node-0"), NS)
    load = Load(client, hollow, "web")
    load_task = asyncio.create_task(load.run())
    try:
        await client.create(HPAS, hpa("web", 2, 5, down_window=6), NS)

        async def metrics_seen() -> bool:
            resp = await client.request(
                "GET",
                f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods",
                params={"labelSelector": "app=web"},
            )
            return len(resp.json()["items"]) == 2

        await eventually(metrics_seen, 20)
        h = await eventually(
            lambda: _get_if(
                client, lambda o: condition(o, "ScalingActive").get("status") == "True"
            ),
            10,
        )
        assert h["status"]["desiredReplicas"] == 2  # idle: 0 % of requests → min
        # load up: 100 % of the 100m request against a 50 % target → twice the replicas
        load.millicores = 100
        started = time.monotonic()
        await eventually(lambda: _replicas(client, at_least=4), SYNC + 3)
        up_after = time.monotonic() - started
        # keeps growing, but never past maxReplicas
        await eventually(lambda: _replicas(client, at_least=5), 10)
        h = await eventually(
            lambda: _get_if(
                client, lambda o: condition(o, "ScalingLimited").get("status") == "True"
            ),
            10,
        )
        assert condition(h, "ScalingLimited")["reason"] == "TooManyReplicas"
        assert (await client.get(DEPLOYMENTS, "web", NS))["spec"]["replicas"] == 5
        current = h["status"]["currentMetrics"][0]["resource"]["current"]
        assert current["averageUtilization"] >= 90
        # load down: not before the 6 s window, then to minReplicas
        load.millicores = 5
        down_at = time.monotonic()
        await eventually(
            lambda: _get_if(
                client,
                lambda o: condition(o, "AbleToScale").get("reason") == "ScaleDownStabilized",
            ),
            6,
        )
        assert (await client.get(DEPLOYMENTS, "web", NS))["spec"]["replicas"] == 5
        await eventually(lambda: _replicas(client, at_most=2), 6 + SYNC + 6)
        down_after = time.monotonic() - down_at
        assert down_after >= 6 - 1.0, down_after  # the window held it (minus sampling lag)
        assert up_after <= SYNC + 3
        events = await client.list(lookup("events"), NS)
        reasons = [e["reason"] for e in events["items"] if e["involvedObject"]["name"] == "web"]
        assert "SuccessfulRescale" in reasons
    finally:
        load_task.cancel()


async def test_bad_targets_are_conditions_not_crashes(cluster) -> None:
    client, _ = cluster
    await client.create(HPAS, hpa("ghost", 1, 3, 0), NS)
    h = await eventually(
        lambda: _get_if(
            client, lambda o: condition(o, "AbleToScale").get("status") == "False", "ghost"
        ),
        10,
    )
    assert condition(h, "AbleToScale")["reason"] == "FailedGetScale"
    await client.create(DEPLOYMENTS, deployment("noreq", 1, "hpa-node-1", cpu=None), NS)
    await client.create(HPAS, hpa("noreq", 1, 3, 0), NS)
    h = await eventually(
        lambda: _get_if(
            client,
            lambda o: "missing request" in condition(o, "ScalingActive").get("message", ""),
            "noreq",
        ),
        20,
    )
    assert condition(h, "ScalingActive")["status"] == "False"
    assert condition(h, "ScalingActive")["reason"] == "FailedGetResourceMetric"
    with pytest.raises(errors.Invalid):
        await client.create(HPAS, hpa("inverted", 5, 2, 0), NS)


async def _get_if(client: AsyncClient, pred: Callable[[dict], bool], name: str = "web") -> Any:
    obj = await client.get(HPAS, name, NS)
    return obj if pred(obj) else None


async def _replicas(client: AsyncClient, at_least: int = 0, at_most: int = 10**6) -> bool:
    d = await client.get(DEPLOYMENTS, "web", NS)
    n = d["spec"]["replicas"]
    assert n <= 5, f"maxReplicas exceeded: {n}"
    return at_least <= n <= at_most
