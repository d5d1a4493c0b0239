"""Autoscaling real containers: busybox CPU burners on containerd, measured by the node agent's
sampler from CRI stats, read through the API server's metrics.k8s.io, scaled by the HPA
controller; then the load stops (the template's command is patched to ``sleep``) and the
Deployment shrinks after the (shortened) stabilisation window."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from controllers.manager import ControllerManager
from machinery.client import AsyncClient
from machinery.kinds import builtin, lookup
from tests.conftest import ApiServerProcess
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import RealNode, delete_all_pods, eventually, start_node

pytestmark = pytest.mark.e2e
DEPLOYMENTS = lookup("deployments")
HPAS = builtin("autoscaling/v2", "HorizontalPodAutoscaler")
NS = "default"
BURN = ["sh", "-c", "while true; do :; done"]
IDLE = ["sleep", "3600"]


@pytest.fixture
async def node(
    api: ApiServerProcess, containerd_runtime: ContainerdRuntime
) -> AsyncIterator[tuple[AsyncClient, RealNode, ContainerdRuntime]]:
    client = api.async_client()
    n = await start_node(client, containerd_runtime, prefix="e2e-hpa", metrics_period=2.0)
    manager = ControllerManager(
        client,
        controllers=["replicaset", "deployment", "horizontalpodautoscaler"],
        leader_elect=False,
        options={"horizontalpodautoscaler": {"sync_period": 3.0}},
    )
    task = asyncio.create_task(manager.run())
    try:
        yield client, n, containerd_runtime
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await client.delete(HPAS, "burner", NS)
            await client.delete(DEPLOYMENTS, "burner", NS)
        try:
            await delete_all_pods(client, n.name, timeout=120)
        finally:
            await n.stop()
            await client.aclose()


def burner(node: str, image: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "burner"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "burner"}},
            "template": {
                "metadata": {"labels": {"app": "burner"}},
                "spec": {
                    "nodeName": node,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "burn",
                            "image": image,
                            "command": BURN,
                            # the CFS quota pins each pod at ~100m = 100 % of its request
                            "resources": {
                                "requests": {"cpu": "100m"},
                                "limits": {"cpu": "100m"},
                            },
                        }
                    ],
                },
            },
        },
    }


async def test_cpu_burners_scale_up_then_down(node) -> None:
    client, n, runtime = node
    await client.create(DEPLOYMENTS, burner(n.name, runtime.busybox_image), NS)
    await client.create(
        HPAS,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "burner"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burner"},
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50},
                        },
                    }
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}},
            },
        },
        NS,
    )

    async def replicas() -> int:
        return int((await client.get(DEPLOYMENTS, "burner", NS))["spec"]["replicas"])

    async def grown() -> bool:
        return await replicas() >= 2

    await eventually("burners scaled up", grown, timeout=90, poll=0.5)
    hpa = await client.get(HPAS, "burner", NS)
    current = hpa["status"]["currentMetrics"][0]["resource"]["current"]
    assert current["averageUtilization"] > 55, current
    resp = await client.request("GET", f"/apis/metrics.k8s.io/v1beta1/nodes/{n.name}")
    assert resp.json()["usage"]["cpu"].endswith("n")

    template_patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "burn", "command": IDLE}]}}}
    }
    await client.patch(DEPLOYMENTS, "burner", template_patch, NS, patch_type="strategic")

    async def shrunk() -> bool:
        return await replicas() == 1

    await eventually("idle pods scaled down", shrunk, timeout=120, poll=0.5)
    hpa = await client.get(HPAS, "burner", NS)
    assert hpa["status"]["desiredReplicas"] == 1
