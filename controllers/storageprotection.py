"""Storage object protection: a claim stays while a pod uses it, a volume while it is bound
(Kubernetes' ``pvc-protection`` and ``pv-protection`` controllers, one queue here).

The API server gives every new claim the finalizer ``kubernetes.io/pvc-protection`` and every
new volume ``kubernetes.io/pv-protection`` (:class:`apiserver.strategies.ProtectedStrategy`).
This controller removes them from objects being deleted once they are free:

- a claim, when no pod of its namespace that has not finished (phase other than Succeeded or
  Failed) names it in ``spec.volumes``. The informer's view is confirmed with a live list of
  the namespace's pods before the finalizer goes: a pod just created may not be in the cache;
- a volume, when its phase is not Bound (the binder or the provisioner releases it once its
  claim is gone).

Wiring: informers on claims, volumes and pods. Keys are ``claim:<namespace>/<name>`` and
``volume:<name>``. A claim or volume change enqueues it when it is being deleted; a pod that
finishes or goes enqueues the claims it names.
"""

from __future__ import annotations

from typing import Any

from controllers.objects import is_deleting, meta, name_of, namespace_of
from machinery import errors
from machinery.informer import InformerFactory, Store
from machinery.kinds import lookup
from machinery.volumes import PV_PROTECTION, PVC_PROTECTION, PVCS, PVS, claim_names
from machinery.workqueue import WorkQueue

Obj = dict[str, Any]
PODS = lookup("pods")
FINISHED = ("Succeeded", "Failed")


class StorageProtection:
    name = "storage-object-protection"

    def __init__(
        self,
        client: Any,
        *,
        claims: Store,
        volumes: Store,
        pods: Store,
        queue: WorkQueue | None = None,
        recorder: Any = None,
    ) -> None:
        self.client = client
        self.claims = claims
        self.volumes = volumes
        self.pods = pods
        self.queue = queue or WorkQueue(name=self.name)
        self.recorder = recorder

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Any = None, **kw: Any
    ) -> StorageProtection:
        claims, volumes, pods = (factory.informer(rt) for rt in (PVCS, PVS, PODS))
        ctl = cls(
            factory.client,
            claims=claims.store,
            volumes=volumes.store,
            pods=pods.store,
            recorder=recorder,
            **kw,
        )
        claims.add_handler(ctl.claim_changed, lambda _old, new: ctl.claim_changed(new))
        volumes.add_handler(ctl.volume_changed, lambda _old, new: ctl.volume_changed(new))
        pods.add_handler(None, lambda _old, new: ctl.pod_changed(new), ctl.pod_gone)
        return ctl

    # -- event handlers ----------------------------------------------------------------------

    def claim_changed(self, claim: Obj) -> None:
        if is_deleting(claim):
            self.queue.add(f"claim:{namespace_of(claim)}/{name_of(claim)}")

    def volume_changed(self, volume: Obj) -> None:
        if is_deleting(volume):
            self.queue.add(f"volume:{name_of(volume)}")

    def pod_changed(self, pod: Obj) -> None:
        if (pod.get("status") or {}).get("phase") in FINISHED:
            self.pod_gone(pod)

    def pod_gone(self, pod: Obj) -> None:
        for claim in claim_names(pod):
            self.queue.add(f"claim:{namespace_of(pod)}/{claim}")

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        kind, _, name = key.partition(":")
        if kind == "claim":
            claim = self.claims.get(name)
            if claim is not None and _held(claim, PVC_PROTECTION) and not await self._used(claim):
                await self._release(PVCS, claim, PVC_PROTECTION)
        else:
            volume = self.volumes.get(name)
            bound = ((volume or {}).get("status") or {}).get("phase") == "Bound"
            if volume is not None and _held(volume, PV_PROTECTION) and not bound:
                await self._release(PVS, volume, PV_PROTECTION)

    async def _used(self, claim: Obj) -> bool:
        """Whether a pod that has not finished names the claim: the cache first, then (when
        the cache says no) the API server."""
        namespace, name = namespace_of(claim), name_of(claim)
        cached = (p for p in self.pods.list() if namespace_of(p) == namespace)
        if any(_uses(p, name) for p in cached):
            return True
        live = await self.client.list(PODS, namespace)  # one page: no limit asked
        return any(_uses(p, name) for p in live["items"])

    async def _release(self, rt: Any, obj: Obj, finalizer: str) -> None:
        """Remove ``finalizer``, guarded by the resourceVersion it was decided at."""
        rest = [f for f in meta(obj).get("finalizers") or [] if f != finalizer]
        body = {
            "metadata": {"finalizers": rest, "resourceVersion": meta(obj).get("resourceVersion")}
        }
        try:
            await self.client.patch(rt, name_of(obj), body, namespace_of(obj) or None)
        except errors.NotFound:
            pass


def _uses(pod: Obj, claim: str) -> bool:
    return (pod.get("status") or {}).get("phase") not in FINISHED and claim in claim_names(pod)


def _held(obj: Obj, finalizer: str) -> bool:
    return is_deleting(obj) and finalizer in (meta(obj).get("finalizers") or ())
