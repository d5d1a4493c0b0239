"""PersistentVolume binder: the controller on informers fed from a fake API server, driven
through its own queue until it settles."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controllers.testing import FakeClient, FakeRecorder
from controllers.volumebinder import NODES, VolumeBinder
from machinery import errors
from machinery.informer import InformerFactory, key_of
from machinery.kinds import ResourceType
from machinery.volumes import CLASSES, PVCS, PVS, SELECTED_NODE, best_match

Obj = dict[str, Any]
BOUND_BY, BIND_COMPLETED = "pv.kubernetes.io/bound-by-controller", "pv.kubernetes.io/bind-completed"
NO_CLASS = "no persistent volumes available for this claim and no storage class is set"


def volume(name: str, size: str = "1Gi", cls: str | None = "manual", **spec: Any) -> Obj:
    body: Obj = {
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain",
        "hostPath": {"path": f"/data/{name}"},
        **spec,
    }
    if cls is not None:
        body["storageClassName"] = cls
    labels = body.pop("labels", None)
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": body,
        "status": {"phase": "Pending"},
    }


def claim(name: str = "db", size: str = "1Gi", cls: str | None = "manual", **spec: Any) -> Obj:
    body: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
        **spec,
    }
    if cls is not None:
        body["storageClassName"] = cls
    annotations = body.pop("annotations", None) or {}
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"u-{name}",
            "annotations": annotations,
        },
        "spec": body,
        "status": {"phase": "Pending"},
    }


def storage_class(name: str, provisioner: str = "kubernetes.io/no-provisioner", **kw: Any) -> Obj:
    return {"metadata": {"name": name}, "provisioner": provisioner, **kw}


def node(name: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def pinned_to(host: str) -> Obj:
    term = {
        "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]
    }
    return {"required": {"nodeSelectorTerms": [term]}}


class Cluster:
    """A fake API server, the binder on informers fed from it, and the events it sent."""

    def __init__(self, *objects: tuple[ResourceType, Obj]) -> None:
        self.client = FakeClient(*objects)
        self.recorder = FakeRecorder()
        self.factory = InformerFactory(self.client)  # type: ignore[arg-type]
        self.ctl = VolumeBinder.from_factory(self.factory, self.recorder)
        self.sync()

    def sync(self) -> None:
        """The informers catch up with the server: store first, then the handlers (called
        as a watch event would, through the informer's own dispatch)."""
        for rt in (PVCS, PVS, CLASSES, NODES):
            informer = self.factory.informer(rt)
            current = {key_of(o): copy.deepcopy(o) for o in self.client.all(rt)}
            for key in set(informer.store.keys()) - set(current):
                informer._notify_delete(informer.store.delete(key))  # type: ignore[arg-type]
            for obj in current.values():
                old = informer.store.put(obj)
                if old is None:
                    informer._notify_add(obj)
                elif old["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                    informer._notify_update(old, obj)

    async def settle(self) -> None:
        """Reconcile what the handlers queued until nothing is left."""
        self.sync()
        queue = self.ctl.queue
        for _ in range(100):
            if not len(queue):
                return
            key = await queue.get()
            assert key is not None
            try:
                await self.ctl.reconcile(key)
            finally:
                queue.done(key)
            self.sync()
        raise AssertionError("the binder never settles")

    def pv(self, name: str) -> Obj:
        return self.client.stored(PVS, None, name) or {}

    def pvc(self, name: str = "db") -> Obj:
        return self.client.stored(PVCS, "shop", name) or {}

    def events(self, name: str = "db") -> list[tuple[str, str, str]]:
        return [e[:3] for e in self.recorder.events if e[3] == name]


def phase(obj: Obj) -> str | None:
    return (obj.get("status") or {}).get("phase")


def bound_to(pv: Obj) -> str | None:
    return (pv["spec"].get("claimRef") or {}).get("name")


async def test_a_new_volume_becomes_available() -> None:
    c = Cluster((PVS, volume("pv1")))
    await c.settle()
    assert phase(c.pv("pv1")) == "Available"
    assert "claimRef" not in c.pv("pv1")["spec"]


async def test_claim_binds_the_smallest_fitting_volume_of_its_class() -> None:
    c = Cluster(
        (PVS, volume("pv-1g", "1Gi")),
        (PVS, volume("pv-5g", "5Gi")),
        (PVS, volume("pv-3g", "3Gi")),
        (PVS, volume("pv-2g-fast", "2Gi", cls="fast")),
        (PVCS, claim(size="2Gi")),
    )
    claim_rv = c.pvc()["metadata"]["resourceVersion"]
    await c.settle()

    pv = c.pv("pv-3g")
    assert pv["spec"]["claimRef"] == {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": "shop",
        "name": "db",
        "uid": "u-db",
        "resourceVersion": claim_rv,
    }
    assert pv["metadata"]["annotations"] == {BOUND_BY: "yes"}
    assert pv["status"] == {"phase": "Bound"}
    pvc = c.pvc()
    assert pvc["spec"]["volumeName"] == "pv-3g"
    assert pvc["metadata"]["annotations"] == {BIND_COMPLETED: "yes", BOUND_BY: "yes"}
    assert pvc["status"] == {
        "phase": "Bound",
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "3Gi"},
    }
    for other in ("pv-1g", "pv-5g", "pv-2g-fast"):
        assert phase(c.pv(other)) == "Available"
        assert bound_to(c.pv(other)) is None

    writes = len(c.client.writes())
    for key in ("shop/db", "pv-3g"):  # a resync changes nothing
        await c.ctl.reconcile(key)
    assert len(c.client.writes()) == writes


@pytest.mark.parametrize(
    ("pv", "pvc"),
    [
        (volume("pv1", cls="fast"), claim()),
        (volume("pv1", cls="manual"), claim(cls="")),
        (volume("pv1"), claim(accessModes=["ReadWriteMany"])),
        (volume("pv1", accessModes=["ReadOnlyMany"]), claim()),
        (volume("pv1", volumeMode="Block"), claim()),
        (volume("pv1"), claim(volumeMode="Block")),
        (volume("pv1", labels={"tier": "slow"}), claim(selector={"matchLabels": {"tier": "fast"}})),
        (
            volume("pv1", labels={"tier": "fast"}),
            claim(selector={"matchExpressions": [{"key": "zone", "operator": "Exists"}]}),
        ),
        (volume("pv1", "1Gi"), claim(size="1100Mi")),
    ],
    ids=[
        "class",
        "empty-class",
        "access-mode",
        "access-mode-of-volume",
        "volume-mode",
        "volume-mode-of-claim",
        "match-labels",
        "match-expressions",
        "capacity",
    ],
)
async def test_mismatching_volume_is_not_bound(pv: Obj, pvc: Obj) -> None:
    c = Cluster((PVS, pv), (PVCS, pvc))
    await c.settle()
    assert phase(c.pv("pv1")) == "Available"
    assert bound_to(c.pv("pv1")) is None
    assert phase(c.pvc()) == "Pending"
    assert "volumeName" not in c.pvc()["spec"]


def test_only_available_volumes_are_candidates() -> None:
    pv = volume("pv1")
    for current in ("Pending", "Released", "Failed", "Bound"):
        pv["status"]["phase"] = current
        assert best_match(claim(), [pv], None) is None
    pv["status"]["phase"] = "Available"
    assert best_match(claim(), [pv], None) == pv


async def test_a_compatible_volume_binds_without_class_and_with_a_selector() -> None:
    labelled = volume("pv1", "2Gi", cls=None, labels={"tier": "fast", "zone": "a"})
    labelled["spec"]["accessModes"] = ["ReadWriteOnce", "ReadOnlyMany"]
    selector = {
        "matchLabels": {"tier": "fast"},
        "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}],
    }
    c = Cluster((PVS, labelled), (PVCS, claim(size="2Gi", cls="", selector=selector)))
    await c.settle()
    assert c.pvc()["spec"]["volumeName"] == "pv1"
    assert phase(c.pv("pv1")) == "Bound"


async def test_a_reserved_volume_binds_only_its_claim_and_wins() -> None:
    def reserved(name: str, size: str, for_claim: str) -> Obj:
        ref = {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": for_claim}
        return volume(name, size, claimRef=ref)

    c = Cluster(
        (PVS, reserved("pv-for-other", "1Gi", "other")),
        (PVS, reserved("pv-for-db", "5Gi", "db")),
        (PVS, volume("pv-free", "2Gi")),
        (PVCS, claim("db")),
        (PVCS, claim("third")),
    )
    await c.settle()
    assert c.pvc()["spec"]["volumeName"] == "pv-for-db"  # not the smaller free one
    pv = c.pv("pv-for-db")
    assert pv["spec"]["claimRef"]["uid"] == "u-db"
    assert BOUND_BY not in (pv["metadata"].get("annotations") or {})  # the user chose it
    assert c.pvc("third")["spec"]["volumeName"] == "pv-free"  # not the smaller reserved one
    assert phase(c.pv("pv-for-other")) == "Available"  # reserved, not yet bound
    assert "uid" not in c.pv("pv-for-other")["spec"]["claimRef"]

    await c.client.create(PVCS, claim("other"))
    await c.settle()
    assert c.pvc("other")["spec"]["volumeName"] == "pv-for-other"


async def test_claim_naming_a_volume_binds_that_one() -> None:
    c = Cluster(
        (PVS, volume("pv-small", "1Gi")),
        (PVS, volume("pv-big", "9Gi")),
        (PVCS, claim(volumeName="pv-big")),
    )
    await c.settle()
    assert bound_to(c.pv("pv-big")) == "db"
    assert c.pv("pv-big")["metadata"]["annotations"] == {BOUND_BY: "yes"}
    assert phase(c.pv("pv-small")) == "Available"
    pvc = c.pvc()
    assert pvc["metadata"]["annotations"] == {BIND_COMPLETED: "yes"}  # the user chose it
    assert pvc["status"]["capacity"] == {"storage": "9Gi"}


@pytest.mark.parametrize(
    ("volumes", "message"),
    [
        ((), 'volume "pv1" not found'),
        (
            (volume("pv1", "500Mi"),),
            'Cannot bind to requested volume "pv1": requested PV is too small',
        ),
        (
            (volume("pv1", cls="fast"),),
            'Cannot bind to requested volume "pv1": storageClassName does not match',
        ),
        (
            (volume("pv1", claimRef={"namespace": "shop", "name": "other", "uid": "u-other"}),),
            'volume "pv1" already bound to a different claim.',
        ),
    ],
    ids=["missing", "too-small", "class", "taken"],
)
async def test_claim_naming_an_unusable_volume_stays_pending(volumes: tuple, message: str) -> None:
    c = Cluster(*((PVS, v) for v in volumes), (PVCS, claim(volumeName="pv1")))
    await c.settle()
    assert phase(c.pvc()) == "Pending"
    assert BIND_COMPLETED not in c.pvc()["metadata"]["annotations"]
    assert c.events() == [("Warning", "FailedBinding", message)]


@pytest.mark.parametrize(
    ("cls", "classes", "message"),
    [
        ("", (), NO_CLASS),
        ("manual", (), 'storageclass.storage.k8s.io "manual" not found'),
        ("manual", (storage_class("manual"),), "no persistent volumes available for this claim"),
    ],
    ids=["no-class", "missing-class", "no-volume"],
)
async def test_no_match_reports_failed_binding_once(cls: str, classes: tuple, message: str) -> None:
    c = Cluster(*((CLASSES, sc) for sc in classes), (PVCS, claim(cls=cls)))
    await c.settle()
    for _ in range(3):  # resyncs
        await c.ctl.reconcile("shop/db")
    assert c.events() == [("Normal", "FailedBinding", message)]
    assert phase(c.pvc()) == "Pending"


async def test_a_volume_created_after_the_claim_binds_it() -> None:
    c = Cluster((PVCS, claim(cls="")))
    await c.settle()
    assert c.events() == [("Normal", "FailedBinding", NO_CLASS)]
    await c.client.create(PVS, volume("late", cls=""))
    await c.settle()  # only the volume's events queue the claim again
    assert c.pvc()["spec"]["volumeName"] == "late"
    assert phase(c.pvc()) == "Bound"
    assert phase(c.pv("late")) == "Bound"


async def test_two_claims_racing_for_one_volume() -> None:
    available = volume("pv1") | {"status": {"phase": "Available"}}
    c = Cluster((PVS, available), (PVCS, claim("a")), (PVCS, claim("b")))
    await c.ctl.reconcile("shop/a")
    with pytest.raises(errors.Conflict):  # b decided from a cache that has not seen a's bind
        await c.ctl.reconcile("shop/b")
    await c.settle()
    assert bound_to(c.pv("pv1")) == "a"
    assert c.pvc("a")["spec"]["volumeName"] == "pv1"
    assert "volumeName" not in c.pvc("b")["spec"]
    assert phase(c.pvc("b")) == "Pending"


async def test_an_interrupted_binding_is_completed() -> None:
    c = Cluster((PVS, volume("pv1")), (PVCS, claim()))
    c.client.fail("patch", "persistentvolumeclaims", errors.Conflict("modified"))
    with pytest.raises(errors.Conflict):  # the volume is claimed, the claim write fails
        await c.settle()
    assert bound_to(c.pv("pv1")) == "db"
    assert "volumeName" not in c.pvc()["spec"]
    c.ctl.queue.add("shop/db")  # the worker's retry
    await c.settle()
    assert c.pvc()["spec"]["volumeName"] == "pv1"
    assert phase(c.pvc()) == "Bound"


@pytest.mark.parametrize(
    ("policy", "expected", "reason", "message"),
    [
        ("Retain", "Released", None, None),
        (
            "Delete",
            "Failed",
            "VolumeFailedDelete",
            'error getting deleter volume plugin for volume "pv1": '
            "no deletable volume plugin matched",
        ),
        (
            "Recycle",
            "Failed",
            "VolumeFailedRecycle",
            'Cannot recycle volume "pv1": no recyclable volume plugin matched',
        ),
    ],
)
async def test_deleting_the_claim_releases_its_volume(
    policy: str, expected: str, reason: str | None, message: str | None
) -> None:
    c = Cluster((PVS, volume("pv1", persistentVolumeReclaimPolicy=policy)), (PVCS, claim()))
    await c.settle()
    assert phase(c.pv("pv1")) == "Bound"
    await c.client.delete(PVCS, "db", "shop")
    await c.settle()
    pv = c.pv("pv1")
    assert bound_to(pv) == "db"  # kept: the admin decides
    assert pv["status"] == {
        "phase": expected,
        **({"reason": reason, "message": message} if reason else {}),
    }
    assert c.events("pv1") == ([("Warning", reason, message)] if reason else [])


async def test_clearing_the_claim_ref_of_a_released_volume_makes_it_available() -> None:
    c = Cluster((PVS, volume("pv1")), (PVCS, claim()))
    await c.settle()
    await c.client.delete(PVCS, "db", "shop")
    await c.settle()
    assert phase(c.pv("pv1")) == "Released"
    await c.client.patch(PVS, "pv1", {"spec": {"claimRef": None}})
    await c.settle()
    assert phase(c.pv("pv1")) == "Available"
    await c.client.create(PVCS, claim("next"))  # and it can be claimed again
    await c.settle()
    assert c.pvc("next")["spec"]["volumeName"] == "pv1"


async def test_local_path_claims_and_volumes_are_left_to_the_provisioner() -> None:
    provisioned = volume(
        "pvc-gone",
        cls="local-path",
        claimRef={"namespace": "shop", "name": "gone", "uid": "u-gone"},
        persistentVolumeReclaimPolicy="Delete",
    )
    provisioned["metadata"]["annotations"] = {
        "pv.kubernetes.io/provisioned-by": "tugboat.io/local-path"
    }
    c = Cluster(
        (CLASSES, storage_class("local-fast", "tugboat.io/local-path")),  # by provisioner
        # and "local-path" by name: the provisioner takes it even before it creates the class
        (PVS, provisioned),
        (PVS, volume("static-lp", cls="local-path")),
        (PVS, volume("static-fast", cls="local-fast")),
        (PVCS, claim("a", cls="local-path")),
        (PVCS, claim("b", cls="local-fast")),
        (PVCS, claim("unset", cls=None)),  # waits for the default class
    )
    await c.settle()
    assert c.client.writes(resource="persistentvolumeclaims") == []
    assert c.client.writes(resource="persistentvolumeclaims/status") == []
    assert phase(c.pv("pvc-gone")) == "Pending"  # not Failed: the provisioner deletes it
    assert bound_to(c.pv("static-lp")) is None
    assert bound_to(c.pv("static-fast")) is None
    assert c.recorder.events == []


async def test_wait_for_first_consumer_then_bind_a_volume_of_the_selected_node() -> None:
    c = Cluster(
        (CLASSES, storage_class("local-disk", volumeBindingMode="WaitForFirstConsumer")),
        (NODES, node("n1")),
        (NODES, node("n2")),
        (PVS, volume("on-n2", "1Gi", cls="local-disk", nodeAffinity=pinned_to("n2"))),
        (PVS, volume("on-n1", "2Gi", cls="local-disk", nodeAffinity=pinned_to("n1"))),
        (PVCS, claim(cls="local-disk")),
    )
    await c.settle()
    for _ in range(3):  # resyncs
        await c.ctl.reconcile("shop/db")
    assert "volumeName" not in c.pvc()["spec"]
    assert bound_to(c.pv("on-n1")) is None and bound_to(c.pv("on-n2")) is None
    assert c.events() == [
        (
            "Normal",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        )
    ]

    # The scheduler placed the claim's first pod on n1.
    await c.client.patch(PVCS, "db", {"metadata": {"annotations": {SELECTED_NODE: "n1"}}}, "shop")
    await c.settle()
    assert c.pvc()["spec"]["volumeName"] == "on-n1"  # the smaller one is on another node
    assert bound_to(c.pv("on-n2")) is None


async def test_a_class_created_later_brings_the_claim_back() -> None:
    c = Cluster((PVCS, claim(cls="fast")))
    await c.settle()
    await c.client.create(CLASSES, storage_class("fast"))
    await c.settle()
    assert c.events() == [
        ("Normal", "FailedBinding", 'storageclass.storage.k8s.io "fast" not found'),
        ("Normal", "FailedBinding", "no persistent volumes available for this claim"),
    ]


async def test_a_node_seen_later_brings_the_claim_back() -> None:
    c = Cluster(
        (CLASSES, storage_class("local-disk", volumeBindingMode="WaitForFirstConsumer")),
        (PVS, volume("on-n1", cls="local-disk", nodeAffinity=pinned_to("n1"))),
        (PVCS, claim(cls="local-disk", annotations={SELECTED_NODE: "n1"})),
    )
    await c.settle()
    assert "volumeName" not in c.pvc()["spec"]  # n1's labels are not known yet
    await c.client.create(NODES, node("n1"))
    await c.settle()
    assert c.pvc()["spec"]["volumeName"] == "on-n1"


async def test_bound_claim_whose_volume_is_deleted_is_lost() -> None:
    c = Cluster((PVS, volume("pv1")), (PVCS, claim()))
    await c.settle()
    await c.client.delete(PVS, "pv1")
    await c.settle()
    assert c.pvc()["status"] == {"phase": "Lost"}
    assert [e for e in c.events() if e[0] == "Warning"] == [
        (
            "Warning",
            "ClaimLost",
            "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
        )
    ]


async def test_bound_claim_whose_volume_names_another_claim_is_lost() -> None:
    c = Cluster((PVS, volume("pv1")), (PVCS, claim()))
    await c.settle()
    ref = {"namespace": "shop", "name": "other", "uid": "u-other"}
    await c.client.patch(PVS, "pv1", {"spec": {"claimRef": ref}})
    await c.settle()
    assert bound_to(c.pv("pv1")) == "other"  # not taken back
    assert phase(c.pvc()) == "Lost"
    assert c.events()[-1] == (
        "Warning",
        "ClaimMisbound",
        "Two claims are bound to the same volume, this one is bound incorrectly",
    )


async def test_a_volume_the_controller_bound_to_a_claim_bound_elsewhere_is_freed() -> None:
    c = Cluster((PVS, volume("pv1")), (PVS, volume("pv2")), (PVCS, claim()))
    await c.settle()
    winner = c.pvc()["spec"]["volumeName"]
    loser = "pv2" if winner == "pv1" else "pv1"
    ref = c.pv(winner)["spec"]["claimRef"]  # e.g. a bind decided from a stale cache
    await c.client.patch(
        PVS, loser, {"metadata": {"annotations": {BOUND_BY: "yes"}}, "spec": {"claimRef": ref}}
    )
    await c.settle()
    assert bound_to(c.pv(loser)) is None
    assert BOUND_BY not in (c.pv(loser)["metadata"].get("annotations") or {})
    assert phase(c.pv(loser)) == "Available"
    assert c.pvc()["spec"]["volumeName"] == winner
