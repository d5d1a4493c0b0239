"""Deployment controller: reconcile(key) against a fake client; ReplicaSet status simulated."""

from __future__ import annotations

import copy

import pytest

from controllers.conditions import get_condition
from controllers.deployment import DeploymentController
from controllers.deployment.controller import DEPLOYMENTS, PODS, REPLICASETS
from controllers.deployment.revisions import REVISION, REVISION_HISTORY, build_new_rs
from controllers.objects import spec_replicas
from controllers.testing import FakeClient, FakeRecorder, store_of
from machinery import errors

T0 = 1_800_000_000.0


def deployment(replicas=3, image="app:1", strategy=None, **spec):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            "strategy": strategy
            or {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            **spec,
        },
    }


class Cluster:
    """The fake API plus caches that catch up between reconciles, and a stand-in for the
    ReplicaSet controller and kubelets (every RS's pods exist and become available)."""

    def __init__(self, d, now=T0):
        self.client = FakeClient()
        self.client.seed(DEPLOYMENTS, d)
        self.recorder = FakeRecorder()
        self.time = now
        self.ctl = DeploymentController(
            self.client,
            deployments=store_of(),
            replicasets=store_of(),
            pods=store_of(),
            recorder=self.recorder,
            now=lambda: self.time,
        )

    def sync(self):
        for rt, store in (
            (DEPLOYMENTS, self.ctl.deployments),
            (REPLICASETS, self.ctl.replicasets),
            (PODS, self.ctl.pods),
        ):
            self.client.sync(rt, store)

    async def reconcile(self):
        self.sync()
        result = await self.ctl.reconcile("ns/web")
        self.sync()
        return result

    def rs_list(self):
        return sorted(self.client.all(REPLICASETS), key=lambda r: r["metadata"]["name"])

    def deployment(self):
        return self.client.stored(DEPLOYMENTS, "ns", "web")

    def pods_follow(self, available=True):
        for rs in self.client.all(REPLICASETS):
            n = spec_replicas(rs, 0)
            rs["status"] = {
                "replicas": n,
                "readyReplicas": n if available else 0,
                "availableReplicas": n if available else 0,
                "observedGeneration": rs["metadata"].get("generation", 1),
            }

    def edit(self, fn):
        d = copy.deepcopy(self.deployment())
        fn(d)
        d["metadata"]["generation"] += 1
        self.client.objects[("deployments", "ns", "web")] = d

    async def converge(self, steps=40, check=None):
        for _ in range(steps):
            before = repr(self.client.objects)
            await self.reconcile()
            if check:
                check(self)
            self.pods_follow()
            if repr(self.client.objects) == before:
                return
        pytest.fail("did not converge")


async def test_new_deployment_creates_first_replicaset():
    c = Cluster(deployment(3))
    await c.reconcile()
    [rs] = c.rs_list()
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["spec"]["replicas"] == 3
    ann = rs["metadata"]["annotations"]
    assert ann[REVISION] == "1"
    assert ann["deployment.kubernetes.io/desired-replicas"] == "3"
    assert ann["deployment.kubernetes.io/max-replicas"] == "4"
    assert rs["metadata"]["ownerReferences"][0]["uid"] == "d-uid"
    d = c.deployment()
    assert d["metadata"]["annotations"][REVISION] == "1"
    assert get_condition(d["status"], "Progressing")["reason"] == "NewReplicaSetCreated"
    assert (
        "Normal",
        "ScalingReplicaSet",
        f"Scaled up replica set web-{h} to 3",
        "web",
    ) in c.recorder.events


async def test_rollout_completes_with_conditions_and_counts():
    c = Cluster(deployment(3))
    await c.converge()
    d = c.deployment()
    st = d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"]) == (3, 3, 3)
    assert st["observedGeneration"] == 1
    assert get_condition(st, "Available")["reason"] == "MinimumReplicasAvailable"
    assert get_condition(st, "Progressing")["reason"] == "NewReplicaSetAvailable"


