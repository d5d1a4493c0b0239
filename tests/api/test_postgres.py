"""The same API server on PostgreSQL storage (skipped when no server is configured)."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from tests.conftest import start_apiserver
from tests.unit.test_storage import _pg_schema_url

pytestmark = pytest.mark.skipif(
    not os.environ.get("TUGBOAT_TEST_POSTGRES"),
    reason="no PostgreSQL configured (set TUGBOAT_TEST_POSTGRES)",
)


def test_api_server_on_postgresql_keeps_objects_across_restart(tmp_path):
    url = _pg_schema_url()
    server = start_apiserver(tmp_path, storage=url)
    try:
        base = f"{server.url}/api/v1/namespaces/default/configmaps"
        r = httpx.post(base, json={"metadata": {"name": "pg"}, "data": {"a": "1"}})
        assert r.status_code == 201
        obj = r.json()
        obj["data"]["a"] = "2"
        assert httpx.put(f"{base}/pg", json=obj).status_code == 200
        assert httpx.put(f"{base}/pg", json=obj).status_code == 409
    finally:
        server.stop()
    server = start_apiserver(tmp_path, port=server.port, storage=url)
    try:
        got = httpx.get(f"{server.url}/api/v1/namespaces/default/configmaps/pg").json()
        assert got["data"] == {"a": "2"}
    finally:
        server.stop()


def test_two_api_servers_share_one_store(tmp_path):
    """A write through either server is seen by the other's reads and watches, in order,
    with no gaps or duplicates; CRDs created on one are served by both."""
    import threading

    import orjson

    url = _pg_schema_url()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_apiserver(tmp_path / "a", storage=url)
    b = start_apiserver(tmp_path / "b", storage=url)
    try:
        path = "/api/v1/namespaces/default/configmaps"
        rv = httpx.get(f"{b.url}{path}").json()["metadata"]["resourceVersion"]
        events: list[dict] = []

        def watch() -> None:
            with httpx.stream(
                "GET", f"{b.url}{path}", params={"watch": "1", "resourceVersion": rv}, timeout=30
            ) as r:
                for line in r.iter_lines():
                    if line:
                        events.append(orjson.loads(line))
                    if len(events) == 20:
                        return

        t = threading.Thread(target=watch)
        t.start()
        for i in range(20):
            server = a if i % 2 == 0 else b
            r = httpx.post(f"{server.url}{path}", json={"metadata": {"name": f"m{i}"}})
            assert r.status_code == 201
        t.join(30)
        names = [e["object"]["metadata"]["name"] for e in events]
        assert names == [f"m{i}" for i in range(20)]
        revs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
        assert revs == sorted(set(revs))
        # read-your-writes across servers once acknowledged
        created = httpx.post(f"{a.url}{path}", json={"metadata": {"name": "fresh"}}).json()
        obj = httpx.get(f"{a.url}{path}/fresh").json()
        assert obj["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        deadline = time.monotonic() + 5
        while httpx.get(f"{b.url}{path}/fresh").status_code != 200:
            assert time.monotonic() < deadline
        # a conflict is detected across servers
        obj["data"] = {"x": "1"}
        assert httpx.put(f"{b.url}{path}/fresh", json=obj).status_code == 200
        assert httpx.put(f"{a.url}{path}/fresh", json=obj).status_code == 409
        # a CRD created through one server is served by the other
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.pg.example.com"},
            "spec": {
                "group": "pg.example.com",
                "scope": "Namespaced",
                "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                ],
            },
        }
        assert (
            httpx.post(
                f"{a.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd
            ).status_code
            == 201
        )
        things = "/apis/pg.example.com/v1/namespaces/default/things"
        deadline = time.monotonic() + 5
        while httpx.get(f"{b.url}{things}").status_code != 200:
            assert time.monotonic() < deadline
        r = httpx.post(
            f"{b.url}{things}",
            json={"apiVersion": "pg.example.com/v1", "kind": "Thing", "metadata": {"name": "t"}},
        )
        assert r.status_code == 201
    finally:
        a.stop()
        b.stop()
