"""PersistentVolume binder: binds claims to the PersistentVolumes an administrator created and
keeps the phases of both (Kubernetes' ``persistentvolume-binder``, static volumes only).

Scope: every claim with a ``storageClassName`` (``""`` means "no class") except the local-path
provisioner's (class ``local-path``, or a StorageClass whose provisioner is
:data:`~machinery.volumes.LOCAL_PATH_PROVISIONER`); a claim without one waits for the default class.
A class that does not exist as a StorageClass still binds by name. Every volume except those
annotated ``pv.kubernetes.io/provisioned-by`` by the provisioner.

Wiring: informers on claims, volumes, StorageClasses and Nodes, one queue. Keys are a claim's
``namespace/name`` or a volume's name (volume names never contain ``/``). A claim change
enqueues the claim; its deletion also the volumes whose ``claimRef`` names it. A volume change
enqueues the volume, the claims its old and new ``claimRef`` name and, when it is free or only
reserved, every unbound claim of its class (one of them may fit now). A StorageClass change
enqueues its unbound claims; a Node's labels changing, the unbound claims selected for it.

``reconcile`` of a claim without ``pv.kubernetes.io/bind-completed``:

- ``spec.volumeName`` set by the user: bind to that volume if it exists, satisfies the claim
  and is not bound to another claim; else a Warning ``FailedBinding`` saying why;
- else the best match (Kubernetes' ``FindMatchingVolume``): a volume reserved for this claim
  (``claimRef`` to it, without uid or with its uid) wins; otherwise the smallest Available
  volume of the same class, volumeMode and a superset of its access modes, large enough,
  matching ``spec.selector`` (a reserved one need only be large enough, of its volumeMode and
  access modes). A ``WaitForFirstConsumer`` class waits for the
  ``volume.kubernetes.io/selected-node`` annotation (event ``WaitForFirstConsumer``; only a
  reserved volume binds before), then only volumes whose node affinity admits that Node
  qualify. No match: a Normal ``FailedBinding``. Claim events are sent once per claim
  resourceVersion, not at every resync.
- binding, each step skipped when done and guarded by the resourceVersion it was decided
  from (a concurrent binder loses with 409 Conflict and retries through the queue): the
  volume's ``claimRef`` (+ ``bound-by-controller``), the volume's phase Bound, the claim's
  ``volumeName`` (+ ``bind-completed``, ``bound-by-controller``), the claim's status Bound.

A bound claim is re-bound idempotently; whose volume is gone becomes ``Lost`` (``ClaimLost``);
whose volume names another claim becomes ``Lost`` (``ClaimMisbound``).

``reconcile`` of a volume: no ``claimRef``, or one without uid: ``Available``. Its claim
exists (same uid): ``Bound`` once the claim names it; a controller's extra binding to a claim
bound elsewhere is undone. Its claim is gone (checked live, the cache may lag): ``Retain`` →
``Released`` (an admin clears ``claimRef`` to reuse it); ``Delete``/``Recycle`` → ``Failed``
with a ``VolumeFailedDelete``/``VolumeFailedRecycle`` event: no plugin deletes or recycles
static volumes here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controllers.objects import (
    annotations_of,
    is_deleting,
    key_of,
    labels_of,
    meta,
    name_of,
    namespace_of,
    uid_of,
)
from machinery import errors
from machinery.informer import InformerFactory, Store
from machinery.kinds import ResourceType, lookup
from machinery.volumes import (
    BIND_COMPLETED,
    BOUND_BY_CONTROLLER,
    CLASSES,
    PROVISIONED_BY,
    PVCS,
    PVS,
    SELECTED_NODE,
    WAIT_FOR_FIRST_CONSUMER,
    best_match,
    claim_class,
    claim_ref,
    refers_to,
    reserved_for,
    unsuitable,
    volume_class,
)
from machinery.volumes import LOCAL_PATH_CLASS as CLASS_NAME
from machinery.volumes import LOCAL_PATH_PROVISIONER as PROVISIONER
from machinery.workqueue import WorkQueue

Obj = dict[str, Any]
NODES = lookup("nodes")
CLAIM_LOST = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
CLAIM_MISBOUND = "Two claims are bound to the same volume, this one is bound incorrectly"


class VolumeBinder:
    name = "persistentvolume-binder"

    def __init__(
        self,
        client: Any,
        *,
        claims: Store,
        volumes: Store,
        classes: Store,
        nodes: Store,
        queue: WorkQueue | None = None,
        recorder: Any = None,
    ) -> None:
        self.client = client
        self.claims = claims
        self.volumes = volumes
        self.classes = classes
        self.nodes = nodes
        self.queue = queue or WorkQueue(name=self.name)
        self.recorder = recorder
        self._reported: dict[str, tuple[str, ...]] = {}  # claim key → last event sent

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Any = None, **kw: Any
    ) -> VolumeBinder:
        claims, volumes, classes, nodes = (
            factory.informer(rt) for rt in (PVCS, PVS, CLASSES, NODES)
        )
        ctl = cls(
            factory.client,
            claims=claims.store,
            volumes=volumes.store,
            classes=classes.store,
            nodes=nodes.store,
            recorder=recorder,
            **kw,
        )
        claims.add_handler(ctl.enqueue, lambda _old, new: ctl.enqueue(new), ctl.claim_deleted)
        volumes.add_handler(ctl.volume_changed, ctl.volume_updated, ctl.volume_changed)
        classes.add_handler(ctl.class_changed, lambda _old, new: ctl.class_changed(new))
        nodes.add_handler(ctl.node_changed, ctl.node_updated)
        return ctl

    # -- event handlers ----------------------------------------------------------------------

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def claim_deleted(self, claim: Obj) -> None:
        self.enqueue(claim)
        for volume in self.volumes.list():
            if refers_to(volume, namespace_of(claim), name_of(claim)):
                self.enqueue(volume)

    def volume_changed(self, volume: Obj) -> None:
        self.enqueue(volume)
        self._enqueue_claim_of(volume)
        if not claim_ref(volume).get("uid"):
            self._enqueue_unbound(lambda c: claim_class(c) == volume_class(volume))

    def volume_updated(self, old: Obj, new: Obj) -> None:
        self.volume_changed(new)
        self._enqueue_claim_of(old)  # a claim the volume no longer names

    def _enqueue_claim_of(self, volume: Obj) -> None:
        ref = claim_ref(volume)
        if ref.get("name"):
            self.queue.add(f"{ref.get('namespace')}/{ref['name']}")

    def class_changed(self, storage_class: Obj) -> None:
        self._enqueue_unbound(lambda c: claim_class(c) == name_of(storage_class))

    def node_changed(self, node: Obj) -> None:
        self._enqueue_unbound(lambda c: annotations_of(c).get(SELECTED_NODE) == name_of(node))

    def node_updated(self, old: Obj, new: Obj) -> None:
        if labels_of(old) != labels_of(new):
            self.node_changed(new)

    def _enqueue_unbound(self, wanted: Callable[[Obj], bool]) -> None:
        for claim in self.claims.list():
            if BIND_COMPLETED not in annotations_of(claim) and wanted(claim):
                self.enqueue(claim)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        if "/" in key:
            await self._sync_claim(key)
        else:
            await self._sync_volume(key)

    async def _sync_claim(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None:
            self._reported.pop(key, None)
            return
        if not self._is_ours(claim):
            return
        if BIND_COMPLETED in annotations_of(claim):
            await self._sync_bound_claim(claim)
        elif not is_deleting(claim):
            await self._sync_unbound_claim(claim)

    async def _sync_bound_claim(self, claim: Obj) -> None:
        name = (claim.get("spec") or {}).get("volumeName")
        volume = self.volumes.get(name) if name else None
        if volume is not None and (not claim_ref(volume) or reserved_for(volume, claim)):
            await self._bind(volume, claim)  # completes or repairs the binding
        elif (claim.get("status") or {}).get("phase") != "Lost":
            reason, message = (
                ("ClaimLost", CLAIM_LOST) if volume is None else ("ClaimMisbound", CLAIM_MISBOUND)
            )
            status = {"phase": "Lost", "accessModes": None, "capacity": None}
            await self._patch(PVCS, claim, {"status": status}, status=True)
            self._event(PVCS, claim, "Warning", reason, message)

    async def _sync_unbound_claim(self, claim: Obj) -> None:
        wanted = (claim.get("spec") or {}).get("volumeName")
        if wanted:
            await self._bind_requested(claim, wanted)
            return
        class_name = claim_class(claim) or ""
        storage_class = self.classes.get(class_name) if class_name else None
        delayed = (storage_class or {}).get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
        selected = annotations_of(claim).get(SELECTED_NODE)
        node = None
        if delayed and selected:
            node = self.nodes.get(selected) or {"metadata": {"name": selected}}
        volume = best_match(claim, self.volumes.list(), node, reserved_only=delayed and not node)
        if volume is not None:
            await self._bind(volume, claim)
        elif delayed and not node:
            message = "waiting for first consumer to be created before binding"
            self._report(claim, "Normal", "WaitForFirstConsumer", message)
        elif not class_name:
            message = "no persistent volumes available for this claim and no storage class is set"
            self._report(claim, "Normal", "FailedBinding", message)
        elif storage_class is None:
            message = f'storageclass.storage.k8s.io "{class_name}" not found'
            self._report(claim, "Normal", "FailedBinding", message)
        else:
            message = "no persistent volumes available for this claim"
            self._report(claim, "Normal", "FailedBinding", message)

    async def _bind_requested(self, claim: Obj, name: str) -> None:
        """The user named the volume: that one or none. A volume reserved for the claim too
        (``claimRef``) is bound as is; a free one must satisfy the claim."""
        volume = self.volumes.get(name)
        if volume is None:
            self._report(claim, "Warning", "FailedBinding", f'volume "{name}" not found')
        elif reserved_for(volume, claim):
            await self._bind(volume, claim)
        elif claim_ref(volume):
            message = f'volume "{name}" already bound to a different claim.'
            self._report(claim, "Warning", "FailedBinding", message)
        elif why := unsuitable(volume, claim):
            message = f'Cannot bind to requested volume "{name}": {why}'
            self._report(claim, "Warning", "FailedBinding", message)
        else:
            await self._bind(volume, claim)

    async def _bind(self, volume: Obj, claim: Obj) -> None:
        """Kubernetes' four binding writes, each skipped when already done."""
        ref = claim_ref(volume)
        if (ref.get("namespace"), ref.get("name"), ref.get("uid")) != (
            namespace_of(claim),
            name_of(claim),
            uid_of(claim),
        ):
            body: Obj = {"spec": {"claimRef": {**dict.fromkeys(ref), **_reference(claim)}}}
            if not reserved_for(volume, claim):  # the controller chose it
                body["metadata"] = {"annotations": {BOUND_BY_CONTROLLER: "yes"}}
            volume = await self._patch(PVS, volume, body)
        volume = await self._set_phase(volume, "Bound")
        if (claim.get("spec") or {}).get("volumeName") != name_of(volume):
            body = {
                "metadata": {"annotations": {BIND_COMPLETED: "yes", BOUND_BY_CONTROLLER: "yes"}},
                "spec": {"volumeName": name_of(volume)},
            }
            claim = await self._patch(PVCS, claim, body)
        elif BIND_COMPLETED not in annotations_of(claim):
            claim = await self._patch(
                PVCS, claim, {"metadata": {"annotations": {BIND_COMPLETED: "yes"}}}
            )
        vspec = volume.get("spec") or {}
        status = {
            "phase": "Bound",
            "accessModes": vspec.get("accessModes") or [],
            "capacity": vspec.get("capacity") or {},
        }
        current = claim.get("status") or {}
        if any(current.get(k) != v for k, v in status.items()):
            await self._patch(PVCS, claim, {"status": status}, status=True)

    async def _sync_volume(self, name: str) -> None:
        volume = self.volumes.get(name)
        if volume is None or annotations_of(volume).get(PROVISIONED_BY) == PROVISIONER:
            return
        ref = claim_ref(volume)
        if not ref.get("uid"):  # free, or reserved for a claim not bound yet
            await self._set_phase(volume, "Available")
            return
        claim = await self._claim_of(ref)
        bound_to = ((claim or {}).get("spec") or {}).get("volumeName")
        if claim is None:
            await self._reclaim(volume)
        elif not bound_to:
            self.enqueue(claim)  # binding under way: the claim's sync finishes it
        elif bound_to == name:
            await self._set_phase(volume, "Bound")
        else:  # the claim got another volume: undo this binding (Kubernetes' unbindVolume)
            if BOUND_BY_CONTROLLER in annotations_of(volume):
                body: Obj = {
                    "metadata": {"annotations": {BOUND_BY_CONTROLLER: None}},
                    "spec": {"claimRef": None},
                }
            else:  # reserved by the user: keep the reservation
                body = {"spec": {"claimRef": {"uid": None}}}
            await self._set_phase(await self._patch(PVS, volume, body), "Available")

    async def _claim_of(self, ref: Obj) -> Obj | None:
        """The claim ``ref`` names if it still has ``ref``'s uid (asked live when the cache
        disagrees: it may not have seen the claim yet)."""
        claim = self.claims.get(f"{ref.get('namespace')}/{ref.get('name')}")
        if claim is not None and uid_of(claim) == ref["uid"]:
            return claim
        try:
            claim = await self.client.get(PVCS, ref.get("name") or "", ref.get("namespace"))
        except errors.NotFound:
            return None
        return claim if uid_of(claim) == ref["uid"] else None

    async def _reclaim(self, volume: Obj) -> None:
        """Apply the reclaim policy of a volume whose claim is gone."""
        phase = (volume.get("status") or {}).get("phase")
        policy = (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain":
            if phase not in ("Released", "Failed"):  # a Failed volume stays so (Kubernetes)
                await self._set_phase(volume, "Released")
            return
        if phase == "Failed":
            return
        if policy == "Recycle":
            reason = "VolumeFailedRecycle"
            message = (
                f'Cannot recycle volume "{name_of(volume)}": no recyclable volume plugin matched'
            )
        else:
            reason = "VolumeFailedDelete"
            message = (
                f'error getting deleter volume plugin for volume "{name_of(volume)}": '
                "no deletable volume plugin matched"
            )
        volume = await self._set_phase(volume, "Failed", reason, message)
        self._event(PVS, volume, "Warning", reason, message)

    # -- writes and events -------------------------------------------------------------------

    def _is_ours(self, claim: Obj) -> bool:
        class_name = claim_class(claim)
        if class_name is None or class_name == CLASS_NAME:
            return False
        storage_class = self.classes.get(class_name) if class_name else None
        return (storage_class or {}).get("provisioner") != PROVISIONER

    async def _set_phase(
        self, volume: Obj, phase: str, reason: str | None = None, message: str | None = None
    ) -> Obj:
        status = volume.get("status") or {}
        if (status.get("phase"), status.get("reason"), status.get("message")) == (
            phase,
            reason,
            message,
        ):
            return volume
        body = {"status": {"phase": phase, "reason": reason, "message": message}}
        return await self._patch(PVS, volume, body, status=True)

    async def _patch(self, rt: ResourceType, obj: Obj, body: Obj, status: bool = False) -> Obj:
        """A merge patch guarded by the resourceVersion ``obj`` was read at (409 if stale)."""
        rv = meta(obj).get("resourceVersion")
        body = {**body, "metadata": {**(body.get("metadata") or {}), "resourceVersion": rv}}
        updated: Obj = await self.client.patch(
            rt,
            name_of(obj),
            body,
            namespace_of(obj) or None,
            subresource="status" if status else None,
        )
        return updated

    def _report(self, claim: Obj, type: str, reason: str, message: str) -> None:
        """An event about ``claim``, unless already sent for this version of it."""
        seen = (uid_of(claim), str(meta(claim).get("resourceVersion")), reason, message)
        if self._reported.get(key_of(claim)) != seen:
            self._reported[key_of(claim)] = seen
            self._event(PVCS, claim, type, reason, message)

    def _event(self, rt: ResourceType, obj: Obj, type: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            ref = {"kind": rt.kind, "apiVersion": rt.api_version, **obj}
            self.recorder.event(ref, type, reason, message)


def _reference(claim: Obj) -> Obj:
    """A volume's ``claimRef`` to ``claim``."""
    return {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": namespace_of(claim),
        "name": name_of(claim),
        "uid": uid_of(claim),
        "resourceVersion": meta(claim).get("resourceVersion"),
    }
