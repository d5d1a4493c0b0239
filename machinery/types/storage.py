"""core ``v1`` PersistentVolume and PersistentVolumeClaim: models, defaults and validation.

Volume sources this module does not check are kept as opaque objects, so that every field
Kubernetes has is declared (kubectl's strict field validation refuses undeclared ones).
"""

from __future__ import annotations

from typing import Any

from .core import CoreModel, HostPathVolumeSource, NodeSelector, Object, ObjectReference
from .meta import LabelSelector, Quantity, Time, opt, req
from .podspec import validate_node_selector
from .validation import (
    FieldErrors,
    dns1123_subdomain_errors,
    quantity,
    validate_immutable,
    validate_selector,
)

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
VOLUME_MODES = ("Block", "Filesystem")
RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
CLAIM_PHASES = ("Pending", "Bound", "Lost")
VOLUME_PHASES = ("Pending", "Available", "Bound", "Released", "Failed")

# --- PersistentVolumeClaim ---------------------------------------------------------------------


class TypedLocalObjectReference(CoreModel):
    """An object in the same namespace, by group, kind and name."""

    api_group: str | None = opt("Group of the referent; empty for the core group.")
    kind: str = req("Kind of the referent.")
    name: str = req("Name of the referent.")


class TypedObjectReference(CoreModel):
    """An object by group, kind, name and (optionally) namespace."""

    api_group: str | None = opt("Group of the referent; empty for the core group.")
    kind: str = req("Kind of the referent.")
    name: str = req("Name of the referent.")
    namespace: str | None = opt("Namespace of the referent; defaults to the claim's.")


class VolumeResourceRequirements(CoreModel):
    """Storage a claim asks for."""

    requests: dict[str, Quantity] | None = opt("Minimum resources; storage is required.")
    limits: dict[str, Quantity] | None = opt("Maximum resources.")


class PersistentVolumeClaimSpec(CoreModel):
    """The storage a claim asks for."""

    access_modes: list[str] | None = opt(
        "ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod."
    )
    selector: LabelSelector | None = opt("Labels of the volumes the claim may bind to.")
    resources: VolumeResourceRequirements | None = opt("Requested storage.")
    volume_name: str | None = opt("The PersistentVolume bound to this claim.")
    storage_class_name: str | None = opt(
        "StorageClass the claim wants; unset gets the default class, empty means none."
    )
    volume_mode: str | None = opt("Filesystem or Block; defaults to Filesystem.")
    data_source: TypedLocalObjectReference | None = opt(
        "A snapshot or claim to populate the volume from."
    )
    data_source_ref: TypedObjectReference | None = opt(
        "Any object to populate the volume from (a volume populator)."
    )
    volume_attributes_class_name: str | None = opt("VolumeAttributesClass of the claim.")


class PersistentVolumeClaimCondition(CoreModel):
    """A condition of a claim (resizing, modifying volume attributes)."""

    type: str = req("Condition type, such as Resizing.")
    status: str = req("True, False or Unknown.")
    last_probe_time: Time | None = opt("When the condition was last probed.")
    last_transition_time: Time | None = opt("When status last changed.")
    reason: str | None = opt("Machine-readable CamelCase reason.")
    message: str | None = opt("Human-readable detail.")


class ModifyVolumeStatus(CoreModel):
    """Progress of a change of the claim's VolumeAttributesClass."""

    target_volume_attributes_class_name: str | None = opt("The class being applied.")
    status: str = req("Pending, InProgress or Infeasible.")


class PersistentVolumeClaimStatus(CoreModel):
    """The observed state of a claim."""

    phase: str | None = opt("Pending, Bound or Lost.")
    access_modes: list[str] | None = opt("Access modes of the bound volume.")
    capacity: dict[str, Quantity] | None = opt("Capacity of the bound volume.")
    conditions: list[PersistentVolumeClaimCondition] | None = opt("Current conditions.")
    allocated_resources: dict[str, Quantity] | None = opt("Storage allocated by resizing.")
    allocated_resource_statuses: dict[str, str] | None = opt("State of each resize.")
    current_volume_attributes_class_name: str | None = opt("VolumeAttributesClass in effect.")
    modify_volume_status: ModifyVolumeStatus | None = opt("Progress of an attributes change.")


class PersistentVolumeClaim(Object):
    """A user's request for storage, bound to one PersistentVolume."""

    spec: PersistentVolumeClaimSpec | None = opt("Desired state.")
    status: PersistentVolumeClaimStatus | None = opt("Observed state.")


# --- PersistentVolume --------------------------------------------------------------------------


