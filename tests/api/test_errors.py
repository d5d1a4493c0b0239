"""Bad input gets a Status with the right reason and code, and changes nothing."""

from __future__ import annotations

import uuid

import httpx
import pytest


def _status(r: httpx.Response, code: int, reason: str) -> dict:
    assert r.status_code == code, r.text
    body = r.json()
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == reason and body["code"] == code
    return body


def _count(http, ns) -> int:
    return len(http.get(f"/api/v1/namespaces/{ns}/pods").json()["items"])


POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


@pytest.mark.parametrize(
    ("body", "ctype", "code", "reason"),
    [
        (b"{not json", "application/json", 400, "BadRequest"),
        (b"kind: [", "application/yaml", 400, "BadRequest"),
        (b"<xml/>", "application/xml", 415, "UnsupportedMediaType"),
        (b'{"metadata":{"name":"p"},"spec":{"containers":[]}}', "application/json", 422, "Invalid"),
        (
            b'{"kind":"Service","apiVersion":"v1","metadata":{"name":"p"}}',
            "application/json",
            400,
            "BadRequest",
        ),
    ],
    ids=["malformed-json", "malformed-yaml", "unsupported-type", "invalid", "wrong-kind"],
)
def test_bad_bodies_store_nothing(http, ns, body, ctype, code, reason):
    r = http.post(f"/api/v1/namespaces/{ns}/pods", content=body, headers={"Content-Type": ctype})
    _status(r, code, reason)
    assert _count(http, ns) == 0


def test_invalid_names_each_field(http, ns):
    pod = {
        "metadata": {"name": "Bad_Name"},
        "spec": {
            "containers": [
                {"name": "c", "image": "x", "ports": [{"containerPort": 70000}]},
                {"name": "c", "image": "y"},
            ]
        },
    }
    body = _status(http.post(f"/api/v1/namespaces/{ns}/pods", json=pod), 422, "Invalid")
    fields = {c["field"] for c in body["details"]["causes"]}
    assert "metadata.name" in fields
    assert "spec.containers[0].ports[0].containerPort" in fields
    assert "spec.containers[1].name" in fields
    assert _count(http, ns) == 0


def test_missing_content_type_means_json(http, ns):
    import orjson

    r = http.post(f"/api/v1/namespaces/{ns}/pods", content=orjson.dumps(POD))
    assert r.status_code == 201


def test_yaml_bodies_are_accepted(http, ns):
    body = b"metadata:\n  name: y\ndata:\n  a: b\n"
    r = http.post(
        f"/api/v1/namespaces/{ns}/configmaps",
        content=body,
        headers={"Content-Type": "application/yaml"},
    )
    assert r.status_code == 201 and r.json()["data"] == {"a": "b"}


def test_body_over_3mib_is_too_large(http, ns):
    big = {"metadata": {"name": "big"}, "data": {"x": "a" * (3 * 1024 * 1024 + 10)}}
    _status(
        http.post(f"/api/v1/namespaces/{ns}/configmaps", json=big), 413, "RequestEntityTooLarge"
    )
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/big").status_code == 404


def test_unknown_resource_and_object(http, ns):
    _status(http.get("/api/v1/namespaces/default/widgets"), 404, "NotFound")
    _status(http.get("/apis/nope.example.com/v1/things"), 404, "NotFound")
    body = _status(http.get(f"/api/v1/namespaces/{ns}/pods/missing"), 404, "NotFound")
    assert body["message"] == 'pods "missing" not found'


def test_wrong_method(http, ns):
    _status(http.put(f"/api/v1/namespaces/{ns}/pods", json={}), 405, "MethodNotAllowed")
    _status(http.post(f"/api/v1/namespaces/{ns}/pods/x", json={}), 405, "MethodNotAllowed")


def test_unknown_patch_type(http, ns):
    http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "u"}})
    r = http.patch(
        f"/api/v1/namespaces/{ns}/configmaps/u",
        content=b"{}",
        headers={"Content-Type": "text/plain"},
    )
    _status(r, 415, "UnsupportedMediaType")


def test_namespace_lifecycle(http):
    _status(
        http.post("/api/v1/namespaces/nowhere/configmaps", json={"metadata": {"name": "a"}}),
        404,
        "NotFound",
    )
    name = f"term-{uuid.uuid4().hex[:6]}"
    http.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    r = http.delete(f"/api/v1/namespaces/{name}")
    assert r.status_code == 200
    ns = http.get(f"/api/v1/namespaces/{name}").json()
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    _status(
        http.post(f"/api/v1/namespaces/{name}/configmaps", json={"metadata": {"name": "a"}}),
        403,
        "Forbidden",
    )
    # The namespace controller's last step: clearing spec.finalizers removes the namespace.
    ns["spec"]["finalizers"] = []
    assert http.put(f"/api/v1/namespaces/{name}/finalize", json=ns).status_code == 200
    assert http.get(f"/api/v1/namespaces/{name}").status_code == 404


def test_body_namespace_must_match_url(http, ns):
    body = {"metadata": {"name": "m", "namespace": "default"}}
    _status(http.post(f"/api/v1/namespaces/{ns}/configmaps", json=body), 400, "BadRequest")


def test_name_mismatch_on_update(http, ns):
    http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "n1"}})
    _status(
        http.put(f"/api/v1/namespaces/{ns}/configmaps/n1", json={"metadata": {"name": "n2"}}),
        400,
        "BadRequest",
    )
