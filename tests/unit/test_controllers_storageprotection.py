"""Storage object protection: the finalizers of claims and volumes go only once they are free.
The controller on informers fed from a fake API server, driven through its own queue."""

from __future__ import annotations

from typing import Any

from controllers.storageprotection import PODS, StorageProtection
from controllers.testing import FakeClient
from machinery.informer import InformerFactory
from machinery.volumes import PV_PROTECTION, PVC_PROTECTION, PVCS, PVS

Obj = dict[str, Any]


def claim(name: str = "data") -> Obj:
    return {"metadata": {"name": name, "namespace": "shop", "finalizers": [PVC_PROTECTION]}}


def volume(phase: str) -> Obj:
    meta = {"name": "pv1", "finalizers": [PV_PROTECTION, "example.com/keep"]}
    return {"metadata": meta, "status": {"phase": phase}}


def pod(name: str, claim_name: str, phase: str = "Running", namespace: str = "shop") -> Obj:
    volumes = [{"name": "d", "persistentVolumeClaim": {"claimName": claim_name}}]
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [], "volumes": volumes},
        "status": {"phase": phase},
    }


class Env:
    def __init__(self, *objects: tuple[Any, Obj]) -> None:
        self.client = FakeClient(*objects)
        self.ctl = StorageProtection.from_factory(InformerFactory(self.client))  # type: ignore[arg-type]

    async def settle(self) -> None:
        """Informers catch up with the fake server; every object is offered; queue drained."""
        for rt, store in ((PVCS, self.ctl.claims), (PVS, self.ctl.volumes), (PODS, self.ctl.pods)):
            self.client.sync(rt, store)
        for c in self.ctl.claims.list():
            self.ctl.claim_changed(c)
        for v in self.ctl.volumes.list():
            self.ctl.volume_changed(v)
        while len(self.ctl.queue):
            key = await self.ctl.queue.get()
            await self.ctl.reconcile(key)
            self.ctl.queue.done(key)

    def claim(self, name: str = "data") -> Obj | None:
        return self.client.stored(PVCS, "shop", name)


async def test_claim_in_use_stays_until_its_pod_finishes() -> None:
    env = Env((PVCS, claim()), (PODS, pod("web", "data")), (PODS, pod("other", "elsewhere")))
    await env.client.delete(PVCS, "data", "shop")
    await env.settle()
    kept = env.claim()
    assert kept is not None and kept["metadata"]["deletionTimestamp"]
    assert kept["metadata"]["finalizers"] == [PVC_PROTECTION]

    await env.client.patch(
        PODS, "web", {"status": {"phase": "Succeeded"}}, "shop", subresource="status"
    )
    await env.settle()
    assert env.claim() is None  # the finalizer went, so did the claim


async def test_claim_used_by_a_pod_the_cache_has_not_seen_is_kept() -> None:
    env = Env((PVCS, claim()))
    await env.client.delete(PVCS, "data", "shop")
    env.client.seed(PODS, pod("new", "data"))  # created after the informer's last look
    env.client.sync(PVCS, env.ctl.claims)
    env.ctl.claim_changed(env.ctl.claims.get("shop/data"))
    key = await env.ctl.queue.get()
    await env.ctl.reconcile(key)
    assert env.claim() is not None


async def test_claim_named_by_a_pod_of_another_namespace_goes() -> None:
    env = Env((PVCS, claim()), (PODS, pod("web", "data", namespace="other")))
    await env.client.delete(PVCS, "data", "shop")
    await env.settle()
    assert env.claim() is None


async def test_claim_not_being_deleted_keeps_its_finalizer() -> None:
    env = Env((PVCS, claim()))
    await env.settle()
    stored = env.claim()
    assert stored is not None and stored["metadata"]["finalizers"] == [PVC_PROTECTION]
    assert not env.client.writes("patch")


async def test_bound_volume_stays_until_released_and_keeps_other_finalizers() -> None:
    env = Env((PVS, volume("Bound")))
    await env.client.delete(PVS, "pv1")
    await env.settle()
    stored = env.client.stored(PVS, None, "pv1")
    assert stored is not None
    assert stored["metadata"]["finalizers"] == [PV_PROTECTION, "example.com/keep"]

    await env.client.patch(PVS, "pv1", {"status": {"phase": "Released"}}, subresource="status")
    await env.settle()
    stored = env.client.stored(PVS, None, "pv1")
    assert stored is not None and stored["metadata"]["finalizers"] == ["example.com/keep"]
