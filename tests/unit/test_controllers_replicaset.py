"""ReplicaSet controller: reconcile(key) against a fake client and prefilled stores."""

from __future__ import annotations

import pytest

from controllers.objects import format_time
from controllers.ranking import rank_for_deletion
from controllers.replicaset import (
    PODS,
    REPLICASETS,
    ReplicaSetController,
    calculate_status,
    slow_start_batch,
)
from controllers.testing import FakeClient, FakeRecorder, store_of
from machinery import errors

NOW = 1_800_000_000.0


def replicaset(replicas=3, *, uid="rs-uid", labels=None, min_ready=0, generation=2, status=None):
    labels = labels or {"app": "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "uid": uid,
            "generation": generation,
            "resourceVersion": "5",
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
        "status": status or {},
    }


def pod(
    name,
    *,
    owner="rs-uid",
    labels=None,
    phase="Running",
    ready=True,
    node="n1",
    created=0,
    ready_since=None,
    restarts=0,
    deleting=False,
):
    meta = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "resourceVersion": "7",
        "labels": labels if labels is not None else {"app": "web"},
        "creationTimestamp": format_time(NOW - 1000 + created),
    }
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web",
                "uid": owner,
                "controller": True,
            }
        ]
    if deleting:
        meta["deletionTimestamp"] = format_time(NOW)
    conds = []
    if ready is not None:
        conds.append(
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": format_time(ready_since or NOW - 500),
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node} if node else {},
        "status": {
            "phase": phase,
            "conditions": conds,
            "containerStatuses": [{"name": "c", "restartCount": restarts}],
        },
    }


def controller(rs, pods, client=None):
    client = client or FakeClient()
    client.seed(REPLICASETS, rs)
    for p in pods:
        client.seed(PODS, p)
    rec = FakeRecorder()
    ctl = ReplicaSetController(
        client, replicasets=store_of(rs), pods=store_of(*pods), recorder=rec, now=lambda: NOW
    )
    return ctl, client, rec


async def test_creates_missing_pods_once_thanks_to_expectations():
    ctl, client, rec = controller(replicaset(3), [pod("a")])
    await ctl.reconcile("ns/web")
    creates = client.writes("create", "pods")
    assert len(creates) == 2
    body = creates[0].body
    assert body["metadata"]["generateName"] == "web-"
    assert body["metadata"]["labels"] == {"app": "web"}
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web",
            "uid": "rs-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert rec.reasons().count("SuccessfulCreate") == 2
    # the pod cache has not seen the new pods: a second reconcile must not create again
    client.sync(REPLICASETS, ctl.replicasets)
    await ctl.reconcile("ns/web")
    assert len(client.writes("create", "pods")) == 2
    assert ctl.expectations.pending("ns/web") == (2, 0)
    for created in client.all(PODS)[1:]:
        ctl.pods.put(created)
        ctl.on_pod_add(created)
    assert ctl.expectations.satisfied("ns/web")
    await ctl.reconcile("ns/web")
    assert len(client.writes("create", "pods")) == 2


