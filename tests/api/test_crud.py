"""API semantics over real HTTP: create, read, update, generation, conflicts, selectors, paging."""

from __future__ import annotations

import concurrent.futures as cf

import httpx


def ns_obj(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def cm(name: str, labels: dict | None = None, data: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data or {"k": "v"},
    }


def deployment(name: str, replicas: int = 1, image: str = "busybox:1.35") -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


def test_system_namespaces_and_kubernetes_service_exist(http):
    names = {i["metadata"]["name"] for i in http.get("/api/v1/namespaces").json()["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    svc = http.get("/api/v1/namespaces/default/services/kubernetes").json()
    assert svc["spec"]["clusterIP"] == "10.96.0.1"


def test_create_sets_server_fields_and_get_returns_it(http, ns):
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("a"))
    assert r.status_code == 201
    obj = r.json()
    m = obj["metadata"]
    assert m["namespace"] == ns and m["uid"] and m["creationTimestamp"].endswith("Z")
    assert int(m["resourceVersion"]) > 0
    got = http.get(f"/api/v1/namespaces/{ns}/configmaps/a").json()
    assert got == obj


def test_resource_versions_strictly_increase_across_resources(http, ns):
    revs = []
    for i in range(5):
        r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(f"rv{i}"))
        revs.append(int(r.json()["metadata"]["resourceVersion"]))
        r = http.post(
            f"/api/v1/namespaces/{ns}/secrets",
            json={"metadata": {"name": f"s{i}"}, "stringData": {"a": "b"}},
        )
        revs.append(int(r.json()["metadata"]["resourceVersion"]))
    assert revs == sorted(revs) and len(set(revs)) == len(revs)


def test_create_existing_name_is_already_exists(http, ns):
    http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("dup"))
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("dup", data={"x": "y"}))
    assert r.status_code == 409
    body = r.json()
    assert body["kind"] == "Status" and body["reason"] == "AlreadyExists"
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/dup").json()["data"] == {"k": "v"}


def test_stale_update_conflicts_and_changes_nothing(http, ns):
    obj = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("c")).json()
    obj["data"] = {"k": "first"}
    assert http.put(f"/api/v1/namespaces/{ns}/configmaps/c", json=obj).status_code == 200
    obj["data"] = {"k": "second"}  # still carries the old resourceVersion
    r = http.put(f"/api/v1/namespaces/{ns}/configmaps/c", json=obj)
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/c").json()["data"] == {"k": "first"}


def test_generation_bumps_only_on_spec_change(http, ns):
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    d = http.post(path, json=deployment("g")).json()
    assert d["metadata"]["generation"] == 1
    merge = {"Content-Type": "application/merge-patch+json"}
    d = http.patch(f"{path}/g", json={"metadata": {"labels": {"x": "y"}}}, headers=merge).json()
    assert d["metadata"]["generation"] == 1
    d = http.patch(f"{path}/g", json={"spec": {"replicas": 3}}, headers=merge).json()
    assert d["metadata"]["generation"] == 2
    d = http.patch(f"{path}/g/status", json={"status": {"replicas": 3}}, headers=merge).json()
    assert d["metadata"]["generation"] == 2 and d["status"]["replicas"] == 3


def test_status_subresource_separates_spec_and_status(http, ns):
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    d = http.post(path, json=deployment("st") | {"status": {"replicas": 9}}).json()
    assert "replicas" not in (d.get("status") or {})
    merge = {"Content-Type": "application/merge-patch+json"}
    d = http.patch(
        f"{path}/st/status",
        json={"spec": {"replicas": 5}, "status": {"replicas": 2}},
        headers=merge,
    ).json()
    assert d["spec"]["replicas"] == 1 and d["status"]["replicas"] == 2
    d = http.patch(f"{path}/st", json={"status": {"replicas": 7}}, headers=merge).json()
    assert d["status"]["replicas"] == 2


def test_noop_update_keeps_resource_version(http, ns):
    obj = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("noop")).json()
    again = http.put(f"/api/v1/namespaces/{ns}/configmaps/noop", json=obj).json()
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_generate_name(http, ns):
    body = {"metadata": {"generateName": "gen-"}, "data": {}}
    names = {
        http.post(f"/api/v1/namespaces/{ns}/configmaps", json=body).json()["metadata"]["name"]
        for _ in range(3)
    }
    assert len(names) == 3 and all(n.startswith("gen-") and len(n) == 9 for n in names)


