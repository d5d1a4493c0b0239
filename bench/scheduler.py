"""Scheduler throughput through the real API server.

``python -m bench.scheduler [--nodes 1000] [--pods 10000]`` starts an API server and the
scheduler (``python -m scheduler``) as child processes, creates the Node objects, then creates
the pending pods (half plain cpu/memory requests, half with a ``nodeSelector``) while watching
for their bindings. Prints:

* pods scheduled per second over the whole run and in steady state (10 %–90 % bound);
* p50 / p99 time from a pod's create request to the watch showing it bound;
* the scheduler's peak and final RSS;
* the floor measured in the same run: how fast this client creates pods with no scheduler
  (the ratio says how close scheduling runs to the API server's own write rate).
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
from pathlib import Path

import httpx

from machinery.client import AsyncClient
from machinery.kinds import lookup
from scheduler.testing import make_node, make_pod

PODS, NODES, NAMESPACES = lookup("pods"), lookup("nodes"), lookup("namespaces")


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


def bench_pod(i: int, namespace: str) -> dict:
    kw = {"nodeSelector": {"pool": "a"}} if i % 2 else {}
    return make_pod(f"p-{i:05}", namespace=namespace, cpu="100m", memory="128Mi", **kw)


async def measure_floor(client: AsyncClient, n: int, concurrency: int) -> float:
    """Creates/s of pending pods nobody schedules (``schedulerName`` names no scheduler)."""
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "floor"}}
    )

    def pod(i: int) -> dict:
        body = bench_pod(i, "floor")
        body["spec"]["schedulerName"] = "nobody"
        return body

    t0 = time.perf_counter()
    await gather_limited(concurrency, (client.create(PODS, pod(i), "floor") for i in range(n)))
    return n / (time.perf_counter() - t0)


async def run(
    args: argparse.Namespace, url: str, sched_pid_box: list[int], start_scheduler
) -> dict[str, float]:
    client = AsyncClient(url)
    try:
        t0 = time.perf_counter()
        await gather_limited(
            args.concurrency,
            (
                client.create(
                    NODES,
                    make_node(
                        f"node-{i:04}",
                        cpu="32",
                        memory="128Gi",
                        labels={"pool": "a" if i % 2 else "b"},
                    ),
                )
                for i in range(args.nodes)
            ),
        )
        print(f"created {args.nodes} nodes in {time.perf_counter() - t0:.1f} s", flush=True)
        floor = await measure_floor(client, min(args.pods, 2000), args.concurrency)
        print(f"floor: {floor:.0f} pod creates/s with no scheduler", flush=True)

        sched_pid_box.append(start_scheduler())
        await asyncio.sleep(args.warmup)

        created: dict[str, float] = {}
        bound: dict[str, float] = {}
        done = asyncio.Event()
        listed = await client.list(PODS, "default")
        rv = listed["metadata"]["resourceVersion"]

        async def watch() -> None:
            nonlocal rv
            while not done.is_set():
                async for kind, obj in client.watch(
                    PODS, "default", resource_version=rv, timeout_seconds=300
                ):
                    rv = obj["metadata"].get("resourceVersion", rv)
                    name = obj["metadata"]["name"]
                    if kind != "BOOKMARK" and obj["spec"].get("nodeName") and name not in bound:
                        bound[name] = time.perf_counter()
                        if len(bound) >= args.pods:
                            done.set()
                            return

        watcher = asyncio.create_task(watch())

        async def create(i: int) -> None:
            pod = bench_pod(i, "default")
            created[pod["metadata"]["name"]] = time.perf_counter()
            await client.create(PODS, pod, "default")

        start_t = time.perf_counter()
        peak = 0
        creator = asyncio.create_task(
            gather_limited(args.concurrency, (create(i) for i in range(args.pods)))
        )
        while not done.is_set():
            await asyncio.sleep(0.5)
            peak = max(peak, rss_kib(sched_pid_box[0]).get("VmRSS", 0))
            if time.perf_counter() - start_t > args.timeout:
                print(f"timeout: {len(bound)}/{args.pods} bound", flush=True)
                break
        await creator
        watcher.cancel()
        end_t = max(bound.values()) if bound else time.perf_counter()
        times = sorted(bound.values())
        lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10 - 1]
        latencies = [bound[n] - created[n] for n in bound if n in created]
        mem = rss_kib(sched_pid_box[0])
        return {
            "bound": len(bound),
            "overall": len(bound) / (end_t - start_t),
            "steady": (len(times) * 8 // 10) / (hi - lo) if hi > lo else float("nan"),
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "rss_mib": mem.get("VmRSS", 0) / 1024,
            "hwm_mib": max(mem.get("VmHWM", 0), peak) / 1024,
            "floor": floor,
        }
    finally:
        await client.aclose()


def algorithm_rate(nodes: int, pods: int, percentage: int) -> float:
    """Pods/s of the scheduling algorithm alone (in-process cache, no API server)."""
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
    t0 = time.perf_counter()
    for i in range(pods):
        pod = bench_pod(i, "algo")
        cache.assume_pod(pod, fw.schedule_pod(pod, cache.snapshot()).node_name)
    return pods / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scheduler")
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    algo = {pct: algorithm_rate(args.nodes, min(args.pods, 1000), pct) for pct in (0, 10)}
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        data = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        api = start(
            [sys.executable, "-m", "apiserver", "--port", str(port), "--data-dir", str(data)],
            data / "apiserver.log",
        )
        children = [api]
        try:
            wait_ready(url + "/readyz", api)

            def start_scheduler() -> int:
                mport = free_port()
                proc = start(
                    [
                        sys.executable,
                        "-m",
                        "scheduler",
                        "--server",
                        url,
                        "--metrics-port",
                        str(mport),
                    ],
                    data / "scheduler.log",
                )
                children.append(proc)
                wait_ready(f"http://127.0.0.1:{mport}/healthz", proc)
                return proc.pid

            r = asyncio.run(run(args, url, [], start_scheduler))
        finally:
            for proc in reversed(children):
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
    print(f"nodes={args.nodes} pods={args.pods} bound={r['bound']}")
    print(f"pods/s overall:        {r['overall']:8.1f}")
    print(f"pods/s steady state:   {r['steady']:8.1f}   (target >= 300)")
    print(f"create->bound p50:     {r['p50'] * 1000:8.1f} ms")
    print(f"create->bound p99:     {r['p99'] * 1000:8.1f} ms")
    print(f"scheduler RSS:         {r['rss_mib']:8.1f} MiB (peak {r['hwm_mib']:.1f} MiB)")
    print(
        f"floor (creates/s):     {r['floor']:8.1f}   ratio steady/floor "
        f"{r['steady'] / r['floor']:.2f}"
    )
    print(
        f"algorithm only:        {algo[0]:8.1f} pods/s (adaptive percentageOfNodesToScore), "
        f"{algo[10]:.1f} pods/s (10 %)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
