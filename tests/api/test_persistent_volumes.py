"""PersistentVolumeClaims and PersistentVolumes over HTTP: typed admission (422 Invalid naming
the fields), defaults, and the writes binding makes through the status subresource."""

from __future__ import annotations

import uuid

import httpx

MERGE = {"Content-Type": "application/merge-patch+json"}
STRICT = {"fieldValidation": "Strict"}


def invalid_fields(r: httpx.Response) -> list[tuple[str, str]]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Invalid", 422)
    return [(c["field"], c["reason"]) for c in body["details"]["causes"]]


def test_claim_is_defaulted_validated_and_bound(http, ns):
    claims = f"/api/v1/namespaces/{ns}/persistentvolumeclaims"
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    bad = {"metadata": {"name": "bad"}, "spec": {**spec, "accessModes": []}}
    assert invalid_fields(http.post(claims, json=bad)) == [
        ("spec.accessModes", "FieldValueRequired")
    ]
    r = http.post(claims, json={"metadata": {"name": "db"}, "spec": spec}, params=STRICT)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == {"phase": "Pending"}
    assert r.json()["spec"]["volumeMode"] == "Filesystem"

    # What the local-path provisioner writes: the default class, the volume, status Bound.
    r = http.patch(
        f"{claims}/db",
        json={"spec": {"storageClassName": "local-path", "volumeName": "pvc-1"}},
        headers=MERGE,
    )
    assert r.status_code == 200, r.text
    status = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    r = http.patch(f"{claims}/db/status", json={"status": status}, headers=MERGE)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == status

    r = http.patch(f"{claims}/db", json={"spec": {"accessModes": ["ReadWriteMany"]}}, headers=MERGE)
    assert invalid_fields(r) == [("spec", "FieldValueForbidden")]
    r = http.patch(
        f"{claims}/db",
        json={"spec": {"resources": {"requests": {"storage": "500Mi"}}}},
        headers=MERGE,
    )
    assert invalid_fields(r) == [("spec.resources.requests.storage", "FieldValueForbidden")]


def test_claims_and_volumes_are_protected_by_finalizers(http, ns):
    """Kubernetes' StorageObjectInUseProtection: the finalizer is added on create, so a delete
    only marks the object until the storage-object-protection controller lets it go (none
    runs here)."""
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    claims = f"/api/v1/namespaces/{ns}/persistentvolumeclaims"
    r = http.post(claims, json={"metadata": {"name": "db"}, "spec": spec})
    assert r.json()["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    name = f"pv-{uuid.uuid4().hex[:8]}"
    source = {"hostPath": {"path": "/data"}, "capacity": {"storage": "1Gi"}}
    volume = {"metadata": {"name": name}, "spec": {**source, "accessModes": ["ReadWriteOnce"]}}
    r = http.post("/api/v1/persistentvolumes", json=volume)
    assert r.json()["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]

    for path in (f"{claims}/db", f"/api/v1/persistentvolumes/{name}"):
        assert http.delete(path).status_code in (200, 202)
        kept = http.get(path).json()
        assert kept["metadata"]["deletionTimestamp"]
        r = http.patch(path, json={"metadata": {"finalizers": None}}, headers=MERGE)
        assert r.status_code == 200, r.text
        assert http.get(path).status_code == 404


def test_volume_needs_exactly_one_source(http):
    name = f"pv-{uuid.uuid4().hex[:8]}"
    spec = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteMany"],
        "nfs": {"server": "nas.example.com", "path": "/export", "readOnly": False},
    }
    two = {"metadata": {"name": name}, "spec": {**spec, "hostPath": {"path": "/data"}}}
    assert invalid_fields(http.post("/api/v1/persistentvolumes", json=two)) == [
        ("spec.nfs", "FieldValueForbidden")
    ]
    r = http.post(
        "/api/v1/persistentvolumes", json={"metadata": {"name": name}, "spec": spec}, params=STRICT
    )
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert r.json()["status"] == {"phase": "Pending"}
    assert http.delete(f"/api/v1/persistentvolumes/{name}").status_code in (200, 202)
    r = http.patch(
        f"/api/v1/persistentvolumes/{name}", json={"metadata": {"finalizers": None}}, headers=MERGE
    )
    assert r.status_code == 200, r.text
