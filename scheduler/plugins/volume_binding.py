"""VolumeBinding: a pod's PersistentVolumeClaims decide where it may run (kube-scheduler's plugin
of that name, for the volumes tugboat provisions: node-local ones).

- PreFilter rejects the pod on every node when a claim does not exist or is being deleted, or
  is unbound although its StorageClass binds at once (``Immediate``, or no StorageClass): the
  provisioner or the PersistentVolume binder binds it, and the claim's update requeues the pod.
- Filter: a bound claim's PersistentVolume with ``spec.nodeAffinity`` admits only the nodes
  its required terms match ("node(s) had volume node affinity conflict"). An unbound claim of
  a ``WaitForFirstConsumer`` class fits any node, unless a node was already chosen for it (the
  ``volume.kubernetes.io/selected-node`` annotation): then only that one.
- Filter, for an unbound claim of a ``WaitForFirstConsumer`` class whose provisioner is
  ``kubernetes.io/no-provisioner`` (static volumes only, such as local disks): the node must
  have an Available volume the claim can bind to (:func:`machinery.volumes.best_match`: class,
  size, access modes, selector, node affinity), one per claim ("node(s) didn't find available
  persistent volumes to bind"); the PersistentVolume binder binds it once PreBind has chosen
  the node.
- PreBind: each such unbound claim is annotated with the chosen node before the pod is bound;
  the provisioner then makes the volume on that node. Unlike kube-scheduler, the bind does not
  wait for the claim to become Bound: the node agent retries the volume (``FailedMount``) until
  it is.
- Without listers (see :meth:`VolumeBinding.use`; a framework built without a scheduler's
  informers) the plugin skips every pod.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from machinery import errors
from machinery.nodeselector import any_term_matches, required_terms
from machinery.volumes import (
    DEFAULT_CLASS,
    NO_PROVISIONER,
    PVCS,
    SELECTED_NODE,
    WAIT_FOR_FIRST_CONSUMER,
    best_match,
    claim_names,
)
from scheduler.cache import NodeInfo, Snapshot
from scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    OK,
    SKIP,
    CycleState,
    FilterPlugin,
    PreBindPlugin,
    PreFilterPlugin,
    Status,
    error,
    unresolvable,
)

ERR_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
ERR_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"

CLAIM_ADD, CLAIM_UPDATE = "PersistentVolumeClaim/Add", "PersistentVolumeClaim/Update"
VOLUME_ADD, VOLUME_UPDATE = "PersistentVolume/Add", "PersistentVolume/Update"
CLASS_ADD = "StorageClass/Add"

Obj = dict[str, Any]
Lookup = Callable[[str], Obj | None]


@dataclass(frozen=True)
class VolumeListers:
    """Reads of the scheduler's informer caches: a claim by ``namespace/name``, a volume and a
    StorageClass by name, every StorageClass (to find the default one) and every volume (for
    claims of a class of static volumes)."""

    claim: Lookup
    volume: Lookup
    storage_class: Lookup
    storage_classes: Callable[[], list[Obj]]
    volumes: Callable[[], list[Obj]] = list


@dataclass(frozen=True)
class PodVolumes:
    """What PreFilter found: the required node terms of each bound volume with node affinity,
    and the unbound claims to provision as (namespace, name, node already selected or "")."""

    affinities: tuple[tuple[Mapping[str, Any], ...], ...]
    to_provision: tuple[tuple[str, str, str], ...]
    static: tuple[Obj, ...] = ()  # claims that only an existing volume can serve


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


class VolumeBinding(PreFilterPlugin, FilterPlugin, PreBindPlugin):
    name = "VolumeBinding"
    events = (CLAIM_ADD, CLAIM_UPDATE, VOLUME_ADD, VOLUME_UPDATE, CLASS_ADD, NODE_ADD, NODE_UPDATE)
    NODE_CONFLICT = unresolvable(ERR_NODE_CONFLICT).with_plugin(name)
    BIND_CONFLICT = unresolvable(ERR_BIND_CONFLICT).with_plugin(name)

    def __init__(self) -> None:
        self.listers: VolumeListers | None = None
        self.client: Any = None

    def use(self, listers: VolumeListers, client: Any) -> None:
        """Give the plugin the caches it reads and the client PreBind writes with."""
        self.listers, self.client = listers, client

    def pre_filter(self, state: CycleState, pod: dict, snapshot: Snapshot) -> Status:
        names = claim_names(pod)
        if not names or self.listers is None:
            return SKIP
        namespace = _meta(pod).get("namespace") or "default"
        affinities: list[tuple[Mapping[str, Any], ...]] = []
        to_provision: list[tuple[str, str, str]] = []
        static: list[Obj] = []
        for name in names:
            claim = self.listers.claim(f"{namespace}/{name}")
            if claim is None:
                return unresolvable(f'persistentvolumeclaim "{name}" not found')
            if _meta(claim).get("deletionTimestamp"):
                return unresolvable(f'persistentvolumeclaim "{name}" is being deleted')
            volume_name = (claim.get("spec") or {}).get("volumeName")
            if volume_name:
                volume = self.listers.volume(volume_name)
                if volume is None:
                    return unresolvable(
                        f'pvc {namespace}/{name} bound to non-existent pv "{volume_name}"'
                    )
                terms = required_terms(volume)
                if terms is not None:
                    affinities.append(terms)
            elif (storage_class := self._class_of(claim)).get(
                "volumeBindingMode"
            ) == WAIT_FOR_FIRST_CONSUMER:
                selected = (_meta(claim).get("annotations") or {}).get(SELECTED_NODE, "")
                to_provision.append((namespace, name, selected))
                if storage_class.get("provisioner") == NO_PROVISIONER:
                    static.append(claim)
            else:
                return unresolvable(ERR_UNBOUND_IMMEDIATE)
        if not affinities and not to_provision:
            return SKIP
        state[self.name] = PodVolumes(tuple(affinities), tuple(to_provision), tuple(static))
        return OK

    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        found: PodVolumes | None = state.get(self.name)
        if found is None:
            return OK
        for terms in found.affinities:
            if not any_term_matches(terms, node.labels, node.name):
                return self.NODE_CONFLICT
        for _, _, selected in found.to_provision:
            if selected and selected != node.name:
                return self.BIND_CONFLICT
        if found.static and not self._static_volumes_fit(found.static, node):
            return self.BIND_CONFLICT
        return OK

    async def pre_bind(self, state: CycleState, pod: dict, node_name: str) -> Status:
        found: PodVolumes | None = state.get(self.name)
        if found is None or self.client is None:
            return OK
        for namespace, name, selected in found.to_provision:
            if selected == node_name:
                continue
            body = {"metadata": {"annotations": {SELECTED_NODE: node_name}}}
            try:
                await self.client.patch(PVCS, name, body, namespace)
            except errors.ApiError as exc:
                return error(f'annotating persistentvolumeclaim "{name}": {exc}')
        return OK

    # -- helpers ------------------------------------------------------------------------------

    def _static_volumes_fit(self, claims: tuple[Obj, ...], node: NodeInfo) -> bool:
        """Whether each claim finds its own Available volume whose node affinity admits
        ``node`` (a class without a provisioner has no other way to get one)."""
        assert self.listers is not None
        as_object = {"metadata": {"name": node.name, "labels": dict(node.labels)}}
        free = self.listers.volumes()
        for claim in claims:
            volume = best_match(claim, free, as_object)
            if volume is None:
                return False
            free = [v for v in free if v is not volume]
        return True

    def _class_of(self, claim: Obj) -> Obj:
        """The claim's StorageClass (the default one when it names none yet), or {}."""
        assert self.listers is not None
        class_name = (claim.get("spec") or {}).get("storageClassName")
        if class_name is None:  # the default class will be assigned to it
            sc = next(
                (
                    c
                    for c in self.listers.storage_classes()
                    if (_meta(c).get("annotations") or {}).get(DEFAULT_CLASS) == "true"
                ),
                None,
            )
        else:
            sc = self.listers.storage_class(class_name) if class_name else None
        return sc or {}
