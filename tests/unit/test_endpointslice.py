"""EndpointSlice controller: the pure plan (table-driven) and reconcile against a fake client."""

from __future__ import annotations

from typing import Any

import pytest

from controllers.endpointslice import (
    ENDPOINTS,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PODS,
    SERVICE_NAME_LABEL,
    SERVICES,
    SLICES,
    EndpointSliceController,
    _slice_service_index,
    plan_endpoints,
    resolve_port,
)
from controllers.testing import FakeClient
from machinery.informer import Store

Obj = dict[str, Any]


def service(name: str = "web", **spec: Any) -> Obj:
    body: Obj = {
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        "clusterIP": "10.96.0.20",
    }
    body.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
        "spec": body,
    }


def pod(
    name: str,
    ip: str | None,
    *,
    ready: bool = True,
    labels: dict[str, str] | None = None,
    deleting: bool = False,
    phase: str = "Running",
    ports: list[Obj] | None = None,
    **spec: Any,
) -> Obj:
    status: Obj = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    m: Obj = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "labels": labels or {"app": "web"},
    }
    if deleting:
        m["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": m,
        "spec": {"nodeName": "node-0", "containers": [{"name": "c", "ports": ports or []}], **spec},
        "status": status,
    }


def all_endpoints(plan: Any) -> list[Obj]:
    return [ep for s in plan.slices.values() for ep in s["endpoints"]]


@pytest.mark.parametrize(
    ("pods", "ready_ips", "not_ready_ips", "terminating_ips"),
    [
        ([pod("a", "10.0.0.1")], ["10.0.0.1"], [], []),
        ([pod("a", "10.0.0.1", ready=False)], [], ["10.0.0.1"], []),
        ([pod("a", None)], [], [], []),
        ([pod("a", "10.0.0.1", phase="Succeeded")], [], [], []),
        ([pod("a", "10.0.0.1", labels={"app": "other"})], [], [], []),
        ([pod("a", "10.0.0.1", deleting=True)], [], ["10.0.0.1"], ["10.0.0.1"]),
        (
            [pod("b", "10.0.0.10"), pod("a", "10.0.0.9", ready=False), pod("c", "10.0.0.2")],
            ["10.0.0.2", "10.0.0.10"],
            ["10.0.0.9"],
            [],
        ),
    ],
    ids=["ready", "not-ready", "no-ip", "terminal", "unselected", "terminating", "mixed-sorted"],
)
def test_plan_conditions(
    pods: list[Obj], ready_ips: list[str], not_ready_ips: list[str], terminating_ips: list[str]
) -> None:
    plan = plan_endpoints(service(), pods)
    eps = all_endpoints(plan)
    assert [e["addresses"][0] for e in eps if e["conditions"]["ready"]] == ready_ips
    assert sorted(e["addresses"][0] for e in eps if not e["conditions"]["ready"]) == not_ready_ips
    assert [e["addresses"][0] for e in eps if e["conditions"]["terminating"]] == terminating_ips
    # the legacy object: ready under addresses, not ready (but not terminating) separately
    subsets = plan.endpoints["subsets"]
    assert [a["ip"] for s in subsets for a in s.get("addresses", [])] == ready_ips
    legacy_not_ready = [a["ip"] for s in subsets for a in s.get("notReadyAddresses", [])]
    assert legacy_not_ready == [ip for ip in not_ready_ips if ip not in terminating_ips]


def test_publish_not_ready_addresses_marks_everything_ready() -> None:
    svc = service(publishNotReadyAddresses=True)
    plan = plan_endpoints(
        svc, [pod("a", "10.0.0.1", ready=False), pod("b", "10.0.0.2", deleting=True)]
    )
    assert [e["conditions"]["ready"] for e in all_endpoints(plan)] == [True, True]
    assert [e["conditions"]["serving"] for e in all_endpoints(plan)] == [False, True]
    assert [a["ip"] for a in plan.endpoints["subsets"][0]["addresses"]] == ["10.0.0.1", "10.0.0.2"]


def test_named_ports_resolve_per_pod_and_split_slices() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    a = pod("a", "10.0.0.1", ports=[{"name": "web", "containerPort": 8080}])
    b = pod("b", "10.0.0.2", ports=[{"name": "web", "containerPort": 9090}])
    c = pod("c", "10.0.0.3", ports=[{"name": "web", "containerPort": 8080}])
    plan = plan_endpoints(svc, [a, b, c])
    by_port = {
        s["ports"][0]["port"]: [e["addresses"][0] for e in s["endpoints"]]
        for s in plan.slices.values()
    }
    assert by_port == {8080: ["10.0.0.1", "10.0.0.3"], 9090: ["10.0.0.2"]}
    assert sorted(s["ports"][0]["port"] for s in plan.endpoints["subsets"]) == [8080, 9090]


@pytest.mark.parametrize(
    ("target", "ports", "expected"),
    [
        (None, [], 80),
        (8080, [], 8080),
        ("8081", [], 8081),
        ("web", [{"name": "web", "containerPort": 7000}], 7000),
        ("web", [{"name": "web", "containerPort": 7000, "protocol": "UDP"}], None),
        ("missing", [{"name": "web", "containerPort": 7000}], None),
    ],
    ids=["default", "number", "numeric-string", "named", "named-wrong-protocol", "unknown-name"],
)
def test_resolve_port(target: Any, ports: list[Obj], expected: int | None) -> None:
    sp: Obj = {"port": 80, "protocol": "TCP"}
    if target is not None:
        sp["targetPort"] = target
    assert resolve_port(pod("a", "10.0.0.1", ports=ports), sp) == expected