def test_label_selectors(http, ns):
    for name, labels in {
        "a": {"app": "web", "tier": "fe"},
        "b": {"app": "web"},
        "c": {"app": "db"},
        "d": {},
    }.items():
        http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name, labels))

    def names(selector: str) -> set[str]:
        r = http.get(f"/api/v1/namespaces/{ns}/configmaps", params={"labelSelector": selector})
        assert r.status_code == 200, r.text
        return {i["metadata"]["name"] for i in r.json()["items"]}

    assert names("app=web") == {"a", "b"}
    assert names("app==web,tier=fe") == {"a"}
    assert names("app!=web") == {"c", "d"}
    assert names("app in (web,db)") == {"a", "b", "c"}
    assert names("app notin (web)") == {"c", "d"}
    assert names("tier") == {"a"}
    assert names("!app") == {"d"}
    bad = http.get(f"/api/v1/namespaces/{ns}/configmaps", params={"labelSelector": "a in (("})
    assert bad.status_code == 400


def test_field_selectors(http, ns):
    for name in ("x", "y"):
        http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(name))
    r = http.get(
        "/api/v1/configmaps", params={"fieldSelector": f"metadata.namespace={ns},metadata.name!=x"}
    )
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["y"]


def test_limit_and_continue_page_through_everything(http, ns):
    for i in range(7):
        http.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(f"p{i}"))
    seen, token, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"continue": token} if token else {})
        body = http.get(f"/api/v1/namespaces/{ns}/configmaps", params=params).json()
        seen += [i["metadata"]["name"] for i in body["items"]]
        pages += 1
        token = body["metadata"].get("continue")
        if not token:
            break
    assert seen == [f"p{i}" for i in range(7)] and pages == 3
    bad = http.get(f"/api/v1/namespaces/{ns}/configmaps", params={"continue": "!!"})
    assert bad.status_code == 400


def test_concurrent_read_modify_write_loses_no_update(api, ns):
    url = f"{api.url}/api/v1/namespaces/{ns}/configmaps"
    httpx.post(url, json=cm("counter", data={"n": "0"}))

    def bump(_: int) -> int:
        conflicts = 0
        with httpx.Client(timeout=10) as c:
            for _ in range(10):
                while True:
                    obj = c.get(f"{url}/counter").json()
                    obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
                    r = c.put(f"{url}/counter", json=obj)
                    if r.status_code == 200:
                        break
                    assert r.status_code == 409
                    conflicts += 1
        return conflicts

    with cf.ThreadPoolExecutor(8) as pool:
        conflicts = sum(pool.map(bump, range(8)))
    assert httpx.get(f"{url}/counter").json()["data"]["n"] == "80"
    assert conflicts >= 0


def test_dry_run_stores_nothing(http, ns):
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", params={"dryRun": "All"}, json=cm("dry"))
    assert r.status_code == 201 and r.json()["metadata"]["name"] == "dry"
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/dry").status_code == 404


def test_field_validation_modes(http, ns):
    body = cm("fv") | {"bogus": 1}
    r = http.post(
        f"/api/v1/namespaces/{ns}/configmaps", params={"fieldValidation": "Strict"}, json=body
    )
    assert r.status_code == 400 and 'unknown field "bogus"' in r.json()["message"]
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/fv").status_code == 404
    r = http.post(
        f"/api/v1/namespaces/{ns}/configmaps", params={"fieldValidation": "Warn"}, json=body
    )
    assert r.status_code == 201 and "bogus" in r.headers.get("warning", "")


def test_scale_subresource(http, ns):
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    http.post(path, json=deployment("sc", replicas=2))
    s = http.get(f"{path}/sc/scale").json()
    assert s["kind"] == "Scale" and s["spec"]["replicas"] == 2
    r = http.patch(
        f"{path}/sc/scale",
        json={"spec": {"replicas": 4}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200 and r.json()["spec"]["replicas"] == 4
    assert http.get(f"{path}/sc").json()["spec"]["replicas"] == 4
    r = http.patch(
        f"{path}/sc/scale",
        json={"spec": {"replicas": -1}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 422


def test_restart_keeps_every_object(tmp_path):
    from tests.conftest import start_apiserver

    server = start_apiserver(tmp_path)
    try:
        httpx.post(f"{server.url}/api/v1/namespaces/default/configmaps", json=cm("keep"))
        before = httpx.get(f"{server.url}/api/v1/namespaces/default/configmaps/keep").json()
    finally:
        server.stop()
    server = start_apiserver(tmp_path, port=server.port)
    try:
        after = httpx.get(f"{server.url}/api/v1/namespaces/default/configmaps/keep").json()
        assert after == before
        created = httpx.post(
            f"{server.url}/api/v1/namespaces/default/configmaps", json=cm("next")
        ).json()
        assert int(created["metadata"]["resourceVersion"]) > int(
            before["metadata"]["resourceVersion"]
        )
    finally:
        server.stop()
