"""machinery.types.storage: PersistentVolumeClaim and PersistentVolume admission."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from controllers.localpath import LocalPathProvisioner
from controllers.testing import FakeClient, store_of
from controllers.volumebinder import VolumeBinder
from machinery.errors import Invalid
from machinery.kinds import ResourceType
from machinery.types import admit, openapi_components
from machinery.volumes import PVCS, PVS

Obj = dict[str, Any]
CLAIM, VOLUME = "PersistentVolumeClaim", "PersistentVolume"
HOST_TERM = {
    "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]
}


def claim(**spec: Any) -> Obj:
    base = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    return {"metadata": {"name": "db", "namespace": "shop"}, "spec": {**base, **spec}}


def volume(**spec: Any) -> Obj:
    base = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": "/data/pv1"},
    }
    return {"metadata": {"name": "pv1"}, "spec": {**base, **spec}}


def admitted(kind: str, obj: Obj, old: Obj | None = None) -> Obj:
    out, unknown = admit(copy.deepcopy(obj), api_version="v1", kind=kind, old=old)
    assert unknown == []
    return out


def causes(kind: str, obj: Obj, old: Obj | None = None) -> list[tuple[str, str, str]]:
    with pytest.raises(Invalid) as info:
        admit(copy.deepcopy(obj), api_version="v1", kind=kind, old=old)
    return [(c["field"], c["reason"], c["message"]) for c in info.value.details["causes"]]


def status_write(stored: Obj, status: Obj) -> Obj:
    """What the API server admits for a write of the status subresource."""
    return {**copy.deepcopy(stored), "status": status}


# --- defaults ----------------------------------------------------------------------------------


def test_claim_defaults_phase_pending_and_filesystem_mode() -> None:
    out = admitted(CLAIM, claim())
    assert out["status"] == {"phase": "Pending"}
    assert out["spec"]["volumeMode"] == "Filesystem"
    assert admitted(CLAIM, claim(volumeMode="Block"))["spec"]["volumeMode"] == "Block"


def test_volume_defaults_phase_reclaim_policy_and_mode() -> None:
    out = admitted(VOLUME, volume())
    assert out["status"] == {"phase": "Pending"}
    assert out["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert out["spec"]["volumeMode"] == "Filesystem"
    kept = admitted(VOLUME, volume(persistentVolumeReclaimPolicy="Delete"))
    assert kept["spec"]["persistentVolumeReclaimPolicy"] == "Delete"


# --- validation on create ----------------------------------------------------------------------


def without(obj: Obj, *path: str) -> Obj:
    obj = copy.deepcopy(obj)
    node = obj
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return obj


def with_status(obj: Obj, phase: str) -> Obj:
    return {**obj, "status": {"phase": phase}}


CLAIM_ERRORS = [
    (
        without(claim(), "spec", "accessModes"),
        "spec.accessModes",
        "FieldValueRequired",
        "Required value: at least 1 access mode is required",
    ),
    (
        claim(accessModes=["ReadWriteSometimes"]),
        "spec.accessModes",
        "FieldValueNotSupported",
        'Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", '
        '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"',
    ),
    (
        claim(accessModes=["ReadWriteOncePod", "ReadOnlyMany"]),
        "spec.accessModes",
        "FieldValueForbidden",
        "Forbidden: may not use ReadWriteOncePod with other access modes",
    ),
    (
        claim(resources={"requests": {"cpu": "1"}}),
        "spec.resources[storage]",
        "FieldValueRequired",
        "Required value",
    ),
    (
        without(claim(), "spec", "resources"),
        "spec.resources[storage]",
        "FieldValueRequired",
        "Required value",
    ),
    (
        claim(resources={"requests": {"storage": "0"}}),
        "spec.resources[storage]",
        "FieldValueInvalid",
        'Invalid value: "0": must be greater than zero',
    ),
    (
        claim(resources={"requests": {"storage": "lots"}}),
        "spec.resources.requests[storage]",
        "FieldValueInvalid",
        'Invalid value: "lots": quantities must match the regular expression',
    ),
    (
        claim(volumeMode="Raw"),
        "spec.volumeMode",
        "FieldValueNotSupported",
        'Unsupported value: "Raw": supported values: "Block", "Filesystem"',
    ),
    (
        claim(storageClassName="Fast_SSD"),
        "spec.storageClassName",
        "FieldValueInvalid",
        'Invalid value: "Fast_SSD": a lowercase RFC 1123 subdomain',
    ),
    (
        with_status(claim(), "Released"),
        "status.phase",
        "FieldValueNotSupported",
        'Unsupported value: "Released": supported values: "Pending", "Bound", "Lost"',
    ),
    (
        claim(dataSource={"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io"}),
        "spec.dataSource.name",
        "FieldValueRequired",
        "Required value",
    ),
]


@pytest.mark.parametrize(("obj", "field", "reason", "message"), CLAIM_ERRORS)
def test_invalid_claims(obj: Obj, field: str, reason: str, message: str) -> None:
    found = causes(CLAIM, obj)
    assert any(f == field and r == reason and m.startswith(message) for f, r, m in found), found


TWO_SOURCES = volume(
    nfs={"server": "nas", "path": "/export"}, csi={"driver": "d", "volumeHandle": "h"}
)
VOLUME_ERRORS = [
    (
        without(volume(), "spec", "capacity"),
        "spec.capacity",
        "FieldValueRequired",
        "Required value",
    ),
    (
        volume(capacity={"storage": "1Gi", "iops": "300"}),
        "spec.capacity",
        "FieldValueNotSupported",
        'Unsupported value: {"storage":"1Gi","iops":"300"}: supported values: "storage"',
    ),
    (
        volume(capacity={"storage": "0"}),
        "spec.capacity[storage]",
        "FieldValueInvalid",
        'Invalid value: "0": must be greater than zero',
    ),
    (
        volume(capacity={"storage": "big"}),
        "spec.capacity[storage]",
        "FieldValueInvalid",
        'Invalid value: "big": quantities must match the regular expression',
    ),
    (
        without(volume(), "spec", "accessModes"),
        "spec.accessModes",
        "FieldValueRequired",
        "Required value",
    ),
    (
        volume(accessModes=["ReadWriteOnce", "ReadWriteOncePod"]),
        "spec.accessModes",
        "FieldValueForbidden",
        "Forbidden: may not use ReadWriteOncePod with other access modes",
    ),
    (
        volume(persistentVolumeReclaimPolicy="Keep"),
        "spec.persistentVolumeReclaimPolicy",
        "FieldValueNotSupported",
        'Unsupported value: "Keep": supported values: "Delete", "Recycle", "Retain"',
    ),
    (
        without(volume(), "spec", "hostPath"),
        "spec",
        "FieldValueRequired",
        "Required value: must specify a volume type",
    ),
    (
        volume(nfs={"server": "nas", "path": "/export"}),
        "spec.nfs",
        "FieldValueForbidden",
        "Forbidden: may not specify more than 1 volume type",
    ),
    (TWO_SOURCES, "spec.csi", "FieldValueForbidden", "Forbidden: may not specify more"),
    (
        volume(hostPath={"path": ""}),
        "spec.hostPath.path",
        "FieldValueRequired",
        "Required value",
    ),
    (
        without(
            volume(
                local={"path": ""}, nodeAffinity={"required": {"nodeSelectorTerms": [HOST_TERM]}}
            ),
            "spec",
            "hostPath",
        ),
        "spec.local.path",
        "FieldValueRequired",
        "Required value",
    ),
    (
        without(volume(local={"path": "/mnt/disk1"}), "spec", "hostPath"),
        "spec.nodeAffinity",
        "FieldValueRequired",
        "Required value: Local volume requires node affinity",
    ),
    (
        volume(nodeAffinity={"required": {"nodeSelectorTerms": []}}),
        "spec.nodeAffinity.required.nodeSelectorTerms",
        "FieldValueRequired",
        "Required value: must have at least one node selector term",
    ),
    (
        volume(storageClassName="Local_Path"),
        "spec.storageClassName",
        "FieldValueInvalid",
        'Invalid value: "Local_Path": a lowercase RFC 1123 subdomain',
    ),
    (
        volume(volumeMode="Raw"),
        "spec.volumeMode",
        "FieldValueNotSupported",
        'Unsupported value: "Raw": supported values: "Block", "Filesystem"',
    ),
    (
        with_status(volume(), "Lost"),
        "status.phase",
        "FieldValueNotSupported",
        'Unsupported value: "Lost": supported values: "Pending", "Available", "Bound", '
        '"Released", "Failed"',
    ),
]


@pytest.mark.parametrize(("obj", "field", "reason", "message"), VOLUME_ERRORS)
def test_invalid_volumes(obj: Obj, field: str, reason: str, message: str) -> None:
    found = causes(VOLUME, obj)
    assert any(f == field and r == reason and m.startswith(message) for f, r, m in found), found


def test_volume_with_two_sources_names_only_the_extra_ones() -> None:
    found = causes(VOLUME, TWO_SOURCES)
    assert [f for f, _, _ in found] == ["spec.nfs", "spec.csi"]


# --- updates -----------------------------------------------------------------------------------


def test_provisioner_writes_to_a_claim_pass() -> None:
    """What local-path does to a claim of no class: default class, binding, status Bound;
    and what the scheduler does (a selected-node annotation)."""
    stored = admitted(CLAIM, claim())
    assert "storageClassName" not in stored["spec"]
    assert stored["status"] == {"phase": "Pending"}
    annotated = copy.deepcopy(stored)
    annotated["metadata"]["annotations"] = {"volume.kubernetes.io/selected-node": "n1"}
    stored = admitted(CLAIM, annotated, old=stored)
    classed = copy.deepcopy(stored)
    classed["spec"]["storageClassName"] = "local-path"
    stored = admitted(CLAIM, classed, old=stored)
    bound = copy.deepcopy(stored)
    bound["spec"]["volumeName"] = "pvc-1"
    stored = admitted(CLAIM, bound, old=stored)
    status = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    stored = admitted(CLAIM, status_write(stored, status), old=stored)
    assert stored["spec"]["volumeName"] == "pvc-1"
    assert stored["spec"]["volumeMode"] == "Filesystem"
    assert stored["status"] == status
    resized = copy.deepcopy(stored)
    resized["spec"]["resources"]["requests"]["storage"] = "2Gi"  # a bound claim may grow
    assert admitted(CLAIM, resized, old=stored)["spec"]["resources"]["requests"] == {
        "storage": "2Gi"
    }


def test_claim_stored_before_these_rules_can_still_be_bound() -> None:
    """Claims stored without the defaults (no volumeMode, no status) take binding writes."""
    old = {**claim(), "apiVersion": "v1", "kind": CLAIM}
    new = copy.deepcopy(old)
    new["spec"]["volumeName"] = "pvc-1"
    out = admitted(CLAIM, new, old=old)
    assert out["spec"]["volumeMode"] == "Filesystem"
    assert out["status"] == {"phase": "Pending"}


IMMUTABLE = (
    "Forbidden: spec is immutable after creation except resources.requests and "
    "volumeAttributesClassName for bound claims"
)


@pytest.mark.parametrize(
    ("old_spec", "change"),
    [
        ({}, {"accessModes": ["ReadWriteMany"]}),
        ({}, {"volumeMode": "Block"}),
        ({}, {"resources": {"requests": {"storage": "2Gi"}}}),  # not bound: no resize
        ({"storageClassName": "local-path"}, {"storageClassName": "fast"}),
        ({"storageClassName": ""}, {"storageClassName": "local-path"}),
        ({"volumeName": "pv-a"}, {"volumeName": "pv-b"}),
    ],
    ids=["accessModes", "volumeMode", "resize-unbound", "class", "empty-class", "volumeName"],
)
def test_claim_spec_is_immutable(old_spec: Obj, change: Obj) -> None:
    stored = admitted(CLAIM, claim(**old_spec))
    new = copy.deepcopy(stored)
    new["spec"].update(change)
    assert causes(CLAIM, new, old=stored) == [("spec", "FieldValueForbidden", IMMUTABLE)]


def test_claim_storage_may_not_shrink() -> None:
    stored = admitted(CLAIM, claim(resources={"requests": {"storage": "2Gi"}}))
    stored = admitted(CLAIM, status_write(stored, {"phase": "Bound"}), old=stored)
    smaller = copy.deepcopy(stored)
    smaller["spec"]["resources"]["requests"]["storage"] = "1Gi"
    assert causes(CLAIM, smaller, old=stored) == [
        (
            "spec.resources.requests.storage",
            "FieldValueForbidden",
            "Forbidden: field can not be less than previous value",
        )
    ]


def test_volume_source_is_immutable_and_node_affinity_once_set() -> None:
    affinity = {"required": {"nodeSelectorTerms": [HOST_TERM]}}
    stored = admitted(VOLUME, volume())
    pinned = admitted(VOLUME, volume(nodeAffinity=affinity), old=stored)  # set once: allowed
    moved = copy.deepcopy(pinned)
    moved["spec"]["hostPath"]["path"] = "/elsewhere"
    assert causes(VOLUME, moved, old=pinned) == [
        (
            "spec.persistentvolumesource",
            "FieldValueForbidden",
            "Forbidden: spec.persistentvolumesource is forbidden to be changed",
        )
    ]
    other = copy.deepcopy(pinned)
    other["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0][
        "values"
    ] = ["n2"]
    [(field, reason, message)] = causes(VOLUME, other, old=pinned)
    assert (field, reason) == ("spec.nodeAffinity", "FieldValueInvalid")
    assert message.endswith("field is immutable")
    released = admitted(VOLUME, status_write(pinned, {"phase": "Released"}), old=pinned)
    assert released["status"] == {"phase": "Released"}


class AdmittingClient(FakeClient):
    """A fake client whose creates and writes are admitted as the API server admits them."""

    def _admit(self, rt: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        out = admitted(rt.kind, obj, old) if rt.api_version == "v1" else obj
        m = out["metadata"]
        self.objects[(rt.plural, m.get("namespace") or "", m["name"])] = out
        return copy.deepcopy(out)

    async def create(
        self, rt: ResourceType, obj: Obj, namespace: str | None = None, **kw: Any
    ) -> Obj:
        return self._admit(rt, await super().create(rt, obj, namespace, **kw), None)

    def _write(self, rt: ResourceType, current: Obj, new: Obj, sub: str | None) -> Obj:
        old = copy.deepcopy(current)
        return self._admit(rt, super()._write(rt, current, new, sub), old)


async def test_local_path_provisioning_passes_admission(tmp_path: Path) -> None:
    seed = claim()
    seed["metadata"]["uid"] = "c-1"
    client = AdmittingClient((PVCS, admitted(CLAIM, seed)))
    assert client.stored(PVCS, "shop", "db")["status"] == {"phase": "Pending"}
    ctl = LocalPathProvisioner(
        client, claims=store_of(), volumes=store_of(), base_dir=str(tmp_path)
    )
    for _ in range(4):
        ctl.claims, ctl.volumes = store_of(*client.all(PVCS)), store_of(*client.all(PVS))
        await ctl.reconcile("shop/db")
    pvc = client.stored(PVCS, "shop", "db")
    assert pvc["spec"]["storageClassName"] == "local-path"
    assert pvc["spec"]["volumeName"] == "pvc-c-1"
    assert pvc["status"]["phase"] == "Bound"
    pv = client.stored(PVS, None, "pvc-c-1")
    assert pv["spec"]["hostPath"]["type"] == "DirectoryOrCreate"
    assert pv["status"] == {"phase": "Bound"}


async def test_static_binding_passes_admission() -> None:
    """What the PersistentVolume binder writes: claimRef, phases, volumeName and annotations,
    claim status Bound and Lost, volume Released and Available again."""
    first = claim(storageClassName="")
    first["metadata"]["uid"] = "c-1"
    client = AdmittingClient((PVCS, admitted(CLAIM, first)), (PVS, admitted(VOLUME, volume())))
    ctl = VolumeBinder(
        client, claims=store_of(), volumes=store_of(), classes=store_of(), nodes=store_of()
    )

    async def settle(*keys: str) -> None:
        for _ in range(4):
            ctl.claims, ctl.volumes = store_of(*client.all(PVCS)), store_of(*client.all(PVS))
            for key in keys:
                await ctl.reconcile(key)

    await settle("pv1", "shop/db")
    assert client.stored(PVCS, "shop", "db")["status"]["phase"] == "Bound"
    assert client.stored(PVS, None, "pv1")["status"] == {"phase": "Bound"}
    await client.delete(PVCS, "db", "shop")
    await settle("pv1")
    assert client.stored(PVS, None, "pv1")["status"] == {"phase": "Released"}
    await client.patch(PVS, "pv1", {"spec": {"claimRef": None}})
    second = claim(storageClassName="")
    second["metadata"].update(name="db2", uid="c-2")
    await client.create(PVCS, second)
    await settle("pv1", "shop/db2")
    assert client.stored(PVCS, "shop", "db2")["spec"]["volumeName"] == "pv1"
    await client.delete(PVS, "pv1")
    await settle("shop/db2")
    assert client.stored(PVCS, "shop", "db2")["status"]["phase"] == "Lost"


# --- unknown fields, OpenAPI -------------------------------------------------------------------


def test_every_kubernetes_field_is_declared() -> None:
    nfs = without(
        volume(nfs={"server": "nas", "path": "/export", "readOnly": True}), "spec", "hostPath"
    )
    nfs["spec"].update(
        claimRef={
            "kind": CLAIM,
            "namespace": "shop",
            "name": "db",
            "uid": "u",
            "resourceVersion": "1",
        },
        mountOptions=["hard"],
        volumeAttributesClassName="gold",
    )
    nfs["status"] = {
        "phase": "Failed",
        "message": "m",
        "reason": "r",
        "lastPhaseTransitionTime": "2025-01-01T00:00:00Z",
    }
    admitted(VOLUME, nfs)
    source = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"}
    populated = claim(
        dataSource=source,
        dataSourceRef={**source, "namespace": "shop"},
        selector={"matchLabels": {"tier": "db"}},
        volumeAttributesClassName="gold",
    )
    populated["status"] = {
        "phase": "Bound",
        "conditions": [
            {"type": "Resizing", "status": "True", "lastProbeTime": "2025-01-01T00:00:00Z"}
        ],
        "allocatedResources": {"storage": "2Gi"},
        "allocatedResourceStatuses": {"storage": "ControllerResizeInProgress"},
        "currentVolumeAttributesClassName": "gold",
        "modifyVolumeStatus": {"targetVolumeAttributesClassName": "gold", "status": "Pending"},
    }
    admitted(CLAIM, populated)
    typo = copy.deepcopy(nfs)
    typo["spec"]["nfs"]["sever"] = "nas"
    assert admit(typo, api_version="v1", kind=VOLUME)[1] == ["spec.nfs.sever"]


def test_openapi_describes_both_kinds() -> None:
    components = openapi_components()
    for kind in (CLAIM, VOLUME):
        assert components[f"io.k8s.api.core.v1.{kind}"]["x-kubernetes-group-version-kind"] == [
            {"group": "", "version": "v1", "kind": kind}
        ]
    spec = components["io.k8s.api.core.v1.PersistentVolumeSpec"]["properties"]
    assert spec["nfs"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.NFSVolumeSource"}
    assert spec["scaleIO"]["x-kubernetes-preserve-unknown-fields"] is True
