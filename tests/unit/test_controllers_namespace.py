"""Namespace controller: reconcile(name) against a fake client."""

from __future__ import annotations

from controllers.namespace import NAMESPACES, NamespaceController, namespaced_types
from controllers.testing import FakeClient, store_of
from machinery.kinds import lookup

POD, CM = lookup("pods"), lookup("configmaps")


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
        == "Some resources are remaining: configmaps. has 1 resource instances"
    )
    assert (
        conds["NamespaceFinalizersRemaining"]["message"]
        == "Some content in the namespace has finalizers remaining: example.com/hold in 1 "
        "resource instances"
    )
