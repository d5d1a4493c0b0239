"""High-availability benchmark: ``python -m bench.ha [--creates N] [--clients C] [--postgres URL]``.

Compares one API server on SQLite with API servers sharing one PostgreSQL store (a fresh schema,
dropped afterwards; the URL defaults to ``$TUGBOAT_TEST_POSTGRES``):

* create throughput: N pod creates over C keep-alive clients, spread evenly over the servers,
  with the ``GET /version`` round trip at the same concurrency as the floor;
* watch delivery: a write sent to server A → the event read by W watchers on server B
  (on the same server for SQLite, and for PostgreSQL as a same-server reference);
* failover: two controller-managers (one per server) on a Lease; the leader is killed with
  SIGKILL and a ReplicaSet scaled at once; reported are the time until the standby holds the
  Lease and until the new leader's first reconcile (the ReplicaSet's new pod exists).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import orjson
from sqlalchemy import create_engine, text

from bench.api import pod, run_clients
from bench.common import percentile, summary
from bench.http import watch_delivery

NS = "bench"
T = TypeVar("T")


# -- set-ups ---------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """A fresh schema on ``base`` (selected through search_path), dropped on exit."""
    schema = f"bench_ha_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@contextlib.contextmanager
def servers(count: int, storage: str | None) -> Iterator[tuple[list[str], Path]]:
    """``count`` API servers on ``storage`` (each on its own SQLite file when None)."""
    from tests.conftest import start_apiserver

    with tempfile.TemporaryDirectory(prefix="tug-bench-ha-") as d:
        started = []
        try:
            for i in range(count):
                (Path(d) / str(i)).mkdir()
                started.append(start_apiserver(Path(d) / str(i), storage=storage))
            with httpx.Client(base_url=started[0].url) as c:
                c.post("/api/v1/namespaces", json={"metadata": {"name": NS}})
            yield [s.url for s in started], Path(d)
        finally:
            for s in started:
                s.stop()


# -- create throughput -----------------------------------------------------------------------


async def create_throughput(urls: list[str], creates: int, clients: int) -> None:
    """Creates spread over ``urls``; prints one summary line with the /version floor."""
    per = max(1, clients // len(urls))
    path = f"/api/v1/namespaces/{NS}/pods"

    async def one_server(url: str, jobs: list[int], probe: bool) -> tuple[list[float], float]:
        if probe:
            return await run_clients(url, per, jobs, lambda c, _: c.get("/version"))
        return await run_clients(url, per, jobs, lambda c, i: c.post(path, orjson.dumps(pod(i))))

    for probe in (True, False):
        shares = [list(range(k, creates, len(urls))) for k in range(len(urls))]
        results = await asyncio.gather(
            *(one_server(u, jobs, probe) for u, jobs in zip(urls, shares, strict=True))
        )
        latencies = [x for lat, _ in results for x in lat]
        elapsed = max(el for _, el in results)
        if probe:
            floor = len(latencies) / elapsed
            print(summary(f"  floor: GET /version x{per * len(urls)}", latencies, elapsed))
        else:
            print(summary(f"  create x{per * len(urls)}", latencies, elapsed, floor))


# -- watch delivery --------------------------------------------------------------------------


def print_delivery(label: str, delays: list[float]) -> None:
    print(
        f"  {label:<32} {len(delays):>9} events   p50 {percentile(delays, 50) * 1e3:7.2f} ms"
        f"   p99 {percentile(delays, 99) * 1e3:7.2f} ms"
    )


# -- failover --------------------------------------------------------------------------------

LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/tug-controller-manager"


def failover(urls: list[str], log_dir: Path, timers: tuple[float, float, float]) -> None:
    """Kill the leading controller-manager; print takeover and first-reconcile times."""
    manager = [sys.executable, "-m", "controllers.manager", "--port", "0"]
    lease_flags = [
        "--leader-elect-lease-duration",
        str(timers[0]),
        "--leader-elect-renew-deadline",
        str(timers[1]),
        "--leader-elect-retry-period",
        str(timers[2]),
    ]
    procs: dict[str, subprocess.Popen] = {}
    for side, url in zip("ab", [urls[0], urls[-1]], strict=True):
        log = open(log_dir / f"manager-{side}.log", "ab")  # noqa: SIM115 - closed with the process
        procs[f"manager-{side}"] = subprocess.Popen(
            [*manager, "--server", url, "--identity", f"manager-{side}", *lease_flags],
            stdout=log,
            stderr=log,
        )
    http = httpx.Client(base_url=urls[-1], timeout=10)
    try:

        def holder() -> str | None:
            r = http.get(LEASE)
            return r.json()["spec"].get("holderIdentity") if r.status_code == 200 else None

        def pods() -> int:
            items = http.get(f"/api/v1/namespaces/{NS}/pods", params={"labelSelector": "app=ha"})
            return len(items.json()["items"])

        leader = _wait(holder, 60, "a leader")
        rs_path = f"/apis/apps/v1/namespaces/{NS}/replicasets"
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "ha"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "ha"}},
                "template": {
                    "metadata": {"labels": {"app": "ha"}},
                    "spec": {"containers": [{"name": "c", "image": "app:1"}]},
                },
            },
        }
        http.post(rs_path, json=rs).raise_for_status()
        _wait(lambda: pods() == 1, 60, "the leader's first pod")
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(10)
        killed = time.monotonic()
        http.patch(
            f"{rs_path}/ha",
            json={"spec": {"replicas": 2}},
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()
        standby = next(n for n in procs if n != leader)
        took_lease = took_reconcile = None
        deadline = killed + 10 * timers[0]
        while time.monotonic() < deadline and took_reconcile is None:
            if took_lease is None and holder() == standby:
                took_lease = time.monotonic() - killed
            if pods() == 2:
                took_reconcile = time.monotonic() - killed
            time.sleep(0.02)
        if took_lease is None or took_reconcile is None:
            raise RuntimeError("the standby did not take over")
        print(
            f"  {'failover (lease ' + '/'.join(f'{t:g}' for t in timers) + ' s)':<32} "
            f"lease taken {took_lease:6.2f} s   first reconcile {took_reconcile:6.2f} s"
        )
    finally:
        http.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _wait(check: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


# -- main ------------------------------------------------------------------------------------


async def one_setup(title: str, urls: list[str], log_dir: Path, args: argparse.Namespace) -> None:
    print(title)
    await create_throughput(urls, args.creates, args.clients)
    if len(urls) > 1:
        same = await watch_delivery(urls[0], urls[0], NS, args.watchers, args.writes)
        print_delivery(f"watch, write A → watch A x{args.watchers}", same)
        across = await watch_delivery(urls[0], urls[1], NS, args.watchers, args.writes)
        print_delivery(f"watch, write A → watch B x{args.watchers}", across)
    else:
        same = await watch_delivery(urls[0], urls[0], NS, args.watchers, args.writes)
        print_delivery(f"watch, write → watch x{args.watchers}", same)
    failover(urls, log_dir, (args.lease_duration, args.renew_deadline, args.retry_period))


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ha")
    p.add_argument("--creates", type=int, default=2000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--watchers", type=int, default=20)
    p.add_argument("--writes", type=int, default=50)
    p.add_argument("--lease-duration", type=float, default=15, help="Kubernetes default: 15")
    p.add_argument("--renew-deadline", type=float, default=10)
    p.add_argument("--retry-period", type=float, default=2)
    p.add_argument("--postgres", default=os.environ.get("TUGBOAT_TEST_POSTGRES"))
    args = p.parse_args()
    print(
        f"tugboat HA benchmark: {args.creates} creates x{args.clients} clients, "
        f"{args.watchers} watchers x {args.writes} writes, loopback HTTP/1.1"
    )
    with servers(1, None) as (urls, d):
        asyncio.run(one_setup("1 API server, SQLite", urls, d, args))
    if not args.postgres:
        print("PostgreSQL: skipped (set --postgres or TUGBOAT_TEST_POSTGRES)")
        return
    with postgres_schema(args.postgres) as store, servers(2, store) as (urls, d):
        asyncio.run(one_setup("2 API servers, one PostgreSQL", urls, d, args))


if __name__ == "__main__":
    main()
