"""Services against the real API server on loopback: allocation, the EndpointSlice controller,
the proxy's rules (compute-only backend) and the DNS zone, all following the same watches.

Pods are created with a node name and their status written through ``pods/status`` (a stand-in
kubelet); everything else is the real code. Latency bounds ("within a second") are measured
from the status write to the object/rule being observed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import dns.name
import dns.rdatatype
import pytest

from controllers.endpointslice import EndpointSliceController
from kubelet.dns import ClusterZone, zone_from_factory
from kubelet.proxy.proxier import ComputeOnlyBackend, Proxier
from machinery import errors
from machinery.client import AsyncClient
from machinery.controller import run_workers
from machinery.informer import InformerFactory
from machinery.kinds import lookup

NS, POD, SVC, SLICE, EP = (
    lookup(n) for n in ("namespaces", "pods", "services", "endpointslices", "endpoints")
)
_seq = itertools.count()
Obj = dict[str, Any]


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except errors.NotFound:
            last = None
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


@dataclass
class Services:
    client: AsyncClient
    namespace: str
    proxy: ComputeOnlyBackend
    zone: ClusterZone

    async def pod(self, name: str, ip: str, *, ready: bool, labels: Obj | None = None) -> Obj:
        body = {
            "metadata": {"name": name, "labels": labels or {"app": "web"}},
            "spec": {
                "nodeName": "node-0",
                "containers": [
                    {"name": "c", "image": "x", "ports": [{"name": "web", "containerPort": 8080}]}
                ],
            },
        }
        await self.client.create(POD, body, self.namespace)
        return await self.set_ready(name, ip, ready)

    async def set_ready(self, name: str, ip: str, ready: bool) -> Obj:
        status = {
            "status": {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            }
        }
        return await self.client.patch(POD, name, status, self.namespace, subresource="status")

    async def slice_ips(self, service: str, ready: bool = True) -> list[str]:
        body = await self.client.list(
            SLICE, self.namespace, label_selector=f"kubernetes.io/service-name={service}"
        )
        return sorted(
            e["addresses"][0]
            for s in body["items"]
            for e in s.get("endpoints") or []
            if e["conditions"]["ready"] is ready
        )


@pytest.fixture
async def env(api) -> AsyncIterator[Services]:
    client = api.async_client()
    ns = f"svc-{next(_seq)}-{int(time.time() * 1000) % 100000}"
    await client.create(NS, {"metadata": {"name": ns}})
    factory = InformerFactory(client)
    ctl = EndpointSliceController.from_factory(factory)
    backend = ComputeOnlyBackend()
    proxier = Proxier(factory, backend, min_sync_period=0.01, cleanup_on_exit=False)
    zone = zone_from_factory(factory, "cluster.local")
    await factory.start()
    assert await factory.wait_synced(10)
    tasks = [
        asyncio.create_task(run_workers(ctl.queue, ctl.reconcile, 2, name="endpointslice")),
        asyncio.create_task(proxier.run()),
    ]
    try:
        yield Services(client, ns, backend, zone)
    finally:
        ctl.queue.shutdown()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await factory.stop()
        await client.aclose()


# -- allocation ------------------------------------------------------------------------------


def svc_body(name: str, **spec: Any) -> Obj:
    body: Obj = {"ports": [{"name": "http", "port": 80, "targetPort": "web"}]}
    body.update(spec)
    return {"metadata": {"name": name}, "spec": body}


async def test_allocation(env: Services) -> None:
    c, ns = env.client, env.namespace
    a = await c.create(SVC, svc_body("a", selector={"app": "web"}), ns)
    ip = a["spec"]["clusterIP"]
    assert ip.startswith("10.96.") and ip not in ("10.96.0.1", "10.96.0.10")
    assert a["spec"]["clusterIPs"] == [ip]

    np = await c.create(SVC, svc_body("np", type="NodePort", selector={"app": "web"}), ns)
    assert 30000 <= np["spec"]["ports"][0]["nodePort"] <= 32767
    assert np["spec"]["clusterIP"] not in (ip, "10.96.0.10")

    headless = await c.create(SVC, svc_body("h", clusterIP="None"), ns)
    assert headless["spec"]["clusterIP"] == "None"
    ext = await c.create(SVC, svc_body("x", type="ExternalName", externalName="db.example"), ns)
    assert not ext["spec"].get("clusterIP")

    for name, spec in [
        ("dup-ip", {"clusterIP": ip}),
        ("outside", {"clusterIP": "10.97.0.5"}),
        ("dup-port", {"type": "NodePort", "ports": [
            {"port": 80, "nodePort": np["spec"]["ports"][0]["nodePort"]}]}),
    ]:  # fmt: skip
        with pytest.raises(errors.Invalid):
            await c.create(SVC, svc_body(name, **spec), ns)

    await c.delete(SVC, "a", ns)
    again = await c.create(SVC, svc_body("again", clusterIP=ip), ns)
    assert again["spec"]["clusterIP"] == ip, "a released ClusterIP can be taken again"


# -- endpoints ---------------------------------------------------------------------------------


async def test_endpoint_slices_follow_pods_within_a_second(env: Services) -> None:
    c, ns = env.client, env.namespace
    svc = await c.create(SVC, svc_body("web", selector={"app": "web"}), ns)
    cluster_ip = svc["spec"]["clusterIP"]
    await env.pod("w1", "10.244.9.1", ready=True)
    await env.pod("w2", "10.244.9.2", ready=False)
    await env.pod("other", "10.244.9.3", ready=True, labels={"app": "other"})

    async def first_state() -> bool:
        legacy = await c.get(EP, "web", ns)
        addresses = [
            (kind, a["ip"]) for s in legacy.get("subsets") or [] for kind in
            ("addresses", "notReadyAddresses") for a in s.get(kind) or []
        ]  # fmt: skip
        return (
            await env.slice_ips("web") == ["10.244.9.1"]
            and await env.slice_ips("web", ready=False) == ["10.244.9.2"]
            and addresses == [("addresses", "10.244.9.1"), ("notReadyAddresses", "10.244.9.2")]
        )

    await eventually(first_state, 5, "slices and Endpoints for one ready, one unready pod")
    [eps] = (await c.list(SLICE, ns, label_selector="kubernetes.io/service-name=web"))["items"]
    assert eps["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert {e["targetRef"]["name"] for e in eps["endpoints"]} == {"w1", "w2"}

    # readiness flips: the slice, the proxy's rules and nothing else, within a second each
    await env.set_ready("w2", "10.244.9.2", True)
    await eventually(
        lambda: _eq(env.slice_ips("web"), ["10.244.9.1", "10.244.9.2"]), 10, "ready pod in slice"
    )

    async def rule_endpoints() -> list[str]:
        rule = env.proxy.ruleset.find(cluster_ip, 80)
        return sorted(ip for ip, _ in rule.endpoints) if rule else []

    await eventually(
        lambda: _eq(rule_endpoints(), ["10.244.9.1", "10.244.9.2"]), 10, "ready pod in rules"
    )
    assert "10.244.9.2:8080" in env.proxy.text

    # deletion: gone from the slice and the rules
    await c.delete(POD, "w1", ns, grace_period_seconds=0)
    await eventually(lambda: _eq(env.slice_ips("web"), ["10.244.9.2"]), 10, "deleted pod gone")
    await eventually(lambda: _eq(rule_endpoints(), ["10.244.9.2"]), 10, "deleted pod not in rules")

    # DNS follows the same caches
    answer = env.zone.resolve(dns.name.from_text(f"web.{ns}.svc.cluster.local."), dns.rdatatype.A)
    assert [r.to_text() for rrset in answer.answer for r in rrset] == [cluster_ip]

    # the Service goes: slices and Endpoints go, rules too
    await c.delete(SVC, "web", ns)
    await eventually(lambda: _eq(env.slice_ips("web"), []), 10, "slices removed")
    await eventually(lambda: _gone(c, EP, "web", ns), 10, "endpoints removed")
    await eventually(lambda: _eq(rule_endpoints(), []), 10, "rules removed")


async def test_publish_not_ready_and_headless_dns(env: Services) -> None:
    c, ns = env.client, env.namespace
    await c.create(
        SVC,
        svc_body("db", clusterIP="None", selector={"app": "db"}, publishNotReadyAddresses=True),
        ns,
    )
    await env.pod("db-0", "10.244.9.20", ready=False, labels={"app": "db"})
    await eventually(lambda: _eq(env.slice_ips("db"), ["10.244.9.20"]), 10, "not-ready published")
    name = dns.name.from_text(f"db.{ns}.svc.cluster.local.")
    await eventually(lambda: _eq(_a(env.zone, name), ["10.244.9.20"]), 10, "headless A record")
    assert env.proxy.ruleset is not None and not any(
        r.name == "db" and r.namespace == ns for r in env.proxy.ruleset.services
    ), "a headless Service gets no proxy rules"


async def _eq(value: Awaitable[Any], expected: Any) -> bool:
    return (await value) == expected


async def _a(zone: ClusterZone, name: dns.name.Name) -> list[str]:
    return sorted(
        r.to_text() for rrset in zone.resolve(name, dns.rdatatype.A).answer for r in rrset
    )


async def _gone(client: AsyncClient, rt: Any, name: str, ns: str) -> bool:
    try:
        await client.get(rt, name, ns)
    except errors.NotFound:
        return True
    return False