class SecretReference(CoreModel):
    """A Secret in any namespace."""

    name: str | None = opt("Name of the Secret.")
    namespace: str | None = opt("Namespace of the Secret.")


class LocalVolumeSource(CoreModel):
    """A disk, partition or directory of one node."""

    path: str = req("Full path on the node.")
    fs_type: str | None = opt("Filesystem of a block device, such as ext4.")


class NFSVolumeSource(CoreModel):
    """An NFS export."""

    server: str = req("Hostname or IP address of the NFS server.")
    path: str = req("Path exported by the server.")
    read_only: bool | None = opt("Mount read-only.")


class CSIPersistentVolumeSource(CoreModel):
    """A volume of a CSI driver."""

    driver: str = req("Name of the CSI driver.")
    volume_handle: str = req("The driver's unique id of the volume.")
    read_only: bool | None = opt("Publish read-only.")
    fs_type: str | None = opt("Filesystem to mount, such as ext4.")
    volume_attributes: dict[str, str] | None = opt("Driver-specific attributes.")
    controller_publish_secret_ref: SecretReference | None = opt("Secret for ControllerPublish.")
    node_stage_secret_ref: SecretReference | None = opt("Secret for NodeStage.")
    node_publish_secret_ref: SecretReference | None = opt("Secret for NodePublish.")
    controller_expand_secret_ref: SecretReference | None = opt("Secret for ControllerExpand.")
    node_expand_secret_ref: SecretReference | None = opt("Secret for NodeExpand.")


class VolumeNodeAffinity(CoreModel):
    """The nodes a volume can be used from."""

    required: NodeSelector | None = opt("Nodes the volume is reachable from.")


def _source(description: str) -> Any:
    return opt(f"{description} (kept as sent, not checked).")


class PersistentVolumeSpec(CoreModel):
    """A piece of storage: its size, access modes, binding and exactly one volume source."""

    capacity: dict[str, Quantity] | None = opt("Size of the volume; only storage.")
    access_modes: list[str] | None = opt("Ways the volume can be mounted.")
    claim_ref: ObjectReference | None = opt("The claim bound (or reserved) to this volume.")
    persistent_volume_reclaim_policy: str | None = opt(
        "What happens when the claim goes: Retain (default), Delete or Recycle."
    )
    storage_class_name: str | None = opt("StorageClass the volume belongs to.")
    mount_options: list[str] | None = opt("Mount options, such as ro or soft.")
    volume_mode: str | None = opt("Filesystem or Block; defaults to Filesystem.")
    node_affinity: VolumeNodeAffinity | None = opt("Nodes the volume can be used from.")
    volume_attributes_class_name: str | None = opt("VolumeAttributesClass of the volume.")
    host_path: HostPathVolumeSource | None = opt("A directory of the node (single-node use).")
    local: LocalVolumeSource | None = opt("A local disk or directory of one node.")
    nfs: NFSVolumeSource | None = opt("An NFS export.")
    csi: CSIPersistentVolumeSource | None = opt("A volume of a CSI driver.")
    gce_persistent_disk: dict[str, Any] | None = _source("A GCE persistent disk")
    aws_elastic_block_store: dict[str, Any] | None = _source("An AWS EBS volume")
    glusterfs: dict[str, Any] | None = _source("A Glusterfs volume")
    flocker: dict[str, Any] | None = _source("A Flocker dataset")
    rbd: dict[str, Any] | None = _source("A Rados block device")
    quobyte: dict[str, Any] | None = _source("A Quobyte volume")
    cinder: dict[str, Any] | None = _source("An OpenStack Cinder volume")
    cephfs: dict[str, Any] | None = _source("A CephFS mount")
    iscsi: dict[str, Any] | None = _source("An iSCSI disk")
    fc: dict[str, Any] | None = _source("A Fibre Channel disk")
    flex_volume: dict[str, Any] | None = _source("A FlexVolume driver's volume")
    azure_file: dict[str, Any] | None = _source("An Azure File share")
    vsphere_volume: dict[str, Any] | None = _source("A vSphere volume")
    photon_persistent_disk: dict[str, Any] | None = _source("A Photon Controller disk")
    portworx_volume: dict[str, Any] | None = _source("A Portworx volume")
    azure_disk: dict[str, Any] | None = _source("An Azure data disk")
    scale_io: dict[str, Any] | None = opt(
        "A ScaleIO volume (kept as sent, not checked).", alias="scaleIO"
    )
    storageos: dict[str, Any] | None = _source("A StorageOS volume")


