"""Discovery, OpenAPI, version, health, tables, CRDs."""

from __future__ import annotations

import time
import uuid

import pytest


def test_version_with_and_without_slash(http):
    for path in ("/version", "/version/"):
        v = http.get(path).json()
        assert v["major"] == "1" and v["gitVersion"].startswith("v1.33")


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
def test_health(http, path):
    assert http.get(path).status_code == 200


def test_metrics_is_prometheus_text(http):
    http.get("/api/v1/namespaces")
    r = http.get("/metrics")
    assert "apiserver_request_total" in r.text


def test_legacy_discovery(http):
    assert http.get("/api").json()["versions"] == ["v1"]
    groups = {g["name"]: g for g in http.get("/apis").json()["groups"]}
    assert {"apps", "autoscaling", "coordination.k8s.io", "apiextensions.k8s.io"} <= set(groups)
    assert groups["autoscaling"]["preferredVersion"]["version"] == "v2"
    core = {r["name"]: r for r in http.get("/api/v1").json()["resources"]}
    assert core["pods"]["singularName"] == "pod" and core["pods"]["namespaced"] is True
    assert "pods/status" in core and core["pods/eviction"]["group"] == "policy"
    apps = {r["name"]: r for r in http.get("/apis/apps/v1").json()["resources"]}
    assert apps["deployments/scale"]["kind"] == "Scale"
    assert "all" in apps["deployments"]["categories"]
    for g in groups.values():
        for v in g["versions"]:
            assert http.get(f"/apis/{v['groupVersion']}").status_code == 200


def test_aggregated_discovery(http):
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    r = http.get("/apis", headers={"Accept": accept})
    assert r.headers["content-type"] == accept
    body = r.json()
    assert body["kind"] == "APIGroupDiscoveryList"
    apps = next(i for i in body["items"] if i["metadata"]["name"] == "apps")
    res = {x["resource"] for x in apps["versions"][0]["resources"]}
    assert "deployments" in res
    core = http.get("/api", headers={"Accept": accept}).json()
    assert core["items"][0]["metadata"]["name"] == ""


def test_openapi_v3_index_and_documents(http):
    index = http.get("/openapi/v3").json()["paths"]
    assert "api/v1" in index and "apis/apps/v1" in index
    doc = http.get(index["apis/apps/v1"]["serverRelativeURL"]).json()
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])
    assert "io.k8s.api.apps.v1.Deployment" in doc["components"]["schemas"]
    assert http.get("/openapi/v2").status_code == 404


def test_table_output(http):
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    t = http.get("/api/v1/namespaces", headers={"Accept": accept}).json()
    assert t["kind"] == "Table"
    names = [c["name"] for c in t["columnDefinitions"]]
    assert names[:3] == ["Name", "Status", "Age"]
    assert any(row["cells"][0] == "default" for row in t["rows"])


def test_custom_resource_definition_serves_resources(http):
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "shortNames": ["wd"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                },
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    r = http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
    assert r.status_code == 201, r.text
    conds = {c["type"]: c["status"] for c in r.json()["status"]["conditions"]}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    path = f"/apis/{group}/v1/namespaces/default/widgets"
    w = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3, "junk": 1},
    }
    r = http.post(path, json=w)
    assert r.status_code == 201, r.text
    assert r.json()["spec"] == {"size": 3}  # unknown fields are pruned
    bad = http.post(path, json=w | {"metadata": {"name": "w2"}, "spec": {"size": 0}})
    assert bad.status_code == 422 and bad.json()["details"]["causes"][0]["field"] == "spec.size"
    r = http.patch(
        f"{path}/w1/status",
        json={"status": {"ok": True}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.json()["status"] == {"ok": True}
    smp = http.patch(
        f"{path}/w1",
        json={"spec": {"size": 4}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert smp.status_code == 415
    res = {x["name"] for x in http.get(f"/apis/{group}/v1").json()["resources"]}
    assert res == {"widgets", "widgets/status"}
    http.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}")
    deadline = time.monotonic() + 5
    while http.get(path).status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http.get(path).status_code == 404
