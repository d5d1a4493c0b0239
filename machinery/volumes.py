"""What the components that handle PersistentVolumes share: the resource types, the
annotations and labels Kubernetes' volume controllers and scheduler agree on, the identity of
tugboat's local-path provisioner (whose claims and volumes the other controllers leave alone),
and which volume a claim may bind to (used by the binder to bind and by the scheduler to find
the nodes where a waiting claim can get one)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from machinery.kinds import lookup
from machinery.nodeselector import any_term_matches, required_terms
from machinery.objects import is_deleting, labels_of, name_of, namespace_of, uid_of
from machinery.quantity import parse_quantity
from machinery.selectors import LabelSelector

Obj = dict[str, Any]

PVCS, PVS, CLASSES = (
    lookup("persistentvolumeclaims"),
    lookup("persistentvolumes"),
    lookup("storageclasses"),
)

LOCAL_PATH_CLASS = "local-path"
LOCAL_PATH_PROVISIONER = "tugboat.io/local-path"

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"  # StorageClass annotation
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"  # StorageClass volumeBindingMode
SELECTED_NODE = "volume.kubernetes.io/selected-node"  # claim annotation, set by the scheduler
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"  # claim annotation
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"  # claim and volume annotation
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"  # volume annotation
HOSTNAME_LABEL = "kubernetes.io/hostname"  # node label a volume's node affinity names
NO_PROVISIONER = "kubernetes.io/no-provisioner"  # a class of static volumes only
PVC_PROTECTION = "kubernetes.io/pvc-protection"  # claim finalizer: kept while pods use it
PV_PROTECTION = "kubernetes.io/pv-protection"  # volume finalizer: kept while bound


def claim_names(pod: Obj) -> list[str]:
    """The claims ``pod`` names in ``spec.volumes``, each once."""
    volumes = (pod.get("spec") or {}).get("volumes") or ()
    names = [(v.get("persistentVolumeClaim") or {}).get("claimName") for v in volumes]
    return [n for n in dict.fromkeys(names) if n]


# -- which volume a claim may bind to (pure) ----------------------------------------------------


def best_match(
    claim: Obj, volumes: list[Obj], node: Obj | None, *, reserved_only: bool = False
) -> Obj | None:
    """The volume ``claim`` should bind to (Kubernetes' ``FindMatchingVolume``): one reserved
    for it wins; else the smallest Available one that satisfies it, matches its selector and,
    given ``node``, admits that node. ``reserved_only``: consider only reserved ones."""
    selector = (claim.get("spec") or {}).get("selector")
    matches = LabelSelector.from_dict(selector).matches if selector is not None else None
    best: Obj | None = None
    for volume in sorted(volumes, key=name_of):
        reserved = reserved_for(volume, claim)
        if (claim_ref(volume) and not reserved) or unsuitable(volume, claim, any_class=reserved):
            continue
        fits = node is None or _admits(volume, node)
        if reserved:
            return volume if fits else None  # a reservation the node cannot use: no match
        if (
            reserved_only
            or not fits
            or (volume.get("status") or {}).get("phase") != "Available"
            or (matches is not None and not matches(labels_of(volume)))
        ):
            continue
        if best is None or _rank(volume) < _rank(best):
            best = volume
    return best


def unsuitable(volume: Obj, claim: Obj, *, any_class: bool = False) -> str | None:
    """Why ``volume`` cannot serve ``claim`` (Kubernetes' ``checkVolumeSatisfyClaim``), or
    None. ``any_class``: do not compare classes (a volume reserved for the claim)."""
    vspec, cspec = volume.get("spec") or {}, claim.get("spec") or {}
    if is_deleting(volume):
        return f'the volume is marked for deletion "{name_of(volume)}"'
    request = ((cspec.get("resources") or {}).get("requests") or {}).get("storage")
    if _size(volume) < parse_quantity(request or 0):
        return "requested PV is too small"
    if not any_class and volume_class(volume) != (claim_class(claim) or ""):
        return "storageClassName does not match"
    if (vspec.get("volumeMode") or "Filesystem") != (cspec.get("volumeMode") or "Filesystem"):
        return "incompatible volumeMode"
    if not set(cspec.get("accessModes") or ()) <= set(vspec.get("accessModes") or ()):
        return "incompatible accessMode"
    return None


def _admits(volume: Obj, node: Obj) -> bool:
    terms = required_terms(volume)
    return terms is None or any_term_matches(terms, labels_of(node), name_of(node))


def _rank(volume: Obj) -> tuple[Decimal, int, str]:
    """Smallest first, then the fewest access modes, then by name."""
    modes = (volume.get("spec") or {}).get("accessModes") or ()
    return _size(volume), len(modes), name_of(volume)


def _size(volume: Obj) -> Decimal:
    return parse_quantity(((volume.get("spec") or {}).get("capacity") or {}).get("storage") or 0)


def claim_ref(volume: Obj) -> Obj:
    return (volume.get("spec") or {}).get("claimRef") or {}


def claim_class(claim: Obj) -> str | None:
    return (claim.get("spec") or {}).get("storageClassName")


def volume_class(volume: Obj) -> str:
    return (volume.get("spec") or {}).get("storageClassName") or ""


def refers_to(volume: Obj, namespace: str, name: str) -> bool:
    ref = claim_ref(volume)
    return (ref.get("namespace") or "", ref.get("name")) == (namespace, name)


def reserved_for(volume: Obj, claim: Obj) -> bool:
    """``claimRef`` names ``claim``, with its uid or none (Kubernetes'
    ``IsVolumeBoundToClaim``)."""
    uid = claim_ref(volume).get("uid")
    return refers_to(volume, namespace_of(claim), name_of(claim)) and uid in (
        None,
        "",
        uid_of(claim),
    )