def _bounds(replicas, surge, unavailable):
    def check(c):
        total = sum(spec_replicas(rs, 0) for rs in c.client.all(REPLICASETS))
        assert total <= replicas + surge
        available = sum(
            (rs.get("status") or {}).get("availableReplicas", 0) for rs in c.client.all(REPLICASETS)
        )
        assert available >= replicas - unavailable

    return check


async def test_rolling_update_then_rollback_reuses_replicaset():
    c = Cluster(
        deployment(
            4,
            strategy={
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1},
            },
        )
    )
    await c.converge()
    [first] = c.rs_list()
    original_template = copy.deepcopy(first["spec"]["template"])
    c.edit(lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="app:2"))
    await c.converge(check=_bounds(4, 1, 1))
    assert len(c.rs_list()) == 2
    new = next(r for r in c.rs_list() if r["metadata"]["name"] != first["metadata"]["name"])
    assert (spec_replicas(new), new["metadata"]["annotations"][REVISION]) == (4, "2")
    assert c.deployment()["metadata"]["annotations"][REVISION] == "2"

    # kubectl rollout undo: the old template, hash label dropped, Go artefacts added
    undo = copy.deepcopy(original_template)
    undo["metadata"]["labels"].pop("pod-template-hash")
    undo["metadata"]["creationTimestamp"] = None
    undo["spec"]["containers"][0]["resources"] = {}
    c.edit(lambda d: d["spec"].update(template=undo))
    creates = len(c.client.writes("create", "replicasets"))
    await c.converge(check=_bounds(4, 1, 1))
    assert len(c.client.writes("create", "replicasets")) == creates  # reused, not recreated
    reused = c.client.stored(REPLICASETS, "ns", first["metadata"]["name"])
    assert spec_replicas(reused) == 4
    assert reused["metadata"]["annotations"][REVISION] == "3"
    assert reused["metadata"]["annotations"][REVISION_HISTORY] == "1"
    assert c.deployment()["metadata"]["annotations"][REVISION] == "3"
    assert spec_replicas(c.client.stored(REPLICASETS, "ns", new["metadata"]["name"])) == 0


async def test_scaling_records_event_with_from():
    c = Cluster(deployment(3))
    await c.converge()
    [rs] = c.rs_list()
    c.edit(lambda d: d["spec"].update(replicas=5))
    await c.converge()
    assert spec_replicas(c.rs_list()[0]) == 5
    name = rs["metadata"]["name"]
    assert (
        "Normal",
        "ScalingReplicaSet",
        f"Scaled up replica set {name} to 5 from 3",
        "web",
    ) in c.recorder.events
    assert (
        c.rs_list()[0]["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"]
        == "5"
    )


async def test_paused_deployment_scales_but_does_not_roll_out():
    c = Cluster(deployment(2))
    await c.converge()
    c.edit(lambda d: d["spec"].update(paused=True))
    c.edit(lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="app:2"))
    c.edit(lambda d: d["spec"].update(replicas=3))
    await c.converge()
    [rs] = c.rs_list()
    assert spec_replicas(rs) == 3
    cond = get_condition(c.deployment()["status"], "Progressing")
    assert (cond["status"], cond["reason"]) == ("Unknown", "DeploymentPaused")
    c.edit(lambda d: d["spec"].update(paused=False))
    await c.converge()
    assert len(c.rs_list()) == 2
    assert (
        get_condition(c.deployment()["status"], "Progressing")["reason"] == "NewReplicaSetAvailable"
    )


