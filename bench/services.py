"""Service networking benchmark: ``python -m bench.services [--services N] [--endpoints E]``.

An API server on a temp dir holding N Services (default 1,000), each with an EndpointSlice of
E endpoints (default 10): selectorless Services whose slices this benchmark writes, as a
hollow cluster would have. In this process: the proxy on a hollow node (compute-only backend
that also renders the iptables text), the EndpointSlice controller and the DNS server, all on
the same informers. Figures:

1. programming all rules on one node: from the proxy's start (list + watch of 2N objects) to
   its first full ruleset; the compute+render part alone; and, when root with ``unshare``,
   ``iptables-restore`` of that text into a throwaway network namespace (the kernel's part);
2. an endpoint change reaching the rules (p50/p99): (a) a slice write → the ruleset holds it;
   (b) a pod's readiness flip → the EndpointSlice controller → the slice → the ruleset;
3. DNS: queries per second and p99 latency, K client processes in closed loop over UDP
   (A for Services, SRV for named ports, some NXDOMAIN), against the server on 127.0.0.1.

Floors, measured in the same run: (2) the bare watch latency (a slice write → an informer
event), (3) an asyncio UDP echo server driven by the same clients.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import dns.message

from bench.common import apiserver, summary
from controllers.endpointslice import EndpointSliceController
from kubelet.dns import DnsServer, zone_from_factory
from kubelet.proxy.iptables import clear_render_cache, render
from kubelet.proxy.proxier import ComputeOnlyBackend, Proxier
from kubelet.proxy.rules import compute_ruleset, slice_service_key
from machinery.client import AsyncClient
from machinery.controller import run_workers
from machinery.informer import Informer, InformerFactory
from machinery.kinds import lookup

NS, SVC, SLICE, POD = (lookup(n) for n in ("namespaces", "services", "endpointslices", "pods"))
BENCH_NS = "bench"
Obj = dict[str, Any]


def service(i: int) -> Obj:
    return {
        "metadata": {"name": f"svc-{i}", "namespace": BENCH_NS},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }


def endpoint_slice(i: int, endpoints: int, generation: int = 0) -> Obj:
    eps = []
    for j in range(endpoints):
        n = (i * endpoints + j + generation) % (250 * 256)
        ip = f"10.244.{n // 250}.{n % 250 + 1}"
        eps.append({"addresses": [ip], "conditions": {"ready": True}})
    return {
        "metadata": {
            "name": f"svc-{i}-manual",
            "namespace": BENCH_NS,
            "labels": {"kubernetes.io/service-name": f"svc-{i}"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps,
    }


async def populate(client: AsyncClient, n: int, endpoints: int, concurrency: int = 32) -> float:
    await client.create(NS, {"metadata": {"name": BENCH_NS}})
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await client.create(SVC, service(i), BENCH_NS)
            await client.create(SLICE, endpoint_slice(i, endpoints), BENCH_NS)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - start


class Signalling(ComputeOnlyBackend):
    """A compute-only backend that wakes waiters after each apply."""

    def __init__(self) -> None:
        super().__init__(render_text=True)
        self.changed = asyncio.Event()

    async def apply(self, ruleset: Any) -> None:
        await super().apply(ruleset)
        self.changed.set()


async def wait_for(backend: Signalling, predicate: Any, timeout: float = 30.0) -> float:
    deadline = time.perf_counter() + timeout
    while not predicate(backend.ruleset):
        backend.changed.clear()
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError("the rules never showed the change")
        try:
            await asyncio.wait_for(backend.changed.wait(), left)
        except TimeoutError:
            pass
    return time.perf_counter()


def kernel_apply_seconds(text: str) -> float | None:
    """``iptables-restore`` of ``text`` in a fresh network namespace (None: cannot)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("iptables-restore"):
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".rules") as f:
        f.write(text)
        f.flush()
        script = 'start=$(date +%s%N); iptables-restore -w < "$1"; end=$(date +%s%N); '
        script += "echo $((end - start))"
        out = subprocess.run(
            ["unshare", "--net", "sh", "-c", script, "sh", f.name],
            capture_output=True,
            text=True,
            timeout=600,
        )
    if out.returncode != 0:
        print(f"  (iptables-restore failed: {out.stderr.strip()[:200]})")
        return None
    return int(out.stdout.strip()) / 1e9


# -- DNS load ---------------------------------------------------------------------------------