async def test_status_written_through_subresource():
    rs = replicaset(3, min_ready=10)
    rs["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
    full = {"app": "web", "tier": "front"}
    ctl, client, _ = controller(
        rs,
        [pod("a", labels=full), pod("b", labels=full, ready_since=NOW - 5), pod("c", ready=False)],
    )
    await ctl.reconcile("ns/web")
    assert client.writes("create") == client.writes("delete") == []
    status = client.writes("update", "replicasets/status")[-1].body["status"]
    assert status["replicas"] == 3
    assert status["fullyLabeledReplicas"] == 2
    assert status["readyReplicas"] == 2
    assert status["availableReplicas"] == 1  # b ready for 5 s < minReadySeconds 10
    assert status["observedGeneration"] == 2


async def test_min_ready_seconds_requeues():
    ctl, _, _ = controller(replicaset(1, min_ready=10), [pod("a", ready_since=NOW - 5)])
    result = await ctl.reconcile("ns/web")
    assert result is not None and result.requeue_after == 10


async def test_deletes_least_valuable_pods():
    pods = [
        pod("running-old", created=0),
        pod("pending", phase="Pending", ready=False),
        pod("unscheduled", node=None, phase="Pending", ready=None),
        pod("running-new", created=50),
    ]
    ctl, client, rec = controller(replicaset(1), pods)
    await ctl.reconcile("ns/web")
    deleted = sorted(a.name for a in client.writes("delete", "pods"))
    assert deleted == ["pending", "running-new", "unscheduled"]
    assert all(
        a.options["preconditions"] == {"uid": f"uid-{a.name}"}
        for a in client.writes("delete", "pods")
    )
    assert rec.reasons().count("SuccessfulDelete") == 3
    assert ctl.expectations.pending("ns/web") == (0, 3)


def test_ranking_order():
    pods = [
        pod("ready-long", ready_since=NOW - 900),
        pod("ready-short", ready_since=NOW - 10),
        pod("restarts", ready_since=NOW - 900, restarts=5),
        pod("unknown", phase="Unknown", ready=False),
        pod("notready", ready=False),
        pod("pending", phase="Pending", ready=False),
        pod("unscheduled", node=None, phase="Pending", ready=None),
    ]
    order = [p["metadata"]["name"] for p in rank_for_deletion(pods)]
    assert order == [
        "unscheduled",
        "pending",
        "unknown",
        "notready",
        "ready-short",
        "restarts",
        "ready-long",
    ]


def test_ranking_prefers_doubled_up_nodes():
    pods = [pod("alone", node="n1"), pod("crowded", node="n2")]
    related = [*pods, pod("x", node="n2"), pod("y", node="n2")]
    assert rank_for_deletion(pods, related)[0]["metadata"]["name"] == "crowded"


async def test_slow_start_batches_stop_on_first_error():
    calls = []

    async def fn():
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")

    done, err = await slow_start_batch(10, 1, fn)
    assert (len(calls), done, str(err)) == (3, 2, "boom")  # batches 1, then 2 (one failed)


async def test_create_failure_sets_replica_failure_and_raises():
    client = FakeClient()
    client.fail("create", "pods", errors.Invalid('pods "x" is invalid: quota'), times=5)
    ctl, client, rec = controller(replicaset(4), [], client)
    with pytest.raises(errors.Invalid):
        await ctl.reconcile("ns/web")
    assert len(client.writes("create", "pods")) == 1  # the first batch failed: stop
    status = client.stored(REPLICASETS, "ns", "web")["status"]
    cond = status["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == (
        "ReplicaFailure",
        "True",
        "FailedCreate",
    )
    assert "FailedCreate" in rec.reasons()
    assert ctl.expectations.satisfied("ns/web")  # unobservable creations were written off


QUOTA_MESSAGE = (
    'pods "web-x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2'
)


async def test_quota_refusal_records_failed_create_and_replica_failure():
    """A 403 from quota admission is reported like any create error (Kubernetes' FailedCreate
    event, ``Error creating: <message>``) and sets ReplicaFailure."""
    client = FakeClient()
    client.fail("create", "pods", errors.Forbidden(QUOTA_MESSAGE), times=5)
    ctl, client, rec = controller(replicaset(4), [], client)
    with pytest.raises(errors.Forbidden):
        await ctl.reconcile("ns/web")
    assert rec.events == [("Warning", "FailedCreate", f"Error creating: {QUOTA_MESSAGE}", "web")]
    cond = client.stored(REPLICASETS, "ns", "web")["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == (
        "ReplicaFailure",
        "True",
        "FailedCreate",
        QUOTA_MESSAGE,
    )


async def test_terminating_namespace_refusal_records_no_event():
    message = "unable to create new content in namespace ns because it is being terminated"
    refusal = errors.Forbidden(
        message, causes=[{"type": "NamespaceTerminating", "message": message}]
    )
    client = FakeClient()
    client.fail("create", "pods", refusal)
    ctl, client, rec = controller(replicaset(1), [], client)
    with pytest.raises(errors.Forbidden):
        await ctl.reconcile("ns/web")
    assert "FailedCreate" not in rec.reasons()


async def test_adopts_orphans_and_releases_mismatches():
    orphan = pod("orphan", owner=None)
    stray = pod("stray", labels={"app": "other"})
    foreign = pod("foreign", owner="someone-else")
    ctl, client, _ = controller(replicaset(3), [orphan, stray, foreign])
    await ctl.reconcile("ns/web")
    patches = {a.name: a.body for a in client.writes("patch", "pods")}
    assert set(patches) == {"orphan", "stray"}
    adopted = client.stored(PODS, "ns", "orphan")["metadata"]["ownerReferences"]
    assert adopted[0]["uid"] == "rs-uid" and adopted[0]["controller"] is True
    assert client.stored(PODS, "ns", "stray")["metadata"]["ownerReferences"] == []
    assert patches["orphan"][0] == {"op": "test", "path": "/metadata/uid", "value": "uid-orphan"}
    # one adopted pod counts; two more are created (foreign is not ours)
    assert len(client.writes("create", "pods")) == 2


@pytest.mark.parametrize(
    ("cache_revision", "creates"),
    [("4", 1), ("5", 2)],
    ids=["cache-behind-reads-live", "cache-caught-up-uses-cache"],
)
async def test_pod_cache_must_have_seen_the_replicaset(cache_revision, creates):
    """An orphan created before the ReplicaSet (revision 5) but not yet in the pod cache is
    found by a live read, adopted, and counted; a cache at revision 5 is trusted as is."""
    rs = replicaset(2)
    ctl, client, _ = controller(rs, [])
    client.seed(PODS, pod("orphan", owner=None))  # on the server, not in the cache
    ctl.pods_revision = lambda: cache_revision
    ctl.on_rs_add(rs)
    await ctl.reconcile("ns/web")
    assert len(client.writes("create", "pods")) == creates
    assert [a.name for a in client.writes("patch", "pods")] == (["orphan"] if creates == 1 else [])


async def test_missing_replicaset_is_done():
    ctl, client, _ = controller(replicaset(1), [])
    ctl.replicasets = store_of()
    assert await ctl.reconcile("ns/web") is None
    assert client.writes() == []


async def test_deleting_pods_are_replaced():
    ctl, client, _ = controller(replicaset(2), [pod("a"), pod("b", deleting=True)])
    await ctl.reconcile("ns/web")
    assert len(client.writes("create", "pods")) == 1
    assert client.writes("delete", "pods") == []


def test_calculate_status_clears_failure_when_healthy():
    rs = replicaset(1, status={"conditions": [{"type": "ReplicaFailure", "status": "True"}]})
    status = calculate_status(rs, [pod("a")], None, "FailedCreate", NOW)
    assert "conditions" not in status


def test_pod_events_enqueue_owner_or_matching():
    rs = replicaset(1)
    ctl, _, _ = controller(rs, [])
    ctl.on_pod_add(pod("x"))
    ctl.on_pod_add(pod("orphan", owner=None))
    ctl.on_pod_add(pod("nomatch", owner=None, labels={"app": "zzz"}))
    assert len(ctl.queue) == 1  # de-duplicated: both enqueue ns/web