async def test_recreate_scales_old_to_zero_before_creating_new():
    c = Cluster(deployment(3, strategy={"type": "Recreate"}))
    await c.converge()
    c.edit(lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="app:2"))
    old_pod = {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "labels": {"app": "web"},
            "ownerReferences": [
                {
                    "kind": "ReplicaSet",
                    "controller": True,
                    "uid": c.rs_list()[0]["metadata"]["uid"],
                    "name": c.rs_list()[0]["metadata"]["name"],
                }
            ],
        },
        "status": {"phase": "Running"},
    }
    c.client.seed(PODS, old_pod)
    await c.reconcile()
    assert [spec_replicas(r) for r in c.rs_list()] == [0]
    c.pods_follow()
    await c.reconcile()  # an old pod still runs: wait
    assert len(c.rs_list()) == 1
    del c.client.objects[("pods", "ns", "p")]
    await c.converge()
    sizes = sorted(spec_replicas(r) for r in c.rs_list())
    assert sizes == [0, 3]


async def test_history_cleanup_respects_limit():
    c = Cluster(deployment(1, revisionHistoryLimit=1))
    await c.converge()
    for image in ("app:2", "app:3", "app:4"):
        c.edit(lambda d, i=image: d["spec"]["template"]["spec"]["containers"][0].update(image=i))
        await c.converge()
    revisions = sorted(int(r["metadata"]["annotations"][REVISION]) for r in c.rs_list())
    assert revisions == [3, 4]


async def test_progress_deadline_exceeded():
    c = Cluster(deployment(2, progressDeadlineSeconds=30))
    await c.reconcile()
    c.pods_follow(available=False)
    await c.reconcile()
    result = await c.reconcile()
    assert result is not None and 0 < result.requeue_after <= 31
    c.time += 31
    await c.reconcile()
    cond = get_condition(c.deployment()["status"], "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")


async def test_hash_collision_bumps_collision_count():
    c = Cluster(deployment(1))

    squatter = build_new_rs(c.deployment(), None)
    squatter["metadata"]["ownerReferences"] = []
    squatter["metadata"]["labels"] = {"other": "x"}
    squatter["spec"]["template"]["spec"]["containers"][0]["image"] = "different"
    c.client.seed(REPLICASETS, squatter)
    with pytest.raises(errors.TemporaryError):
        await c.reconcile()
    assert c.deployment()["status"]["collisionCount"] == 1
    await c.reconcile()
    names = {r["metadata"]["name"] for r in c.rs_list()}
    assert len(names) == 2 and squatter["metadata"]["name"] in names


async def test_adopts_matching_orphan_replicaset():
    c = Cluster(deployment(2))

    orphan = build_new_rs(c.deployment(), None)
    orphan["metadata"]["ownerReferences"] = []
    orphan["spec"]["replicas"] = 2
    c.client.seed(REPLICASETS, orphan)
    await c.converge()
    [rs] = c.rs_list()
    assert rs["metadata"]["ownerReferences"][0]["uid"] == "d-uid"
    assert c.client.writes("create", "replicasets") == []


async def test_replicaset_cache_must_have_seen_the_deployment():
    """An orphan ReplicaSet that the cache (at revision 49) does not show yet is found by a live
    read and adopted when the Deployment was first seen at revision 50, not created again."""
    d = deployment(2)
    d["metadata"]["resourceVersion"] = "50"
    c = Cluster(d)
    orphan = build_new_rs(c.deployment(), None)
    orphan["metadata"]["ownerReferences"] = []
    orphan["spec"]["replicas"] = 2
    c.client.seed(REPLICASETS, orphan)
    c.client.sync(DEPLOYMENTS, c.ctl.deployments)  # only the Deployment cache has caught up
    c.ctl.replicasets_revision = lambda: "49"
    c.ctl.on_add(c.deployment())
    await c.ctl.reconcile("ns/web")
    assert c.client.writes("create", "replicasets") == []
    [rs] = c.rs_list()
    assert rs["metadata"]["ownerReferences"][0]["uid"] == "d-uid"


async def test_rs_events_enqueue_owner():
    c = Cluster(deployment(1))
    await c.reconcile()
    c.ctl.queue = type(c.ctl.queue)(name="t")
    [rs] = c.rs_list()
    c.ctl.on_rs_update(rs, rs)
    assert len(c.ctl.queue) == 1
