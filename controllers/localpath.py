"""Local-path provisioner: binds PersistentVolumeClaims of StorageClass ``local-path`` to
hostPath PersistentVolumes under one directory of the machine.

Wiring: informers on PersistentVolumeClaims and PersistentVolumes; every claim change enqueues
the claim (``namespace/name``); a volume change enqueues the claim named in its ``claimRef``.
The StorageClass ``local-path`` (the default class, provisioner :data:`PROVISIONER`, binding
mode ``WaitForFirstConsumer`` as Rancher's local-path-provisioner ships it) is created once at
start if missing.

``reconcile(namespace/name)``:

- a claim without ``storageClassName`` gets ``local-path`` (the default class, as Kubernetes'
  retroactive default assignment does); claims of other classes are not ours;
- the node holding the data is the one named by the claim's ``volume.kubernetes.io/selected-node``
  annotation, which the scheduler sets when it places the claim's first pod (its VolumeBinding
  plugin); a user whose pods name their node sets it by hand, as in Kubernetes. Under a
  ``WaitForFirstConsumer`` class a claim without it stays Pending (event ``WaitForFirstConsumer``);
  under ``Immediate`` it is provisioned at once, for no node in particular.
- a Pending claim gets a volume ``pvc-<claim uid>``: capacity = the claim's request, its
  access modes, ``hostPath`` ``<base_dir>/pvc-<uid>_<namespace>_<name>`` (type
  ``DirectoryOrCreate``: the node agent creates it), ``nodeAffinity`` requiring
  ``kubernetes.io/hostname`` = the selected node (the label every node agent sets to its node
  name), ``claimRef`` with the claim's uid and reclaim policy from the class (``Delete`` by
  default); then the volume's status and the claim's ``spec.volumeName`` and status become
  Bound. Each step is idempotent.
- a claim that is gone releases its volume (phase Released); then ``Delete`` removes the
  PersistentVolume and its directory (only ever below ``base_dir``). A claim is gone only once
  no pod uses it (its ``kubernetes.io/pvc-protection`` finalizer, :mod:`.storageprotection`),
  so a running pod's data is never removed under it.

Data lives as long as the claim, so a pod's data survives the pod; the volume's node affinity
keeps the claim's later pods on the node that has it (the scheduler's VolumeBinding filter).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from controllers.objects import key_of, meta, name_of, namespace_of, split_key, uid_of
from machinery import errors
from machinery.controller import Result
from machinery.informer import InformerFactory, Store
from machinery.volumes import (
    BIND_COMPLETED,
    CLASSES,
    DEFAULT_CLASS,
    HOSTNAME_LABEL,
    PROVISIONED_BY,
    PVCS,
    PVS,
    SELECTED_NODE,
    WAIT_FOR_FIRST_CONSUMER,
)
from machinery.volumes import LOCAL_PATH_CLASS as CLASS_NAME
from machinery.volumes import LOCAL_PATH_PROVISIONER as PROVISIONER
from machinery.workqueue import WorkQueue

Obj = dict[str, Any]
DEFAULT_BASE_DIR = "/var/lib/tugboat/local-path"
ENSURE_CLASS = "\x00storageclass"  # a queue key no claim can have


class LocalPathProvisioner:
    name = "localpath"

    def __init__(
        self,
        client: Any,
        *,
        claims: Store,
        volumes: Store,
        base_dir: str = DEFAULT_BASE_DIR,
        queue: WorkQueue | None = None,
        recorder: Any = None,
    ) -> None:
        self.client = client
        self.claims = claims
        self.volumes = volumes
        self.base_dir = Path(base_dir)
        self.queue = queue or WorkQueue(name=self.name)
        self.recorder = recorder

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Any = None, **kw: Any
    ) -> LocalPathProvisioner:
        claims, volumes = factory.informer(PVCS), factory.informer(PVS)
        ctl = cls(
            factory.client, claims=claims.store, volumes=volumes.store, recorder=recorder, **kw
        )
        claims.add_handler(ctl.enqueue, lambda _old, new: ctl.enqueue(new), ctl.enqueue)
        volumes.add_handler(
            ctl.enqueue_volume, lambda _old, new: ctl.enqueue_volume(new), ctl.enqueue_volume
        )
        ctl.queue.add(ENSURE_CLASS)
        return ctl

    # -- event handlers ----------------------------------------------------------------------

    def enqueue(self, claim: Obj) -> None:
        self.queue.add(key_of(claim))

    def enqueue_volume(self, volume: Obj) -> None:
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if ref.get("name"):
            self.queue.add(f"{ref.get('namespace')}/{ref['name']}")

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        if key == ENSURE_CLASS:
            await self._ensure_class()
            return None
        claim = self.claims.get(key)
        if claim is None:
            await self._release(key)
            return None
        spec = claim.get("spec") or {}
        if "storageClassName" not in spec or spec.get("storageClassName") is None:
            await self._patch(PVCS, claim, {"spec": {"storageClassName": CLASS_NAME}})
            return None
        if spec.get("storageClassName") != CLASS_NAME or meta(claim).get("deletionTimestamp"):
            return None
        volume = self._volume_for(claim)
        if volume is None:
            storage_class = await self._storage_class()
            node = (meta(claim).get("annotations") or {}).get(SELECTED_NODE) or ""
            if not node and storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER:
                self._event(
                    claim,
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                )
                return None
            volume = await self._provision(claim, storage_class, node)
        if (volume.get("status") or {}).get("phase") != "Bound":
            await self._patch(PVS, volume, {"status": {"phase": "Bound"}}, status=True)
        if spec.get("volumeName") != name_of(volume):
            annotations = {BIND_COMPLETED: "yes"}
            body = {
                "metadata": {"annotations": annotations},
                "spec": {"volumeName": name_of(volume)},
            }
            await self._patch(PVCS, claim, body)
        if (claim.get("status") or {}).get("phase") != "Bound":
            vspec = volume.get("spec") or {}
            status = {
                "phase": "Bound",
                "accessModes": vspec.get("accessModes") or [],
                "capacity": vspec.get("capacity") or {},
            }
            await self._patch(PVCS, claim, {"status": status}, status=True)
        return None

    # -- steps -------------------------------------------------------------------------------

    async def _ensure_class(self) -> None:
        body = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": CLASS_NAME, "annotations": {DEFAULT_CLASS: "true"}},
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER,
        }
        try:
            await self.client.create(CLASSES, body)
        except errors.AlreadyExists:
            pass

    def _volume_for(self, claim: Obj) -> Obj | None:
        by_name = self.volumes.get(f"pvc-{uid_of(claim)}")
        if by_name is not None:
            return by_name
        wanted = (claim.get("spec") or {}).get("volumeName")
        return self.volumes.get(wanted) if wanted else None

    def _path_for(self, claim: Obj) -> Path:
        return self.base_dir / f"pvc-{uid_of(claim)}_{namespace_of(claim)}_{name_of(claim)}"

    async def _storage_class(self) -> Obj:
        """The class as stored ({} when missing: Immediate, Delete)."""
        try:
            sc: Obj = await self.client.get(CLASSES, CLASS_NAME)
        except errors.NotFound:
            return {}
        return sc

    async def _provision(self, claim: Obj, storage_class: Obj, node: str) -> Obj:
        spec = claim.get("spec") or {}
        request = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        body: Obj = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": f"pvc-{uid_of(claim)}",
                "annotations": {PROVISIONED_BY: PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": request},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
                "storageClassName": CLASS_NAME,
                "volumeMode": spec.get("volumeMode") or "Filesystem",
                "hostPath": {"path": str(self._path_for(claim)), "type": "DirectoryOrCreate"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": namespace_of(claim),
                    "name": name_of(claim),
                    "uid": uid_of(claim),
                },
            },
        }
        if node:
            body["spec"]["nodeAffinity"] = node_affinity(node)
        try:
            created: Obj = await self.client.create(PVS, body)
        except errors.AlreadyExists:
            created = await self.client.get(PVS, body["metadata"]["name"])
        message = f"Successfully provisioned volume {name_of(created)}"
        self._event(claim, "ProvisioningSucceeded", message)
        return created

    def _event(self, claim: Obj, reason: str, message: str) -> None:
        if self.recorder is not None:
            ref = {"kind": "PersistentVolumeClaim", "apiVersion": "v1", **claim}
            self.recorder.event(ref, "Normal", reason, message)

    async def _release(self, key: str) -> None:
        namespace, name = split_key(key)
        for volume in self.volumes.list():
            vspec = volume.get("spec") or {}
            ref = vspec.get("claimRef") or {}
            ours = (meta(volume).get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER
            if not ours or (ref.get("namespace"), ref.get("name")) != (namespace, name):
                continue
            # Released first, also before a delete: pv-protection keeps a Bound volume
            if (volume.get("status") or {}).get("phase") != "Released":
                await self._patch(PVS, volume, {"status": {"phase": "Released"}}, status=True)
            if vspec.get("persistentVolumeReclaimPolicy", "Delete") != "Delete":
                continue
            path = Path((vspec.get("hostPath") or {}).get("path") or "")
            if path.is_relative_to(self.base_dir) and path != self.base_dir:
                await asyncio.to_thread(shutil.rmtree, path, True)
            try:
                await self.client.delete(PVS, name_of(volume))
            except errors.NotFound:
                pass

    async def _patch(self, rt: Any, obj: Obj, body: Obj, status: bool = False) -> None:
        try:
            await self.client.patch(
                rt,
                name_of(obj),
                body,
                namespace_of(obj) or None,
                subresource="status" if status else None,
            )
        except errors.NotFound:
            pass


def node_affinity(node: str) -> Obj:
    """A PersistentVolume's ``nodeAffinity`` pinning it to ``node`` (as local volumes are)."""
    term = {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}
    return {"required": {"nodeSelectorTerms": [term]}}
