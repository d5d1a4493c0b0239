"""Service networking on a real containerd: pods, the EndpointSlice controller, the iptables
proxy and the cluster DNS server, all real, on the e2e bridge.

One module-scoped environment: a node agent, the controller, a proxy with its own chain prefix
(so a running cluster's ``TUG-*`` chains are never touched) and ``tug dns``'s server bound to
10.96.0.10 on a dummy interface this test creates. Traffic only goes to the bridge's pods, the
node's own addresses and the DNS address: every destination is on this machine.

Readiness: a backend whose exec readiness probe never passes runs and answers but is never
Ready; another is Ready until the test deletes the file its probe reads. If the proxy sent either
traffic, its hostname (every backend answers with it) would show up in the answers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controllers.endpointslice import EndpointSliceController
from controllers.manager import ControllerManager
from kubelet.dns import DnsServer, bind_address, unbind_address, zone_from_factory
from kubelet.proxy.iptables import IptablesBackend, IptablesConfig
from kubelet.proxy.proxier import Proxier
from machinery.client import AsyncClient
from machinery.controller import run_workers
from machinery.informer import InformerFactory
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    RealNode,
    container,
    container_id,
    delete_all_pods,
    eventually,
    page_text,
    running,
    start_node,
)

pytestmark = pytest.mark.e2e

NS, POD, SVC, SLICE, EP = (
    lookup(n) for n in ("namespaces", "pods", "services", "endpointslices", "endpoints")
)
DNS_IP = "10.96.0.10"


@dataclass
class Env:
    client: AsyncClient
    node: RealNode
    runtime: ContainerdRuntime
    namespace: str
    proxy: Proxier

    async def exec(self, pod: str, *cmd: str, timeout: int = 10) -> tuple[int, str]:
        obj = await self.client.get(POD, pod, self.namespace)
        assert self.node.runtime is not None
        res = await self.node.runtime.exec_sync(container_id(obj), list(cmd), timeout=timeout)
        return res.exit_code, (res.stdout + res.stderr).decode(errors="replace")

    async def fetch(self, client_pod: str, url: str) -> str:
        code, out = await self.exec(client_pod, "wget", "-q", "-O", "-", url)
        assert code == 0, f"wget {url} from {client_pod}: exit {code}: {out}"
        return out

    def pod(self, name: str, containers: list[dict], labels: dict | None = None) -> dict:
        return {
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels or {}},
            "spec": {
                "nodeName": self.node.name,
                "terminationGracePeriodSeconds": 2,
                "containers": containers,
            },
        }


def web(runtime: ContainerdRuntime) -> dict:
    return container("web", runtime.web_images[1], ports=[{"name": "http", "containerPort": 8080}])


@pytest.fixture
async def env(api: ApiServerProcess, containerd_runtime: ContainerdRuntime) -> AsyncIterator[Env]:
    client = api.async_client()
    ns = f"svc-e2e-{secrets.token_hex(3)}"
    await client.create(NS, {"metadata": {"name": ns}})
    node = await start_node(client, containerd_runtime, prefix="svc")
    factory = InformerFactory(client)
    ctl = EndpointSliceController.from_factory(factory)
    prefix = "TE" + secrets.token_hex(2).upper()
    backend = IptablesBackend(
        IptablesConfig(prefix=prefix, localnet_interfaces=(containerd_runtime.bridge,))
    )
    proxier = Proxier(factory, backend, min_sync_period=0.02)
    zone = zone_from_factory(factory, "cluster.local")
    iface = f"tugdns{secrets.token_hex(2)}"
    created = bind_address(DNS_IP, iface)
    tasks: list[asyncio.Task] = []
    server: DnsServer | None = None
    try:
        await factory.start()
        assert await factory.wait_synced(10)
        server = await DnsServer(zone, DNS_IP, 53).start()
        tasks = [
            asyncio.create_task(run_workers(ctl.queue, ctl.reconcile, 2, name="endpointslice")),
            asyncio.create_task(proxier.run()),
        ]
        try:
            yield Env(client, node, containerd_runtime, ns, proxier)
        finally:
            await delete_all_pods(client, node.name)
            # the next test's Services may ask for the same NodePorts
            for svc in (await client.list(SVC, ns))["items"]:
                await client.delete(SVC, svc["metadata"]["name"], ns)
    finally:
        try:
            ctl.queue.shutdown()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if server is not None:
                server.close()
            await factory.stop()
            await node.stop()
            await client.aclose()
        finally:
            if created:
                unbind_address(iface)
    # the proxy removed its chains on the way out
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert f"{prefix}-" not in saved


async def test_services_end_to_end(env: Env) -> None:
    c, ns, rt = env.client, env.namespace, env.runtime
    names = ["web-a", "web-b", "web-c"]
    for name in names:
        await c.create(POD, env.pod(name, [web(rt)], {"app": "web"}), ns)
    # a web server whose readiness probe never passes: running, never Ready
    failing = {"exec": {"command": ["false"]}, "periodSeconds": 1}
    unready_web = {**web(rt), "readinessProbe": failing}
    await c.create(POD, env.pod("web-unready", [unready_web], {"app": "web"}), ns)
    sleeper = container("c", rt.busybox_image, command=["sleep", "3600"])
    await c.create(POD, env.pod("client", [sleeper]), ns)
    svc = await c.create(
        SVC,
        {
            "metadata": {"name": "web"},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
        ns,
    )
    cluster_ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    pods = {}
    for name in [*names, "client"]:
        pods[name] = await eventually(f"{name} running", lambda n=name: running(c, n, ns), 90)
    ips = {n: p["status"]["podIP"] for n, p in pods.items()}
    unready = await c.get(POD, "web-unready", ns)
    unready_ip = await eventually(
        "web-unready has an IP",
        lambda: _pod_ip(c, "web-unready", ns),
        60,
    )

    async def rule_backends() -> set[str]:
        rule = env.proxy.ruleset.find(cluster_ip, 80) if env.proxy.ruleset else None
        return {ip for ip, _ in rule.endpoints} if rule else set()

    want = {ips[n] for n in names}
    await eventually("3 ready backends in the rules", lambda: _eq(rule_backends(), want), 30)
    assert unready_ip not in await rule_backends()
    assert not any(
        cond["type"] == "Ready" and cond["status"] == "True"
        for cond in (unready.get("status") or {}).get("conditions") or []
    )

    # pod → pod by IP (each backend answers with its own hostname)
    for name in names:
        assert name in await env.fetch("client", f"http://{ips[name]}:8080/")

    # pod → Service by ClusterIP: every ready backend seen, the unready one never
    seen = await _spread(env, f"http://{cluster_ip}/", names)
    assert seen == set(names), f"backends seen: {seen}"

    # pod → Service by DNS name (search path and fully qualified), and the DNS answers
    fqdn = f"web.{ns}.svc.cluster.local"
    for url in ("http://web/", f"http://{fqdn}/"):
        body = await env.fetch("client", url)
        assert any(f"hostname: {n}" in body for n in names), body
    code, out = await env.exec("client", "nslookup", fqdn, DNS_IP)
    assert code == 0 and cluster_ip in out, out

    # host → NodePort on the node's addresses (the bridge gateway and loopback)
    gateway = str(next(ipaddress.ip_network(rt.pod_cidr).hosts()))
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        hosts = set()
        for address in (gateway, "127.0.0.1"):
            for _ in range(6):
                body = (await http.get(f"http://{address}:{node_port}/")).text
                hosts |= {n for n in [*names, "web-unready"] if n in body}
        assert hosts and hosts <= set(names), hosts

    # a deleted pod leaves the endpoints and the rules, and gets no traffic
    await c.delete(POD, "web-a", ns, grace_period_seconds=1)
    await eventually(
        "web-a out of the rules", lambda: _eq(rule_backends(), {ips["web-b"], ips["web-c"]}), 10
    )
    seen = await _spread(env, f"http://{cluster_ip}/", ["web-b", "web-c"])
    assert seen == {"web-b", "web-c"}


async def test_a_pod_that_stops_being_ready_leaves_the_endpoints_and_gets_no_traffic(
    env: Env,
) -> None:
    c, ns, rt = env.client, env.namespace, env.runtime
    probe = {"exec": {"command": ["cat", "/www/healthz"]}, "periodSeconds": 1,
             "failureThreshold": 1}  # fmt: skip
    for name in ("web-a", "web-b"):
        probed = {**web(rt), "readinessProbe": probe}
        await c.create(POD, env.pod(name, [probed], {"app": "web"}), ns)
    sleeper = container("c", rt.busybox_image, command=["sleep", "3600"])
    await c.create(POD, env.pod("client", [sleeper]), ns)
    spec = {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}
    svc = await c.create(SVC, {"metadata": {"name": "web"}, "spec": spec}, ns)
    cluster_ip = svc["spec"]["clusterIP"]
    ips: dict[str, str] = {}
    for name in ("web-a", "web-b", "client"):
        pod = await eventually(f"{name} running", lambda n=name: running(c, n, ns), 90)
        ips[name] = pod["status"]["podIP"]
    await eventually(
        "both ready in the rules",
        lambda: _eq(_rule_backends(env, cluster_ip), {ips["web-a"], ips["web-b"]}),
        30,
    )

    # the resolv.conf the node agent asked the runtime for (CRI DNSConfig)
    code, resolv = await env.exec("client", "cat", "/etc/resolv.conf")
    assert code == 0, resolv
    lines = resolv.splitlines()
    assert f"search {ns}.svc.cluster.local svc.cluster.local cluster.local" in lines, resolv
    assert "options ndots:5" in lines and f"nameserver {DNS_IP}" in lines, resolv

    # web-a's probe starts failing: NotReady, out of the slice's ready endpoints, the legacy
    # Endpoints' addresses and the rules
    code, out = await env.exec("web-a", "rm", "/www/healthz")
    assert code == 0, out

    async def left() -> bool:
        slices = await c.list(SLICE, ns, label_selector="kubernetes.io/service-name=web")
        ready = {e["addresses"][0]: e["conditions"]["ready"]
                 for s in slices["items"] for e in s.get("endpoints") or []}  # fmt: skip
        subsets = (await c.get(EP, "web", ns)).get("subsets") or []
        addresses = {a["ip"] for s in subsets for a in s.get("addresses") or []}
        not_ready = {a["ip"] for s in subsets for a in s.get("notReadyAddresses") or []}
        return (
            ready == {ips["web-a"]: False, ips["web-b"]: True}
            and addresses == {ips["web-b"]}
            and not_ready == {ips["web-a"]}
            and await _rule_backends(env, cluster_ip) == {ips["web-b"]}
        )

    await eventually("web-a NotReady and out of the endpoints and rules", left, 30)
    pod = await c.get(POD, "web-a", ns)
    assert {"type": "Ready", "status": "False"}.items() <= next(
        cond for cond in pod["status"]["conditions"] if cond["type"] == "Ready"
    ).items()
    for _ in range(30):
        body = await env.fetch("client", f"http://{cluster_ip}/")
        assert "hostname: web-b" in body, body


async def test_session_affinity_keeps_a_client_on_one_backend(env: Env) -> None:
    c, ns, rt = env.client, env.namespace, env.runtime
    names = ["web-a", "web-b", "web-c"]
    for name in names:
        await c.create(POD, env.pod(name, [web(rt)], {"app": "web"}), ns)
    sleeper = container("c", rt.busybox_image, command=["sleep", "3600"])
    await c.create(POD, env.pod("client", [sleeper]), ns)
    ports = [{"port": 80, "targetPort": "http"}]
    sticky = {"selector": {"app": "web"}, "ports": ports, "sessionAffinity": "ClientIP"}
    spread = {"selector": {"app": "web"}, "ports": ports}
    cluster_ips = []
    for name, spec in (("sticky", sticky), ("spread", spread)):
        svc = await c.create(SVC, {"metadata": {"name": name}, "spec": spec}, ns)
        cluster_ips.append(svc["spec"]["clusterIP"])
    sticky_ip, spread_ip = cluster_ips
    ips: set[str] = set()
    for name in [*names, "client"]:
        pod = await eventually(f"{name} running", lambda n=name: running(c, n, ns), 90)
        if name in names:
            ips.add(pod["status"]["podIP"])
    for ip in (sticky_ip, spread_ip):
        await eventually(
            f"3 backends behind {ip}", lambda ip=ip: _eq(_rule_backends(env, ip), ips), 30
        )

    seen: set[str] = set()
    for _ in range(20):
        body = await env.fetch("client", f"http://{sticky_ip}/")
        seen |= {n for n in names if f"hostname: {n}" in body}
    assert len(seen) == 1, f"one client, ClientIP affinity, answers from {seen}"
    # the control: the same pods without affinity answer from all three
    assert await _spread(env, f"http://{spread_ip}/", names) == set(names)


async def _rule_backends(env: Env, cluster_ip: str) -> set[str]:
    rule = env.proxy.ruleset.find(cluster_ip, 80) if env.proxy.ruleset else None
    return {ip for ip, _ in rule.endpoints} if rule else set()


async def _spread(env: Env, url: str, expected: list[str], attempts: int = 60) -> set[str]:
    """Fetch ``url`` until every expected backend answered (or ``attempts`` run out); every
    answer must come from an expected backend."""
    seen: set[str] = set()
    for _ in range(attempts):
        body = await env.fetch("client", url)
        hits = {n for n in ["web-a", "web-b", "web-c", "web-unready"] if f"hostname: {n}" in body}
        assert hits and hits <= set(expected), f"answer from {hits}, expected {expected}"
        seen |= hits
        if seen == set(expected):
            break
    return seen


async def _pod_ip(c: AsyncClient, name: str, ns: str) -> str | None:
    return ((await c.get(POD, name, ns)).get("status") or {}).get("podIP")


async def _eq(value: Any, expected: Any) -> bool:
    return (await value) == expected


VOTING_APP = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "voting-app"


async def test_voting_app(env: Env) -> None:
    """The example as shipped: five Deployments + Services; votes go in on the front end's
    NodePort and come out of the results NodePort after crossing queue, worker and store by
    DNS name. Deployments run on the real controllers; pods are bound to this test's node
    through their template (the scheduler is not under test here)."""
    c, ns = env.client, env.namespace
    manager = ControllerManager(c, controllers=["replicaset", "deployment"], leader_elect=False)
    task = asyncio.create_task(manager.run())
    try:
        docs = [
            d
            for f in sorted(VOTING_APP.glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text())
            if d
        ]
        assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Deployment") == [
            "queue", "result", "store", "vote", "worker",
        ]  # fmt: skip
        for doc in docs:
            if doc["kind"] == "Deployment":
                doc["spec"]["template"]["spec"]["nodeName"] = env.node.name
            await c.create(lookup(doc["kind"].lower() + "s"), doc, ns)

        async def all_running() -> bool:
            pods = (await c.list(POD, ns, label_selector="app=voting"))["items"]
            return len(pods) == 6 and all(
                any(
                    cond["type"] == "Ready" and cond["status"] == "True"
                    for cond in (p.get("status") or {}).get("conditions") or []
                )
                for p in pods
            )

        await eventually("voting app pods ready", all_running, 120)
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:

            async def vote(choice: str) -> str:
                text = await page_text(http, f"http://127.0.0.1:31000/cgi-bin/vote?choice={choice}")
                return text if "voted" in text else ""

            for choice in "aaab":
                answer = await eventually(f"vote {choice}", lambda ch=choice: vote(ch), 30, 0.5)
                assert f"voted {choice}" in answer

            async def results() -> str:
                text = await page_text(http, "http://127.0.0.1:31001/cgi-bin/results")
                return text if "a 3" in text and "b 1" in text else ""

            text = await eventually("votes counted", results, 30, 0.5)
            assert "processed 4" in text, text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
