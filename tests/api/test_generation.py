"""``metadata.generation`` exists only where Kubernetes keeps it (pods, workloads, custom
resources, ...) and moves only when the desired state changes; ConfigMaps, Secrets, Services
and Namespaces have none."""

from __future__ import annotations

import pytest

MERGE = {"Content-Type": "application/merge-patch+json"}


WITHOUT = [
    ("configmaps", {"data": {"a": "1"}}, {"data": {"a": "2"}}),
    ("secrets", {"stringData": {"a": "1"}}, {"data": {"a": "Mg=="}}),
    ("services", {"spec": {"ports": [{"port": 80}]}}, {"spec": {"ports": [{"port": 81}]}}),
]


@pytest.mark.parametrize(("plural", "body", "change"), WITHOUT, ids=[w[0] for w in WITHOUT])
def test_kinds_without_generation(http, ns, plural, body, change):
    path = f"/api/v1/namespaces/{ns}/{plural}"
    # a generation the client sends is not kept either
    created = http.post(path, json={"metadata": {"name": "x", "generation": 7}, **body})
    assert created.status_code == 201, created.text
    assert "generation" not in created.json()["metadata"]
    updated = http.patch(f"{path}/x", json=change, headers=MERGE)
    assert updated.status_code == 200, updated.text
    assert "generation" not in updated.json()["metadata"]
    assert "generation" not in http.get(f"/api/v1/namespaces/{ns}").json()["metadata"]


def test_pod_generation_follows_its_spec(http, ns):
    path = f"/api/v1/namespaces/{ns}/pods"
    pod = {
        "metadata": {"name": "p", "generation": 9},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    assert http.post(path, json=pod).json()["metadata"]["generation"] == 1
    labelled = http.patch(f"{path}/p", json={"metadata": {"labels": {"a": "b"}}}, headers=MERGE)
    assert labelled.json()["metadata"]["generation"] == 1
    status = http.patch(
        f"{path}/p/status", json={"status": {"phase": "Running"}}, headers=MERGE
    ).json()
    assert status["metadata"]["generation"] == 1
    spec = http.patch(f"{path}/p", json={"spec": {"activeDeadlineSeconds": 60}}, headers=MERGE)
    assert spec.status_code == 200, spec.text
    assert spec.json()["metadata"]["generation"] == 2