#: The volume source fields, in the order Kubernetes counts them ("more than 1 volume type").
_SOURCES = (
    "host_path",
    "gce_persistent_disk",
    "aws_elastic_block_store",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cinder",
    "cephfs",
    "iscsi",
    "fc",
    "flex_volume",
    "azure_file",
    "vsphere_volume",
    "photon_persistent_disk",
    "portworx_volume",
    "azure_disk",
    "scale_io",
    "local",
    "storageos",
    "csi",
)
#: Their wire names.
SOURCE_FIELDS = tuple(PersistentVolumeSpec.model_fields[a].alias or a for a in _SOURCES)


class PersistentVolumeStatus(CoreModel):
    """The observed state of a volume."""

    phase: str | None = opt("Pending, Available, Bound, Released or Failed.")
    message: str | None = opt("Human-readable detail of the phase.")
    reason: str | None = opt("Machine-readable reason of a failure.")
    last_phase_transition_time: Time | None = opt("When phase last changed.")


class PersistentVolume(Object):
    """A piece of storage in the cluster, provisioned by an administrator or a StorageClass."""

    spec: PersistentVolumeSpec | None = opt("Desired state.")
    status: PersistentVolumeStatus | None = opt("Observed state.")


# --- defaults ----------------------------------------------------------------------------------


def default_claim(claim: PersistentVolumeClaim) -> None:
    """volumeMode Filesystem, phase Pending."""
    if claim.spec is None:
        claim.spec = PersistentVolumeClaimSpec()
    if claim.spec.volume_mode is None:
        claim.spec.volume_mode = "Filesystem"
    if claim.status is None:
        claim.status = PersistentVolumeClaimStatus()
    if not claim.status.phase:
        claim.status.phase = "Pending"


def default_volume(volume: PersistentVolume) -> None:
    """Reclaim policy Retain, volumeMode Filesystem, phase Pending."""
    if volume.spec is None:
        volume.spec = PersistentVolumeSpec()
    if volume.spec.persistent_volume_reclaim_policy is None:
        volume.spec.persistent_volume_reclaim_policy = "Retain"
    if volume.spec.volume_mode is None:
        volume.spec.volume_mode = "Filesystem"
    if volume.status is None:
        volume.status = PersistentVolumeStatus()
    if not volume.status.phase:
        volume.status.phase = "Pending"


# --- validation --------------------------------------------------------------------------------


def _validate_access_modes(modes: list[str] | None, errs: FieldErrors, detail: str = "") -> None:
    if not modes:
        errs.required("spec.accessModes", detail)
    for mode in modes or ():
        errs.enum("spec.accessModes", mode, ACCESS_MODES)
    others = set(ACCESS_MODES) - {"ReadWriteOncePod"}
    if modes and "ReadWriteOncePod" in modes and others.intersection(modes):
        errs.forbidden("spec.accessModes", "may not use ReadWriteOncePod with other access modes")


def _validate_class_and_mode(
    spec: PersistentVolumeClaimSpec | PersistentVolumeSpec, errs: FieldErrors
) -> None:
    if spec.storage_class_name:
        errs.check(
            "spec.storageClassName",
            spec.storage_class_name,
            dns1123_subdomain_errors(spec.storage_class_name),
        )
    errs.enum("spec.volumeMode", spec.volume_mode, VOLUME_MODES)


def _validate_positive(path: str, value: str, errs: FieldErrors) -> None:
    amount = quantity(value)
    if amount is not None and amount <= 0:
        errs.invalid(path, value, "must be greater than zero")


def validate_claim(
    claim: PersistentVolumeClaim, old: dict[str, Any] | None, errs: FieldErrors
) -> None:
    spec = claim.spec
    assert spec is not None  # defaulted
    _validate_access_modes(spec.access_modes, errs, "at least 1 access mode is required")
    validate_selector(spec.selector, "spec.selector", errs)
    storage = ((spec.resources.requests if spec.resources else None) or {}).get("storage")
    if storage is None:
        errs.required("spec.resources[storage]")
    else:
        _validate_positive("spec.resources[storage]", storage, errs)
    _validate_class_and_mode(spec, errs)
    errs.enum("status.phase", claim.status.phase if claim.status else None, CLAIM_PHASES)
    if old is not None:
        _validate_claim_update(claim, old, errs)


_CLAIM_IMMUTABLE = (
    "spec is immutable after creation except resources.requests and volumeAttributesClassName "
    "for bound claims"
)


