"""Scheduler throughput through the real API server.

``python -m bench.scheduler [--nodes 1000] [--pods 10000]`` starts an API server and the
scheduler (``python -m scheduler``) as child processes, creates the Node objects, then creates
the pending pods (half plain cpu/memory requests, half with a ``nodeSelector``) while watching
for their bindings. Prints:

* pods scheduled per second over the whole run and in steady state (10 %–90 % bound);
* p50 / p99 time from a pod's create request to the watch showing it bound;
* the scheduler's peak and final RSS;
* where the time goes: pod create and binding POST latency (the API server's share), and the
  CPU each process used per second of the run (scheduler, API server, this load generator);
* the floor measured in the same run: how fast this client creates pods with no scheduler
  (the ratio says how close scheduling runs to the API server's own write rate);
* the algorithm alone, in-process: pods per CPU-second with adaptive and 10 % sampling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from machinery import errors
from machinery.client import AsyncClient
from machinery.kinds import lookup
from scheduler.testing import make_node, make_pod

PODS, NODES, NAMESPACES = lookup("pods"), lookup("nodes"), lookup("namespaces")
CLIENTS = 4  # load-generator clients the writes are spread over (see ``spread``)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - lives as long as the child
    return subprocess.Popen(
        cmd, stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def gather_limited(n: int, coros) -> None:
    sem = asyncio.Semaphore(n)

    async def one(c):
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


async def spread(
    clients: list[AsyncClient], concurrency: int, n: int, call: Callable[[AsyncClient, int], Any]
) -> None:
    """``call(client, i)`` for ``i < n``, ``concurrency`` at a time, spread over ``clients``
    (each with its own connection pool, as several independent users would be)."""
    per = max(1, concurrency // len(clients))
    k = len(clients)
    await asyncio.gather(
        *(gather_limited(per, (call(c, i) for i in range(j, n, k))) for j, c in enumerate(clients))
    )


async def create(client: AsyncClient, rt: Any, obj: dict, namespace: str | None = None) -> None:
    """Create ``obj``, retrying when a kept-alive connection was closed under the request
    (a retry finding the object already there counts as done)."""
    for attempt in range(5):
        try:
            await client.create(rt, obj, namespace)
            return
        except errors.AlreadyExists:
            if attempt == 0:
                raise
            return
        except httpx.TransportError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.1 * (attempt + 1))


def bench_pod(i: int, namespace: str) -> dict:
    kw = {"nodeSelector": {"pool": "a"}} if i % 2 else {}
    return make_pod(f"p-{i:05}", namespace=namespace, cpu="100m", memory="128Mi", **kw)


async def measure_floor(clients: list[AsyncClient], n: int, concurrency: int) -> float:
    """Creates/s of pending pods nobody schedules (``schedulerName`` names no scheduler)."""
    await clients[0].create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "floor"}}
    )

    def pod(i: int) -> dict:
        body = bench_pod(i, "floor")
        body["spec"]["schedulerName"] = "nobody"
        return body

    t0 = time.perf_counter()
    await spread(clients, concurrency, n, lambda c, i: create(c, PODS, pod(i), "floor"))
    return n / (time.perf_counter() - t0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def histogram_quantile(text: str, name: str, q: float) -> float:
    """The upper bound of the bucket holding quantile ``q`` of a Prometheus histogram."""
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total = buckets[-1][1]
    return next(le for le, count in buckets if count >= q * total)


async def run(args: argparse.Namespace, url: str, start_scheduler) -> dict[str, float]:
    client = AsyncClient(url)
    writers = [AsyncClient(url) for _ in range(CLIENTS)]
    try:
        t0 = time.perf_counter()

        def node(i: int) -> dict:
            pool = "a" if i % 2 else "b"
            return make_node(f"node-{i:04}", cpu="32", memory="128Gi", labels={"pool": pool})

        await spread(writers, args.concurrency, args.nodes, lambda c, i: create(c, NODES, node(i)))
        print(f"created {args.nodes} nodes in {time.perf_counter() - t0:.1f} s", flush=True)
        floor = await measure_floor(writers, min(args.pods, 2000), args.concurrency)
        print(f"floor: {floor:.0f} pod creates/s with no scheduler", flush=True)

        sched_pid, metrics_url = start_scheduler()
        await asyncio.sleep(args.warmup)

        created: dict[str, float] = {}
        create_latency: list[float] = []
        bound: dict[str, float] = {}
        done = asyncio.Event()

        def note(obj: dict) -> None:
            name = obj["metadata"]["name"]
            if obj["spec"].get("nodeName") and name not in bound:
                bound[name] = time.perf_counter()
                if len(bound) >= args.pods:
                    done.set()

        async def relist() -> str:
            listed = await client.list(PODS, "default")
            for item in listed["items"]:
                note(item)
            return listed["metadata"]["resourceVersion"]

        async def watch() -> None:
            rv = await relist()
            while not done.is_set():
                try:
                    async for kind, obj in client.watch(
                        PODS, "default", resource_version=rv, timeout_seconds=300
                    ):
                        if kind == "ERROR":  # e.g. 410 Expired: start again from a list
                            rv = await relist()
                            break
                        rv = obj["metadata"].get("resourceVersion", rv)
                        if kind != "BOOKMARK":
                            note(obj)
                        if done.is_set():
                            return
                except httpx.HTTPError:
                    rv = await relist()

        async def create_pod(writer: AsyncClient, i: int) -> None:
            pod = bench_pod(i, "default")
            t = created[pod["metadata"]["name"]] = time.perf_counter()
            await create(writer, PODS, pod, "default")
            create_latency.append(time.perf_counter() - t)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)  # the watch is open before the first pod exists
        pids = {"scheduler": sched_pid, "apiserver": args.api_pid, "bench": os.getpid()}
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        load0 = os.getloadavg()[0]
        start_t = time.perf_counter()
        peak = 0
        creator = asyncio.create_task(spread(writers, args.concurrency, args.pods, create_pod))
        while not done.is_set():
            await asyncio.sleep(0.5)
            peak = max(peak, rss_kib(sched_pid).get("VmRSS", 0))
            if time.perf_counter() - start_t > args.timeout:
                print(f"timeout: {len(bound)}/{args.pods} bound", flush=True)
                break
        end_t = max(bound.values()) if bound else time.perf_counter()
        cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
        await creator
        watcher.cancel()
        metrics = httpx.get(metrics_url, timeout=5).text
        times = sorted(bound.values())
        lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10 - 1]
        latencies = [bound[n] - created[n] for n in bound if n in created]
        mem = rss_kib(sched_pid)
        return {
            "bound": len(bound),
            "elapsed": end_t - start_t,
            "overall": len(bound) / (end_t - start_t),
            "steady": (len(times) * 8 // 10) / (hi - lo) if hi > lo else float("nan"),
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "create_p50": percentile(create_latency, 0.50),
            "create_p99": percentile(create_latency, 0.99),
            "bind_p50": histogram_quantile(metrics, "scheduler_binding_duration_seconds", 0.5),
            "bind_p99": histogram_quantile(metrics, "scheduler_binding_duration_seconds", 0.99),
            "rss_mib": mem.get("VmRSS", 0) / 1024,
            "hwm_mib": max(mem.get("VmHWM", 0), peak) / 1024,
            "floor": floor,
            "load": (load0 + os.getloadavg()[0]) / 2,
            **{f"cpu_{k}": v for k, v in cpu.items()},
        }
    finally:
        for c in (client, *writers):
            await c.aclose()


def algorithm_rate(nodes: int, pods: int, percentage: int) -> float:
    """Pods per CPU-second of the scheduling algorithm alone (in-process cache, no API
    server); CPU time, so other load on the machine does not count against it."""
    import random

    from scheduler.cache import Cache
    from scheduler.plugins import build_framework

    cache = Cache()
    for i in range(nodes):
        cache.add_node(
            make_node(
                f"node-{i:04}", cpu="32", memory="128Gi", labels={"pool": "a" if i % 2 else "b"}
            )
        )
    fw = build_framework(percentage_of_nodes_to_score=percentage, rng=random.Random(0))
    batch = [bench_pod(i, "algo") for i in range(pods)]
    t0 = time.process_time()
    for pod in batch:
        cache.assume_pod(pod, fw.schedule_pod(pod, cache.snapshot()).node_name)
    return pods / (time.process_time() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scheduler")
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument(
        "--percentage-of-nodes-to-score",
        type=int,
        default=0,
        help="passed to the scheduler (0: kube-scheduler's adaptive default)",
    )
    p.add_argument("--binds-in-flight", type=int, default=0, help="passed to the scheduler")
    p.add_argument("--skip-algorithm", action="store_true", help="skip the in-process figures")
    args = p.parse_args(argv)
    algo = (
        {}
        if args.skip_algorithm
        else {pct: algorithm_rate(args.nodes, min(args.pods, 1000), pct) for pct in (0, 10)}
    )
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        data = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        api = start(
            [sys.executable, "-m", "apiserver", "--port", str(port), "--data-dir", str(data)],
            data / "apiserver.log",
        )
        args.api_pid = api.pid
        children = [api]
        try:
            wait_ready(url + "/readyz", api)

            def start_scheduler() -> tuple[int, str]:
                mport = free_port()
                cmd = [sys.executable, "-m", "scheduler", "--server", url]
                cmd += ["--metrics-port", str(mport)]
                cmd += ["--percentage-of-nodes-to-score", str(args.percentage_of_nodes_to_score)]
                if args.binds_in_flight:
                    cmd += ["--binds-in-flight", str(args.binds_in_flight)]
                proc = start(cmd, data / "scheduler.log")
                children.append(proc)
                wait_ready(f"http://127.0.0.1:{mport}/healthz", proc)
                print(f"scheduler pid {proc.pid}", flush=True)
                return proc.pid, f"http://127.0.0.1:{mport}/metrics"

            r = asyncio.run(run(args, url, start_scheduler))
        finally:
            for proc in reversed(children):
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
    report(args, r, algo)
    return 0


def report(args: argparse.Namespace, r: dict[str, float], algo: dict[int, float]) -> None:
    ms = 1000
    pct = args.percentage_of_nodes_to_score or "adaptive"
    print(f"nodes={args.nodes} pods={args.pods} bound={r['bound']} percentageOfNodesToScore={pct}")
    print(f"pods/s overall:        {r['overall']:8.1f}   ({r['elapsed']:.1f} s)")
    print(f"pods/s steady state:   {r['steady']:8.1f}   (target >= 300)")
    print(f"create->bound p50:     {r['p50'] * ms:8.1f} ms")
    print(f"create->bound p99:     {r['p99'] * ms:8.1f} ms")
    c50, c99 = r["create_p50"] * ms, r["create_p99"] * ms
    print(f"pod create POST:       p50 {c50:.1f} ms, p99 {c99:.1f} ms")
    b50, b99 = r["bind_p50"] * ms, r["bind_p99"] * ms
    print(f"binding POST:          p50 <= {b50:.0f} ms, p99 <= {b99:.0f} ms (histogram buckets)")
    print(f"scheduler RSS:         {r['rss_mib']:8.1f} MiB (peak {r['hwm_mib']:.1f} MiB)")
    busy = ", ".join(
        f"{k} {r[f'cpu_{k}'] / r['elapsed']:.2f}" for k in ("scheduler", "apiserver", "bench")
    )
    print(f"CPU cores busy:        {busy}   (load average {r['load']:.1f}, {os.cpu_count()} cores)")
    print(
        f"floor (creates/s):     {r['floor']:8.1f}   ratio steady/floor "
        f"{r['steady'] / r['floor']:.2f}"
    )
    if algo:
        print(
            f"algorithm only:        {algo[0]:8.1f} pods per CPU-second (adaptive "
            f"percentageOfNodesToScore), {algo[10]:.1f} (10 %)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
