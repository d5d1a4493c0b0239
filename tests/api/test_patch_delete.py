"""Patches (merge, JSON, strategic, apply) and deletion (finalizers, graceful pods, policies)."""

from __future__ import annotations

import pytest

MERGE = {"Content-Type": "application/merge-patch+json"}
JSONP = {"Content-Type": "application/json-patch+json"}
SMP = {"Content-Type": "application/strategic-merge-patch+json"}


def pod(name: str, node: str | None = None, **spec) -> dict:
    s = {
        "containers": [
            {
                "name": "app",
                "image": "busybox:1.35",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            }
        ]
    }
    if node:
        s["nodeName"] = node
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": s}


def test_merge_patch(http, ns):
    http.post(
        f"/api/v1/namespaces/{ns}/configmaps",
        json={"metadata": {"name": "m", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}},
    )
    r = http.patch(
        f"/api/v1/namespaces/{ns}/configmaps/m",
        json={"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"y": "2"}},
        headers=MERGE,
    )
    assert r.status_code == 200
    obj = r.json()
    assert obj["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert obj["data"] == {"x": "1", "y": "2"}


def test_json_patch_and_failed_test_is_422(http, ns):
    obj = http.post(
        f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "j"}, "data": {"x": "1"}}
    ).json()
    rv = obj["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/f"]},
    ]
    r = http.patch(f"/api/v1/namespaces/{ns}/configmaps/j", json=ops, headers=JSONP)
    assert r.status_code == 200 and r.json()["metadata"]["finalizers"] == ["example.com/f"]
    r = http.patch(f"/api/v1/namespaces/{ns}/configmaps/j", json=ops, headers=JSONP)
    assert r.status_code == 422 and r.json()["reason"] == "Invalid"
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/j").json()["metadata"]["finalizers"] == [
        "example.com/f"
    ]


def test_strategic_merge_patch_merges_containers_by_name(http, ns):
    template = {"metadata": {"labels": {"app": "s"}}, "spec": pod("s")["spec"]}
    deploy = {
        "metadata": {"name": "s"},
        "spec": {"selector": {"matchLabels": {"app": "s"}}, "template": template},
    }
    assert http.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json=deploy).status_code == 201
    container = {"name": "app", "image": "busybox:1.36", "env": [{"name": "B", "value": "20"}]}
    patch = {"spec": {"template": {"spec": {"containers": [container]}}}}
    r = http.patch(f"/apis/apps/v1/namespaces/{ns}/deployments/s", json=patch, headers=SMP)
    assert r.status_code == 200, r.text
    c = r.json()["spec"]["template"]["spec"]["containers"]
    assert len(c) == 1 and c[0]["image"] == "busybox:1.36"
    assert {e["name"]: e["value"] for e in c[0]["env"]} == {"A": "1", "B": "20"}


def test_finalizers_hold_deletion_until_removed(http, ns):
    body = {"metadata": {"name": "f", "finalizers": ["example.com/hold"]}}
    http.post(f"/api/v1/namespaces/{ns}/configmaps", json=body)
    r = http.delete(f"/api/v1/namespaces/{ns}/configmaps/f")
    assert r.status_code in (200, 202)
    obj = http.get(f"/api/v1/namespaces/{ns}/configmaps/f").json()
    assert obj["metadata"]["deletionTimestamp"]
    r = http.patch(
        f"/api/v1/namespaces/{ns}/configmaps/f",
        json={"metadata": {"finalizers": None}},
        headers=MERGE,
    )
    assert r.status_code == 200
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/f").status_code == 404


def test_deleting_object_cannot_gain_finalizers(http, ns):
    body = {"metadata": {"name": "g", "finalizers": ["a/b"]}}
    http.post(f"/api/v1/namespaces/{ns}/configmaps", json=body)
    http.delete(f"/api/v1/namespaces/{ns}/configmaps/g")
    r = http.patch(
        f"/api/v1/namespaces/{ns}/configmaps/g",
        json={"metadata": {"finalizers": ["a/b", "c/d"]}},
        headers=MERGE,
    )
    assert r.json()["metadata"]["finalizers"] == ["a/b"]


def test_unbound_pod_deletes_at_once_bound_pod_is_graceful(http, ns):
    http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("free"))
    r = http.delete(f"/api/v1/namespaces/{ns}/pods/free")
    assert r.status_code == 200 and r.json()["kind"] == "Pod"
    assert http.get(f"/api/v1/namespaces/{ns}/pods/free").status_code == 404
    http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("bound", node="n1"))
    r = http.delete(f"/api/v1/namespaces/{ns}/pods/bound")
    got = http.get(f"/api/v1/namespaces/{ns}/pods/bound").json()
    assert got["metadata"]["deletionTimestamp"]
    assert got["metadata"]["deletionGracePeriodSeconds"] == 30
    # the node agent confirms with grace 0
    r = http.request(
        "DELETE", f"/api/v1/namespaces/{ns}/pods/bound", json={"gracePeriodSeconds": 0}
    )
    assert r.status_code == 200
    assert http.get(f"/api/v1/namespaces/{ns}/pods/bound").status_code == 404