def _validate_claim_update(
    claim: PersistentVolumeClaim, old: dict[str, Any], errs: FieldErrors
) -> None:
    """Only binding, default-class assignment and (of a bound claim) resizing change the spec."""
    assert claim.spec is not None
    new_spec, old_spec = claim.spec.to_dict(), old.get("spec") or {}
    new_view, old_view = _claim_spec_view(new_spec), _claim_spec_view(old_spec)
    ignored = []
    if not old_spec.get("volumeName"):
        ignored.append("volumeName")  # set once, at binding
    if old_spec.get("storageClassName") is None and new_spec.get("storageClassName"):
        ignored.append("storageClassName")  # the default class, assigned retroactively
    if claim.status is not None and claim.status.phase == "Bound":
        ignored.append("storage")
        if new_spec.get("volumeAttributesClassName") is not None:
            ignored.append("volumeAttributesClassName")
    for view in (new_view, old_view):
        for key in ignored:
            view.pop(key, None)
    if new_view != old_view:
        errs.forbidden("spec", _CLAIM_IMMUTABLE)
    new_size = quantity(str(_requests(new_spec).get("storage", "0")))
    old_size = quantity(str(_requests(old_spec).get("storage", "0")))
    if new_size is not None and old_size is not None and new_size < old_size:
        errs.forbidden(
            "spec.resources.requests.storage", "field can not be less than previous value"
        )


def _requests(spec: dict[str, Any]) -> dict[str, Any]:
    return (spec.get("resources") or {}).get("requests") or {}


def _claim_spec_view(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` flattened for comparison: the storage request becomes key ``storage``, and the
    defaults a claim stored before these rules lacks are filled in."""
    requests = dict(_requests(spec))
    view = {**spec, "resources": {**(spec.get("resources") or {}), "requests": requests}}
    view["storage"] = requests.pop("storage", None)
    view.setdefault("volumeMode", "Filesystem")
    return view


def validate_volume(
    volume: PersistentVolume, old: dict[str, Any] | None, errs: FieldErrors
) -> None:
    spec = volume.spec
    assert spec is not None  # defaulted
    _validate_access_modes(spec.access_modes, errs)
    capacity = spec.capacity or {}
    if not capacity:
        errs.required("spec.capacity")
    if "storage" not in capacity or len(capacity) > 1:
        errs.not_supported("spec.capacity", capacity, ("storage",))
    for name, value in capacity.items():
        _validate_positive(f"spec.capacity[{name}]", value, errs)
    _validate_class_and_mode(spec, errs)
    errs.enum(
        "spec.persistentVolumeReclaimPolicy",
        spec.persistent_volume_reclaim_policy,
        RECLAIM_POLICIES,
    )
    affinity = spec.node_affinity
    if affinity is not None:
        if affinity.required is None:
            errs.required("spec.nodeAffinity.required", "must specify required node constraints")
        else:
            validate_node_selector(affinity.required, "spec.nodeAffinity.required", errs)
    _validate_source(spec, errs)
    errs.enum("status.phase", volume.status.phase if volume.status else None, VOLUME_PHASES)
    if old is not None:
        _validate_volume_update(spec, old.get("spec") or {}, errs)


def _validate_volume_update(
    spec: PersistentVolumeSpec, old_spec: dict[str, Any], errs: FieldErrors
) -> None:
    """The volume source never changes, nor does a node affinity once set."""
    new_spec = spec.to_dict()
    if [new_spec.get(f) for f in SOURCE_FIELDS] != [old_spec.get(f) for f in SOURCE_FIELDS]:
        errs.forbidden(
            "spec.persistentvolumesource", "spec.persistentvolumesource is forbidden to be changed"
        )
    if old_spec.get("nodeAffinity") is not None:
        validate_immutable(
            new_spec.get("nodeAffinity"), old_spec["nodeAffinity"], "spec.nodeAffinity", errs
        )


def _validate_source(spec: PersistentVolumeSpec, errs: FieldErrors) -> None:
    """Exactly one volume source; the paths of hostPath and local are required."""
    present = [
        f for a, f in zip(_SOURCES, SOURCE_FIELDS, strict=True) if getattr(spec, a) is not None
    ]
    if not present:
        errs.required("spec", "must specify a volume type")
    for field in present[1:]:
        errs.forbidden(f"spec.{field}", "may not specify more than 1 volume type")
    if spec.host_path is not None and not spec.host_path.path:
        errs.required("spec.hostPath.path")
    if spec.local is not None:
        if not spec.local.path:
            errs.required("spec.local.path")
        if spec.node_affinity is None:
            errs.required("spec.nodeAffinity", "Local volume requires node affinity")
