"""The ``default/kubernetes`` Service's endpoints list every live API server's advertise address."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from apiserver.endpoints_reconciler import live_addresses
from tests.conftest import free_port, start_apiserver

ENDPOINTS = "/api/v1/namespaces/default/endpoints/kubernetes"
SLICE = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes"


def _lease(holder: str, renewed: datetime, seconds: int = 15) -> dict[str, Any]:
    stamp = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    spec = {"holderIdentity": holder, "renewTime": stamp, "leaseDurationSeconds": seconds}
    return {"spec": spec}


def test_live_addresses_leave_out_expired_leases_and_other_ports() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    leases = [
        _lease("10.0.0.2:6443", now - timedelta(seconds=5)),
        _lease("10.0.0.1:6443", now),
        _lease("10.0.0.1:6443", now),  # the same server twice: listed once
        _lease("10.0.0.3:6443", now - timedelta(seconds=16)),  # expired
        _lease("10.0.0.4:7443", now),  # another port
        {"spec": {"holderIdentity": "10.0.0.5:6443"}},  # never renewed
    ]
    assert live_addresses(leases, 6443, now) == ["10.0.0.1", "10.0.0.2"]


def _until(get: Callable[[], Any], want: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = get()
        if got == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"never became {want!r}; last {got!r}")


def _endpoint_ips(url: str) -> list[str]:
    obj = httpx.get(url + ENDPOINTS).json()
    return [a["ip"] for s in obj.get("subsets") or [] for a in s.get("addresses") or []]


def _slice(url: str) -> tuple[list[str], list[int]]:
    obj = httpx.get(url + SLICE).json()
    ips = [a for e in obj.get("endpoints") or [] for a in e["addresses"]]
    return ips, [p["port"] for p in obj.get("ports") or []]


def test_advertised_server_is_the_kubernetes_endpoint(tmp_path: Path) -> None:
    port = free_port()
    server = start_apiserver(tmp_path, port=port, extra=["--advertise-address", "127.0.0.2"])
    try:
        _until(lambda: _endpoint_ips(server.url), ["127.0.0.2"])
        assert _slice(server.url) == (["127.0.0.2"], [port])
        ports = httpx.get(server.url + ENDPOINTS).json()["subsets"][0]["ports"]
        assert ports == [{"name": "https", "port": port, "protocol": "TCP"}]
        # the server listens on the advertised address too, so the endpoint answers
        assert httpx.get(f"http://127.0.0.2:{port}/version").json()["major"] == "1"
        svc = httpx.get(server.url + "/api/v1/namespaces/default/services/kubernetes").json()
        assert svc["spec"]["clusterIP"] == "10.96.0.1"
        assert svc["spec"]["ports"][0]["name"] == "https"
    finally:
        server.stop()
    # a clean stop gave the lease up and removed the address
    server = start_apiserver(tmp_path, port=port)
    try:
        assert _endpoint_ips(server.url) == []
        leases = httpx.get(
            server.url + "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
        ).json()["items"]
        assert [x for x in leases if x["metadata"]["name"].startswith("apiserver-")] == []
    finally:
        server.stop()


@pytest.mark.skipif(
    not os.environ.get("TUGBOAT_TEST_POSTGRES"),
    reason="no PostgreSQL configured (set TUGBOAT_TEST_POSTGRES)",
)
def test_two_servers_on_one_store_are_both_endpoints(tmp_path: Path) -> None:
    from tests.unit.test_storage import _pg_schema_url

    url, port = _pg_schema_url(), free_port()
    servers = []
    for host in ("127.0.0.2", "127.0.0.3"):
        (tmp_path / host).mkdir()
        extra = ["--bind-address", host, "--advertise-address", host]
        servers.append(start_apiserver(tmp_path / host, port, url, extra, host=host))
    a, b = servers
    try:
        _until(lambda: _endpoint_ips(a.url), ["127.0.0.2", "127.0.0.3"])
        _until(lambda: _endpoint_ips(b.url), ["127.0.0.2", "127.0.0.3"])
        assert _slice(b.url) == (["127.0.0.2", "127.0.0.3"], [port])
        b.stop()
        _until(lambda: _endpoint_ips(a.url), ["127.0.0.2"])
        _until(lambda: _slice(a.url)[0], ["127.0.0.2"])
    finally:
        for s in servers:
            s.stop()