def test_slices_hold_at_most_max_endpoints() -> None:
    pods = [pod(f"p{i}", f"10.0.{i // 250}.{i % 250 + 1}") for i in range(25)]
    plan = plan_endpoints(service(), pods, max_per_slice=10)
    assert sorted(len(s["endpoints"]) for s in plan.slices.values()) == [5, 10, 10]
    assert len({ep["addresses"][0] for ep in all_endpoints(plan)}) == 25


def test_slice_metadata_and_placeholder() -> None:
    plan = plan_endpoints(service(), [])
    [only] = plan.slices.values()
    assert only["endpoints"] == [] and only["ports"] == []
    labels = only["metadata"]["labels"]
    assert labels[SERVICE_NAME_LABEL] == "web" and labels[MANAGED_BY_LABEL] == MANAGED_BY
    [owner] = only["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Service", "uid-web", True)
    assert plan.endpoints["subsets"] == []


def test_hostname_when_subdomain_matches() -> None:
    a = pod("a", "10.0.0.1", hostname="db-0", subdomain="web")
    b = pod("b", "10.0.0.2", hostname="db-1", subdomain="other")
    eps = all_endpoints(plan_endpoints(service(clusterIP="None"), [a, b]))
    assert [e.get("hostname") for e in eps] == ["db-0", None]


# -- reconcile against a fake API ------------------------------------------------------------


class Env:
    def __init__(self, *objects: tuple[Any, Obj]) -> None:
        self.client = FakeClient(*objects)
        self.stores = {
            "services": Store(),
            "pods": Store(),
            "slices": Store({"service": _slice_service_index}),
            "endpoints": Store(),
        }
        self.ctl = EndpointSliceController(
            self.client,
            services=self.stores["services"],
            pods=self.stores["pods"],
            slices=self.stores["slices"],
            endpoints=self.stores["endpoints"],
        )
        self.sync()

    def sync(self) -> None:
        for rt, store in (
            (SERVICES, "services"),
            (PODS, "pods"),
            (SLICES, "slices"),
            (ENDPOINTS, "endpoints"),
        ):
            self.client.sync(rt, self.stores[store])


async def test_reconcile_creates_then_is_idempotent_then_follows_changes() -> None:
    env = Env((SERVICES, service()), (PODS, pod("a", "10.0.0.1")))
    await env.ctl.reconcile("ns/web")
    assert [a.verb for a in env.client.writes()] == ["create", "create"]
    [eps] = env.client.all(SLICES, "ns")
    assert eps["endpoints"][0]["addresses"] == ["10.0.0.1"]
    assert eps["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]

    env.sync()
    before = len(env.client.writes())
    await env.ctl.reconcile("ns/web")
    assert len(env.client.writes()) == before, "a second reconcile wrote again"

    env.client.seed(PODS, pod("b", "10.0.0.2", ready=False))
    env.sync()
    await env.ctl.reconcile("ns/web")
    assert [a.verb for a in env.client.writes()[before:]] == ["update", "update"]
    [eps] = env.client.all(SLICES, "ns")
    assert [(e["addresses"][0], e["conditions"]["ready"]) for e in eps["endpoints"]] == [
        ("10.0.0.1", True),
        ("10.0.0.2", False),
    ]


async def test_reconcile_deletes_stale_and_cleans_up_after_service() -> None:
    stale = plan_endpoints(service(), []).slices
    [(stale_name, stale_body)] = stale.items()
    env = Env((SERVICES, service()), (PODS, pod("a", "10.0.0.1")), (SLICES, stale_body))
    await env.ctl.reconcile("ns/web")
    names = [s["metadata"]["name"] for s in env.client.all(SLICES, "ns")]
    assert stale_name not in names and len(names) == 1

    env.client.objects.pop(("services", "ns", "web"))
    env.sync()
    await env.ctl.reconcile("ns/web")
    assert env.client.all(SLICES, "ns") == []
    assert env.client.all(ENDPOINTS, "ns") == []


@pytest.mark.parametrize(
    "spec",
    [{"selector": None}, {"type": "ExternalName", "externalName": "example.org"}],
    ids=["no-selector", "external-name"],
)
async def test_services_without_selector_are_left_alone(spec: Obj) -> None:
    env = Env((SERVICES, service(**spec)), (PODS, pod("a", "10.0.0.1")))
    await env.ctl.reconcile("ns/web")
    assert env.client.writes() == []


def test_pod_events_enqueue_matching_services() -> None:
    env = Env((SERVICES, service("web")), (SERVICES, service("db", selector={"app": "db"})))
    env.ctl.on_pod_add(pod("a", "10.0.0.1"))
    assert len(env.ctl.queue) == 1
    old = pod("a", "10.0.0.1")
    new = pod("a", "10.0.0.1", labels={"app": "db"})
    new["metadata"]["resourceVersion"] = "2"
    env.ctl.on_pod_update(old, new)
    assert len(env.ctl.queue) == 2
