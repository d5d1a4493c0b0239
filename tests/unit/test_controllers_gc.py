"""Garbage collector: graph from observed objects, reconcile against a fake client."""

from __future__ import annotations

from controllers.garbagecollector import GarbageCollector, collectable_types
from controllers.testing import FakeClient
from machinery.kinds import lookup

DEPLOY, RS, POD, CM = (lookup(n) for n in ("deployments", "replicasets", "pods", "configmaps"))


def obj(rt, name, uid, owners=(), block=True):
    refs = [
        {
            "apiVersion": o[0].api_version,
            "kind": o[0].kind,
            "name": o[1],
            "uid": o[2],
            "controller": True,
            "blockOwnerDeletion": block,
        }
        for o in owners
    ]
    m = {"name": name, "namespace": "ns", "uid": uid}
    if refs:
        m["ownerReferences"] = refs
    return rt, {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": m}


class Sim:
    """Feeds the fake server's state to the collector (as its informers would) and runs its
    queue until nothing changes."""

    def __init__(self, *objects):
        self.client = FakeClient(*objects)
        self.gc = GarbageCollector(self.client, types=[DEPLOY, RS, POD, CM])
        self.seen: dict[str, dict] = {}
        self.feed()

    def feed(self):
        current = {o["metadata"]["uid"]: o for o in self.client.objects.values()}
        for uid, old in list(self.seen.items()):
            if uid not in current:
                del self.seen[uid]
                self.gc.forget(old)
        for uid, o in current.items():
            if (
                self.seen.get(uid, {}).get("metadata", {}).get("resourceVersion")
                != o["metadata"]["resourceVersion"]
            ):
                self.seen[uid] = o
                self.gc.observe(o)

    async def run(self, rounds=50):
        for _ in range(rounds):
            self.feed()
            if not len(self.gc.queue):
                return
            while len(self.gc.queue):
                key = await self.gc.queue.get()
                try:
                    await self.gc.reconcile(key)
                finally:
                    self.gc.queue.done(key)
        raise AssertionError("collector did not settle")

    def names(self):
        return sorted(n for (_, _, n) in self.client.objects)


def chain():
    return [
        obj(DEPLOY, "d", "u-d"),
        obj(RS, "rs", "u-rs", [(DEPLOY, "d", "u-d")]),
        obj(POD, "p1", "u-p1", [(RS, "rs", "u-rs")]),
        obj(POD, "p2", "u-p2", [(RS, "rs", "u-rs")]),
    ]


def test_collectable_types_skip_events_and_duplicates():
    plurals = [(t.group, t.plural) for t in collectable_types()]
    assert ("", "events") not in plurals and ("events.k8s.io", "events") not in plurals
    assert plurals.count(("autoscaling", "horizontalpodautoscalers")) == 1
    assert ("", "pods") in plurals and ("apps", "deployments") in plurals


async def test_owned_objects_with_live_owners_are_left_alone():
    sim = Sim(*chain())
    await sim.run()
    assert sim.client.writes() == []


async def test_background_deletion_cascades_across_kinds():
    sim = Sim(*chain())
    await sim.run()
    await sim.client.delete(DEPLOY, "d", "ns", propagation_policy="Background")
    await sim.run()
    assert sim.names() == []
    deletes = [
        (a.resource, a.name, a.options["propagation_policy"])
        for a in sim.client.writes("delete")[1:]
    ]
    assert ("replicasets", "rs", "Background") in deletes
    assert {a.name for a in sim.client.writes("delete", "pods")} == {"p1", "p2"}


async def test_foreground_deletes_dependents_before_owner():
    sim = Sim(*chain())
    await sim.run()
    await sim.client.delete(DEPLOY, "d", "ns", propagation_policy="Foreground")
    sim.feed()
    assert "d" in sim.names()  # held by foregroundDeletion
    await sim.run()
    assert sim.names() == []
    order = [a.name for a in sim.client.writes() if a.verb == "delete"]
    # the owner's finalizer is removed only after the pods and the ReplicaSet went
    finalizer_patch = [
        i for i, a in enumerate(sim.client.actions) if a.verb == "patch" and a.name == "d"
    ]
    last_pod_delete = max(
        i for i, a in enumerate(sim.client.actions) if a.verb == "delete" and a.resource == "pods"
    )
    assert finalizer_patch and finalizer_patch[-1] > last_pod_delete
    assert order[0] == "d"


async def test_foreground_does_not_wait_for_non_blocking_dependents():
    sim = Sim(obj(DEPLOY, "d", "u-d"), obj(CM, "cm", "u-cm", [(DEPLOY, "d", "u-d")], block=False))
    await sim.run()
    await sim.client.delete(DEPLOY, "d", "ns", propagation_policy="Foreground")
    await sim.run()
    assert sim.names() == []


async def test_orphan_removes_owner_references_and_keeps_dependents():
    sim = Sim(*chain())
    await sim.run()
    await sim.client.delete(RS, "rs", "ns", propagation_policy="Orphan")
    await sim.run()
    assert sim.names() == ["d", "p1", "p2"]
    for name in ("p1", "p2"):
        assert "ownerReferences" not in sim.client.stored(POD, "ns", name)["metadata"]


async def test_dangling_owner_is_verified_live_then_dependent_deleted():
    sim = Sim(obj(POD, "p", "u-p", [(RS, "gone", "u-gone")]))
    await sim.run()
    assert sim.names() == []
    gets = [a.name for a in sim.client.actions if a.verb == "get"]
    assert "gone" in gets


async def test_owner_with_another_uid_counts_as_dangling():
    sim = Sim(obj(RS, "rs", "u-new"), obj(POD, "p", "u-p", [(RS, "rs", "u-old")]))
    await sim.run()
    assert sim.names() == ["rs"]


async def test_solid_and_dangling_owners_drop_only_the_dangling_reference():
    sim = Sim(
        obj(CM, "keep", "u-keep"),
        obj(POD, "p", "u-p", [(CM, "keep", "u-keep"), (RS, "gone", "u-gone")]),
    )
    await sim.run()
    refs = sim.client.stored(POD, "ns", "p")["metadata"]["ownerReferences"]
    assert [r["uid"] for r in refs] == ["u-keep"]
