"""The same API server on PostgreSQL storage (skipped when no server is configured)."""

from __future__ import annotations

import os

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
