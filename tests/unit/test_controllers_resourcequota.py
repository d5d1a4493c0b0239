"""Quota accounting (pure, table-driven) and the controller's reconcile on fixed caches."""

from __future__ import annotations

from typing import Any

import pytest

from controllers.resourcequota import ResourceQuotaController, pod_counts, status_patch, used
from machinery.informer import Store

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def pod(name: str, *containers: dict, init: list[dict] | None = None, **extra: Any) -> dict:
    spec: dict = {"containers": [{"name": f"c{i}", **c} for i, c in enumerate(containers)]}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", **c} for i, c in enumerate(init)]
    body = {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}
    for key, value in extra.items():
        body.setdefault(key, {}).update(value)
    return body


def res(requests: dict | None = None, limits: dict | None = None) -> dict:
    return {"resources": {"requests": requests or {}, "limits": limits or {}}}


def obj(name: str, **spec: Any) -> dict:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}


PODS = [
    pod("a", res({"cpu": "250m", "memory": "64Mi"}, {"memory": "128Mi"})),
    pod("b", res(limits={"cpu": "1", "memory": "1Gi"}), res({"cpu": "100m"})),
    pod("c", res({"cpu": "50m"}), init=[res({"cpu": "2"}, {"cpu": "3"})]),
    pod("done", res({"cpu": "8"}), status={"phase": "Succeeded"}),
    pod("failed", res({"cpu": "8"}), status={"phase": "Failed"}),
]
INVENTORY: dict[str, list[dict]] = {
    "pods": PODS,
    "services": [
        obj("web", type="ClusterIP", ports=[{"port": 80}]),
        obj("np", type="NodePort", ports=[{"port": 80}, {"port": 443}]),
        obj("lb", type="LoadBalancer", ports=[{"port": 80}]),
    ],
    "configmaps": [obj("c1"), obj("c2")],
    "secrets": [obj("s1")],
    "persistentvolumeclaims": [
        obj("d1", storageClassName="local-path", resources={"requests": {"storage": "1Gi"}}),
        obj("d2", storageClassName="fast", resources={"requests": {"storage": "512Mi"}}),
    ],
    "deployments.apps": [obj("web")],
}


@pytest.mark.parametrize(
    ("hard", "expected"),
    [
        ({"pods": "10", "count/pods": "10"}, {"pods": "3", "count/pods": "3"}),
        (
            {"requests.cpu": "10", "cpu": "10", "limits.cpu": "10"},
            # a: 250m; b: 1 (limit stands in) + 100m; c: max(50m, init 2) = 2
            {"requests.cpu": "3350m", "cpu": "3350m", "limits.cpu": "4"},
        ),
        (
            {"requests.memory": "4Gi", "memory": "4Gi", "limits.memory": "4Gi"},
            {"requests.memory": "1088Mi", "memory": "1088Mi", "limits.memory": "1152Mi"},
        ),
        (
            {"services": "5", "services.nodeports": "5", "services.loadbalancers": "1"},
            {"services": "3", "services.nodeports": "3", "services.loadbalancers": "1"},
        ),
        (
            {"configmaps": "9", "secrets": "9", "count/configmaps": "9", "count/secrets": "9"},
            {"configmaps": "2", "secrets": "1", "count/configmaps": "2", "count/secrets": "1"},
        ),
        (
            {
                "persistentvolumeclaims": "5",
                "requests.storage": "10Gi",
                "local-path.storageclass.storage.k8s.io/requests.storage": "5Gi",
                "fast.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
            },
            {
                "persistentvolumeclaims": "2",
                "requests.storage": "1536Mi",
                "local-path.storageclass.storage.k8s.io/requests.storage": "1Gi",
                "fast.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
            },
        ),
        ({"count/deployments.apps": "2"}, {"count/deployments.apps": "1"}),
        ({"count/widgets.example.com": "1", "requests.nvidia.com/gpu": "1"}, {}),
        ({"requests.ephemeral-storage": "1Gi"}, {"requests.ephemeral-storage": "0"}),
    ],
    ids=[
        "pod-count",
        "cpu",
        "memory",
        "services",
        "configmaps-secrets",
        "claims-and-classes",
        "generic-count",
        "unknown-left-out",
        "zero",
    ],
)
def test_used(hard: dict, expected: dict) -> None:
    assert used(hard, INVENTORY.get, NOW) == expected


@pytest.mark.parametrize(
    ("extra", "counts"),
    [
        ({}, True),
        ({"status": {"phase": "Running"}}, True),
        ({"status": {"phase": "Succeeded"}}, False),
        (
            {
                "metadata": {
                    "deletionTimestamp": "2027-01-15T08:00:00Z",
                    "deletionGracePeriodSeconds": 30,
                }
            },
            True,
        ),
        (
            {
                "metadata": {
                    "deletionTimestamp": "2027-01-15T07:59:00Z",
                    "deletionGracePeriodSeconds": 30,
                }
            },
            False,
        ),
    ],
    ids=["new", "running", "succeeded", "terminating-in-grace", "past-grace"],
)
def test_pod_counts(extra: dict, counts: bool) -> None:
    assert pod_counts(pod("p", res(), **extra), NOW) is counts


def test_status_patch_removes_dropped_names() -> None:
    old = {"hard": {"pods": "2", "secrets": "1"}, "used": {"pods": "1", "secrets": "0"}}
    assert status_patch(old, {"pods": "2", "secrets": "1"}, {"pods": "1", "secrets": "0"}) is None
    assert status_patch(old, {"pods": "3"}, {"pods": "1"}) == {
        "hard": {"secrets": None, "pods": "3"},
        "used": {"secrets": None, "pods": "1"},
    }


class RecordingClient:
    def __init__(self) -> None:
        self.patches: list[tuple[str, dict, str | None, str | None]] = []

    async def patch(self, rt: Any, name: str, body: dict, namespace: str | None = None, **kw: Any):
        self.patches.append((name, body, namespace, kw.get("subresource")))
        return body


def store(*objects: dict) -> Store:
    s = Store()
    for o in objects:
        s.put(o)
    return s


async def test_reconcile_writes_status_once() -> None:
    quota = {
        "metadata": {"name": "q", "namespace": "ns"},
        "spec": {"hard": {"pods": "5", "requests.cpu": "1"}},
    }
    quotas = store(quota)
    pods = store(*PODS[:2])
    client = RecordingClient()
    ctl = ResourceQuotaController(client, quotas=quotas, stores={"pods": pods}, clock=lambda: NOW)
    await ctl.reconcile("ns/q")
    status = {
        "hard": {"pods": "5", "requests.cpu": "1"},
        "used": {"pods": "2", "requests.cpu": "1350m"},
    }
    assert client.patches == [("q", {"status": status}, "ns", "status")]

    quotas.put({**quota, "status": status})
    await ctl.reconcile("ns/q")
    assert len(client.patches) == 1  # unchanged: nothing written
    await ctl.reconcile("ns/gone")
    assert len(client.patches) == 1
