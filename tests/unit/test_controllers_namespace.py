"""Namespace controller: reconcile(name) against a fake client."""

from __future__ import annotations

from typing import Any

from controllers.namespace import (
    NAMESPACES,
    NamespaceController,
    _group_resource,
    namespaced_types,
)
from controllers.testing import FakeClient, store_of
from machinery import errors
from machinery.kinds import ResourceType, lookup

POD, CM = lookup("pods"), lookup("configmaps")
WIDGET = ResourceType("example.com", "v1", "Widget", "widgets", "widget", True)


def namespace(deleting=True):
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team", "uid": "ns-uid"},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
    if deleting:
        ns["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return ns


def item(rt, name, finalizers=None):
    m = {"name": name, "namespace": "team"}
    if finalizers:
        m["finalizers"] = finalizers
    return rt, {"metadata": m}


def controller(*objects, ns=None):
    ns = ns or namespace()
    client = FakeClient((NAMESPACES, ns), *objects)
    ctl = NamespaceController(
        client,
        namespaces=store_of(client.stored(NAMESPACES, None, "team")),
        types=[POD, CM],
        now=lambda: 1_800_000_000.0,
    )
    return ctl, client


def test_namespaced_types_cover_workloads_once():
    plurals = [t.plural for t in namespaced_types()]
    assert {"pods", "deployments", "replicasets", "configmaps", "secrets"} <= set(plurals)
    assert "nodes" not in plurals and "namespaces" not in plurals
    assert plurals.count("events") == 1


async def test_active_namespace_is_left_alone():
    ctl, client = controller(item(POD, "p"), ns=namespace(deleting=False))
    assert await ctl.reconcile("team") is None
    assert client.writes() == []


async def test_empties_namespace_then_finalizes():
    ctl, client = controller(item(POD, "p"), item(CM, "a"), item(CM, "b"))
    assert await ctl.reconcile("team") is None
    assert sorted(a.name for a in client.writes("delete")) == ["a", "b", "p"]
    [fin] = client.writes("update", "namespaces/finalize")
    assert fin.body["spec"]["finalizers"] == []


async def test_remaining_content_is_reported_and_rechecked():
    ctl, client = controller(item(CM, "held", finalizers=["example.com/hold"]))
    result = await ctl.reconcile("team")
    assert result is not None and result.requeue_after > 0
    assert client.writes("update", "namespaces/finalize") == []
    status = client.writes("update", "namespaces/status")[-1].body["status"]
    assert status["phase"] == "Terminating"
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["NamespaceContentRemaining"]["reason"] == "SomeResourcesRemain"
    assert (
        conds["NamespaceContentRemaining"]["message"]
        == "Some resources are remaining: configmaps has 1 resource instances"
    )
    assert (
        conds["NamespaceDeletionContentFailure"]["status"],
        conds["NamespaceDeletionContentFailure"]["reason"],
    ) == ("False", "ContentDeleted")
    assert (
        conds["NamespaceFinalizersRemaining"]["message"]
        == "Some content in the namespace has finalizers remaining: example.com/hold in 1 "
        "resource instances"
    )


def test_group_resource_names_follow_kubernetes():
    assert _group_resource(CM) == "configmaps"
    assert _group_resource(lookup("deployments")) == "deployments.apps"
    assert _group_resource(WIDGET) == "widgets.example.com"


class _Reply:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def json(self) -> dict[str, Any]:
        return self.body


VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
DISCOVERY = {
    "/api/v1": {
        "groupVersion": "v1",
        "resources": [
            {"name": "pods", "kind": "Pod", "namespaced": True, "verbs": VERBS},
            {"name": "pods/status", "kind": "Pod", "namespaced": True, "verbs": ["get"]},
            {"name": "nodes", "kind": "Node", "namespaced": False, "verbs": VERBS},
        ],
    },
    "/apis": {
        "groups": [
            {"name": "example.com", "preferredVersion": {"groupVersion": "example.com/v1"}},
            {"name": "broken.io", "preferredVersion": {"groupVersion": "broken.io/v1"}},
        ]
    },
    "/apis/example.com/v1": {
        "groupVersion": "example.com/v1",
        "resources": [{"name": "widgets", "kind": "Widget", "namespaced": True, "verbs": VERBS}],
    },
}


class DiscoveringClient(FakeClient):
    """A fake client that also answers discovery requests (``broken.io`` fails with 503)."""

    def __init__(self, *objects: Any, broken: bool = False) -> None:
        super().__init__(*objects)
        self.broken = broken

    async def request(self, method: str, path: str, **_: Any) -> _Reply:
        if path in DISCOVERY:
            return _Reply(DISCOVERY[path])
        if path == "/apis/broken.io/v1" and self.broken:
            raise errors.ServiceUnavailable("the server is currently unable to handle the request")
        return _Reply({"groupVersion": path.removeprefix("/apis/"), "resources": []})


def discovering_controller(*objects: Any, broken: bool = False):
    client = DiscoveringClient((NAMESPACES, namespace()), *objects, broken=broken)
    ctl = NamespaceController(
        client,
        namespaces=store_of(client.stored(NAMESPACES, None, "team")),
        now=lambda: 1_800_000_000.0,
    )
    return ctl, client


async def test_custom_resources_found_through_discovery_are_deleted():
    ctl, client = discovering_controller(item(POD, "p"), item(WIDGET, "w"))
    assert await ctl.reconcile("team") is None
    deleted = {(a.resource, a.name) for a in client.writes("delete")}
    assert deleted == {("pods", "p"), ("widgets", "w")}
    assert client.writes("update", "namespaces/finalize")


async def test_failed_discovery_keeps_the_namespace():
    ctl, client = discovering_controller(item(WIDGET, "w"), broken=True)
    result = await ctl.reconcile("team")
    assert result is not None and result.requeue_after > 0
    assert [a.name for a in client.writes("delete")] == ["w"]  # what was found still goes
    assert client.writes("update", "namespaces/finalize") == []
    status = client.writes("update", "namespaces/status")[-1].body["status"]
    cond = next(c for c in status["conditions"] if c["type"] == "NamespaceDeletionDiscoveryFailure")
    assert (cond["status"], cond["reason"]) == ("True", "DiscoveryFailed")
    assert cond["message"].startswith("Discovery failed for some groups, 1 failing: broken.io/v1")