def _dns_client(port: int, names: list[tuple[str, str]], seconds: float, out: Any) -> None:
    queries = [dns.message.make_query(n, t).to_wire() for n, t in names]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.connect(("127.0.0.1", port))
    lat: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        q = bytearray(queries[i % len(queries)])
        q[0:2] = (i % 65536).to_bytes(2, "big")
        t0 = time.perf_counter()
        sock.send(q)
        try:
            sock.recv(65535)
            lat.append(time.perf_counter() - t0)
        except TimeoutError:
            errors += 1
        i += 1
    out.put((lat, errors))


def run_dns_load(
    port: int, names: list[tuple[str, str]], clients: int, seconds: float
) -> tuple[list[float], int, float]:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [
        ctx.Process(target=_dns_client, args=(port, names, seconds, q)) for _ in range(clients)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    lat = [x for r, _ in results for x in r]
    return lat, sum(e for _, e in results), elapsed


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


# -- the run ----------------------------------------------------------------------------------


async def run(url: str, args: argparse.Namespace) -> None:
    client = AsyncClient(url, timeout=60)
    n, e = args.services, args.endpoints
    took = await populate(client, n, e)
    print(f"setup: {n} Services + {n} EndpointSlices x {e} endpoints written in {took:.1f} s")

    # 1. programming all rules
    factory = InformerFactory(client)
    backend = Signalling()
    proxier = Proxier(factory, backend, min_sync_period=0.0, cleanup_on_exit=False)
    zone = zone_from_factory(factory, "cluster.local")
    ctl = EndpointSliceController.from_factory(factory)
    start = time.perf_counter()
    proxy_task = asyncio.create_task(proxier.run())
    full = n * e
    await wait_for(backend, lambda rs: rs.endpoint_count() >= full, timeout=300)
    first = time.perf_counter() - start
    by_service: dict[str, list[Obj]] = {}
    for eps in proxier.slices.list():
        key = slice_service_key(eps)
        if key:
            by_service.setdefault(key, []).append(eps)
    t0 = time.perf_counter()
    ruleset = compute_ruleset(proxier.services.list(), by_service)
    t1 = time.perf_counter()
    clear_render_cache()
    text, _ = render(ruleset, backend.config)
    t2 = time.perf_counter()
    assert proxier.compute() == ruleset
    t3 = time.perf_counter()
    proxier.compute()
    t4 = time.perf_counter()
    render(ruleset, backend.config)
    t5 = time.perf_counter()
    lines = text.count("\n")
    print("\n1. programming all rules on one node")
    print(f"   start → first full ruleset ({full} endpoints): {first * 1e3:8.0f} ms")
    print(f"   cold: compute {1e3 * (t1 - t0):.0f} ms + render {1e3 * (t2 - t1):.0f} ms "
          f"({lines} iptables-restore lines)")  # fmt: skip
    print(f"   warm (memoised, nothing changed): compute {1e3 * (t4 - t3):.0f} ms + render "
          f"{1e3 * (t5 - t4):.0f} ms")  # fmt: skip
    kernel = kernel_apply_seconds(text)
    if kernel is not None:
        print(f"   iptables-restore into a fresh netns: {kernel * 1e3:8.0f} ms")

    # 2. endpoint change → rules
    ctl_task = asyncio.create_task(run_workers(ctl.queue, ctl.reconcile, 5, name="es"))
    watch_floor: list[float] = []
    seen = asyncio.Event()
    seen_at = [0.0]

    def on_slice(_old: Obj, _new: Obj) -> None:
        seen_at[0] = time.perf_counter()
        seen.set()

    floor_inf = Informer(client, SLICE, namespace=BENCH_NS)
    floor_inf.add_handler(None, on_slice, None)
    floor_task = asyncio.create_task(floor_inf.run())
    await floor_inf.wait_synced()
    slice_lat: list[float] = []
    for k in range(args.changes):
        i = k % n
        body = endpoint_slice(i, e, generation=k + 1)
        current = await client.get(SLICE, body["metadata"]["name"], BENCH_NS)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        want = body["endpoints"][-1]["addresses"][0]
        seen.clear()
        t0 = time.perf_counter()
        await client.update(SLICE, body)
        done = await wait_for(
            backend,
            lambda rs, i=i, want=want: any(
                ip == want for ip, _ in (rs.find(_cluster_ip(proxier, i), 80) or _NONE).endpoints
            ),
        )
        slice_lat.append(done - t0)
        await asyncio.wait_for(seen.wait(), 30)
        watch_floor.append(seen_at[0] - t0)
    print("\n2. endpoint change → rules")
    print("   " + summary("slice write → ruleset", slice_lat, sum(slice_lat)))
    print("   " + summary("floor: slice write → informer", watch_floor, sum(watch_floor)))

    pod_lat = await pod_flips(client, backend, proxier, args.changes)
    print("   " + summary("pod ready flip → slice → ruleset", pod_lat, sum(pod_lat)))

    # 3. DNS
    server = await DnsServer(zone, "127.0.0.1", 0).start()
    names = []
    for i in range(0, n, max(1, n // 200)):
        names.append((f"svc-{i}.{BENCH_NS}.svc.cluster.local.", "A"))
        names.append((f"_http._tcp.svc-{i}.{BENCH_NS}.svc.cluster.local.", "SRV"))
        names.append((f"missing-{i}.{BENCH_NS}.svc.cluster.local.", "A"))
    loop = asyncio.get_running_loop()
    lat, errs, elapsed = await loop.run_in_executor(
        None, run_dns_load, server.port, names, args.dns_clients, args.dns_seconds
    )
    server.close()
    echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    port = echo.get_extra_info("sockname")[1]
    flat, _, fel = await loop.run_in_executor(
        None, run_dns_load, port, names, args.dns_clients, args.dns_seconds
    )
    echo.close()
    floor = len(flat) / fel
    print(f"\n3. DNS ({args.dns_clients} UDP clients, {len(names)} names, {errs} timeouts)")
    print("   " + summary("queries", lat, elapsed, floor))
    print("   " + summary("floor: asyncio UDP echo", flat, fel))

    for t in (proxy_task, ctl_task, floor_task):
        t.cancel()
    ctl.queue.shutdown()
    await asyncio.gather(proxy_task, ctl_task, floor_task, return_exceptions=True)
    await factory.stop()
    await client.aclose()


class _NoRule:
    endpoints: tuple = ()


_NONE = _NoRule()


def _cluster_ip(proxier: Proxier, i: int) -> str:
    svc = proxier.services.get_by(BENCH_NS, f"svc-{i}")
    return (svc or {}).get("spec", {}).get("clusterIP", "")


async def pod_flips(
    client: AsyncClient, backend: Signalling, proxier: Proxier, changes: int
) -> list[float]:
    """A selector Service over 10 pods (status written here, as a hollow kubelet would); flip
    one pod's readiness and time until the rules follow."""
    svc = await client.create(
        SVC,
        {
            "metadata": {"name": "flip"},
            "spec": {"selector": {"app": "flip"}, "ports": [{"name": "http", "port": 80}]},
        },
        BENCH_NS,
    )
    ip = svc["spec"]["clusterIP"]

    async def set_ready(name: str, address: str, ready: bool) -> None:
        status = {
            "status": {
                "phase": "Running",
                "podIP": address,
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            }
        }
        await client.patch(POD, name, status, BENCH_NS, subresource="status")

    for j in range(10):
        pod = {
            "metadata": {"name": f"flip-{j}", "labels": {"app": "flip"}},
            "spec": {"nodeName": "hollow-0", "containers": [{"name": "c", "image": "x"}]},
        }
        await client.create(POD, pod, BENCH_NS)
        await set_ready(f"flip-{j}", f"10.250.0.{j + 1}", True)

    def count(rs: Any) -> int:
        return len((rs.find(ip, 80) or _NONE).endpoints)

    await wait_for(backend, lambda rs: count(rs) == 10)
    lat = []
    for k in range(changes):
        j = k % 10
        ready = k % 20 >= 10  # first round takes pods out, second puts them back
        want = 10 - (j + 1) if not ready else j + 1
        t0 = time.perf_counter()
        await set_ready(f"flip-{j}", f"10.250.0.{j + 1}", ready)
        done = await wait_for(backend, lambda rs, want=want: count(rs) == want)
        lat.append(done - t0)
    return lat


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.services")
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--endpoints", type=int, default=10)
    p.add_argument("--changes", type=int, default=100, help="endpoint changes timed")
    p.add_argument("--dns-clients", type=int, default=4)
    p.add_argument("--dns-seconds", type=float, default=3.0)
    args = p.parse_args(argv)
    with apiserver() as (url, _pid):
        asyncio.run(run(url, args))


if __name__ == "__main__":
    main()