def test_propagation_policies_add_gc_finalizers(http, ns):
    for name, policy, fin in (
        ("fg", "Foreground", "foregroundDeletion"),
        ("or", "Orphan", "orphan"),
    ):
        http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": name}})
        r = http.request(
            "DELETE",
            f"/api/v1/namespaces/{ns}/configmaps/{name}",
            json={"propagationPolicy": policy},
        )
        assert r.status_code in (200, 202)
        obj = http.get(f"/api/v1/namespaces/{ns}/configmaps/{name}").json()
        assert fin in obj["metadata"]["finalizers"]
    http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "bg"}})
    r = http.request(
        "DELETE", f"/api/v1/namespaces/{ns}/configmaps/bg", json={"propagationPolicy": "Background"}
    )
    assert r.json()["status"] == "Success"
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/bg").status_code == 404


def test_delete_collection_with_selector(http, ns):
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        http.post(
            f"/api/v1/namespaces/{ns}/configmaps",
            json={"metadata": {"name": name, "labels": {"app": app}}},
        )
    r = http.delete(f"/api/v1/namespaces/{ns}/configmaps", params={"labelSelector": "app=x"})
    assert r.status_code == 200
    left = [
        i["metadata"]["name"]
        for i in http.get(f"/api/v1/namespaces/{ns}/configmaps").json()["items"]
    ]
    assert left == ["c"]


def test_binding_sets_node_once(http, ns):
    http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("b"))
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "b"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
    }
    assert http.post(f"/api/v1/namespaces/{ns}/pods/b/binding", json=binding).status_code == 201
    p = http.get(f"/api/v1/namespaces/{ns}/pods/b").json()
    assert p["spec"]["nodeName"] == "n1"
    assert any(
        c["type"] == "PodScheduled" and c["status"] == "True" for c in p["status"]["conditions"]
    )
    r = http.post(
        f"/api/v1/namespaces/{ns}/pods/b/binding",
        json=binding | {"target": {"kind": "Node", "name": "n2"}},
    )
    assert r.status_code == 409


def test_eviction_deletes_the_pod(http, ns):
    http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("ev"))
    r = http.post(
        f"/api/v1/namespaces/{ns}/pods/ev/eviction",
        json={
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "ev", "namespace": ns},
        },
    )
    assert r.status_code == 201
    assert http.get(f"/api/v1/namespaces/{ns}/pods/ev").status_code == 404


def test_server_side_apply_creates_then_updates(http, ns):
    doc = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '1'\n"
    headers = {"Content-Type": "application/apply-patch+yaml"}
    r = http.patch(
        f"/api/v1/namespaces/{ns}/configmaps/ssa",
        content=doc,
        headers=headers,
        params={"fieldManager": "test"},
    )
    assert r.status_code == 201 and r.json()["data"] == {"a": "1"}
    r = http.patch(
        f"/api/v1/namespaces/{ns}/configmaps/ssa",
        content=doc.replace(b"'1'", b"'2'"),
        headers=headers,
        params={"fieldManager": "test"},
    )
    assert r.status_code == 200 and r.json()["data"] == {"a": "2"}


def test_priority_admission_from_priority_class(http, ns):
    pc = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": f"high-{ns}"},
        "value": 1000,
    }
    assert http.post("/apis/scheduling.k8s.io/v1/priorityclasses", json=pc).status_code == 201
    p = pod("prio", priorityClassName=f"high-{ns}")
    r = http.post(f"/api/v1/namespaces/{ns}/pods", json=p)
    assert r.status_code == 201 and r.json()["spec"]["priority"] == 1000
    r = http.post(
        f"/api/v1/namespaces/{ns}/pods", json=pod("noclass", priorityClassName="does-not-exist")
    )
    assert r.status_code == 403 and r.json()["reason"] == "Forbidden"
    plain = http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("plain")).json()
    assert plain["spec"]["priority"] == 0


@pytest.mark.parametrize("where", ["query", "body"])
def test_dry_run_delete_keeps_the_object(http, ns, where):
    base = f"/api/v1/namespaces/{ns}/configmaps"
    assert http.post(base, json={"metadata": {"name": "keep"}}).status_code == 201
    if where == "query":
        r = http.delete(f"{base}/keep", params={"dryRun": "All"})
    else:
        r = http.request("DELETE", f"{base}/keep", json={"dryRun": ["All"]})
    assert r.status_code == 200
    assert http.get(f"{base}/keep").status_code == 200
    r = http.request("DELETE", base, json={"dryRun": ["All"]})  # deletecollection too
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["keep"]
    assert http.get(f"{base}/keep").status_code == 200
