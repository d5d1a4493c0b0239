"""API server benchmark: ``python -m bench.api [--pods N]``.

With N pods stored (default 10,000) it measures create, get, list (all and by label), update,
and watch delivery (write sent → event received by 100 watchers), at 1 and 16 concurrent
clients, and two floors measured in the same run: an HTTP round trip to a trivial endpoint
(``/version``) on the same server, and a raw SQLAlchemy insert of the same JSON into SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import httpx
import orjson
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, create_engine, event

from bench.common import apiserver, percentile, rss_mib, summary
from bench.http import Connection, Reply, watch_delivery

NS = "bench"


def pod(i: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"pod-{i}", "labels": {"app": f"app-{i % 100}", "tier": "bench"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox:1.35",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ]
        },
    }


async def run_clients(url: str, clients: int, jobs: list, make) -> tuple[list[float], float]:
    """Run ``make(connection, job)`` for every job over ``clients`` concurrent connections."""
    latencies: list[float] = []
    queue = list(reversed(jobs))
    host, port = url.removeprefix("http://").split(":")

    async def worker() -> None:
        async with Connection(host, int(port)) as c:
            while queue:
                job = queue.pop()
                t0 = time.perf_counter()
                r = await make(c, job)
                latencies.append(time.perf_counter() - t0)
                if r.status_code >= 400:
                    raise RuntimeError(f"{r.status_code}: {r.body[:200]!r}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, time.perf_counter() - start


def sqlite_floor(n: int) -> float:
    """Raw SQLAlchemy inserts of the pod JSON, one durable commit each (ops/s)."""
    with tempfile.TemporaryDirectory() as d:
        engine = create_engine(f"sqlite:///{d}/floor.db")

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _):  # type: ignore[no-untyped-def]
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")

        meta = MetaData()
        t = Table(
            "t",
            meta,
            Column("k", String, primary_key=True),
            Column("rev", Integer),
            Column("v", LargeBinary),
        )
        meta.create_all(engine)
        body = orjson.dumps(pod(0))
        start = time.perf_counter()
        for i in range(n):
            with engine.begin() as conn:
                conn.execute(t.insert().values(k=f"p{i}", rev=i, v=body))
        return n / (time.perf_counter() - start)


async def main_async(n: int) -> None:
    with apiserver() as (url, pid):
        async with httpx.AsyncClient(base_url=url) as c:
            await c.post("/api/v1/namespaces", json={"metadata": {"name": NS}})
        path = f"/api/v1/namespaces/{NS}/pods"
        print(f"tugboat API server benchmark: {n} pods, SQLite, loopback HTTP/1.1 keep-alive")

        floors = {}
        for clients in (1, 16):
            lat, el = await run_clients(
                url, clients, list(range(2000)), lambda c, _: c.get("/version")
            )
            floors[clients] = len(lat) / el
            print(summary(f"floor: GET /version x{clients}", lat, el))
        db_floor = sqlite_floor(2000)
        print(f"{'floor: raw SQLAlchemy insert':<34} {db_floor:>9.0f} ops/s")

        half = n // 2
        lat, el = await run_clients(
            url, 1, list(range(half)), lambda c, i: c.post(path, orjson.dumps(pod(i)))
        )
        print(summary("create x1", lat, el, floors[1]))
        lat, el = await run_clients(
            url, 16, list(range(half, n)), lambda c, i: c.post(path, orjson.dumps(pod(i)))
        )
        print(summary("create x16", lat, el, floors[16]))
        print(f"{'':<34} create x16 vs raw insert: {len(lat) / el / db_floor:5.2f}x")

        for clients in (1, 16):
            lat, el = await run_clients(
                url, clients, list(range(3000)), lambda c, i: c.get(f"{path}/pod-{i % n}")
            )
            print(summary(f"get x{clients}", lat, el, floors[clients]))

        lat, el = await run_clients(url, 1, list(range(10)), lambda c, _: c.get(path))
        print(summary(f"list all {n} pods x1", lat, el))
        lat, el = await run_clients(
            url,
            4,
            list(range(40)),
            lambda c, i: c.get(f"{path}?labelSelector=app%3Dapp-{i % 100}"),
        )
        print(summary("list by label x4", lat, el))

        async def update(c: Connection, i: int) -> Reply:
            body = orjson.dumps({"metadata": {"labels": {"u": str(i)}}})
            return await c.patch(f"{path}/pod-{i % n}", body, "application/merge-patch+json")

        for clients, jobs in ((1, range(0, 1000)), (16, range(1000, 4000))):
            lat, el = await run_clients(url, clients, list(jobs), update)
            print(summary(f"update (merge patch) x{clients}", lat, el, floors[clients]))

        delays = await watch_delivery(url, url, NS, 100, 50)
        print(
            f"{'watch delivery (sent -> event) x100':<34} {len(delays):>9} events   p50 "
            f"{percentile(delays, 50) * 1e3:7.2f} ms   p99 {percentile(delays, 99) * 1e3:7.2f} ms"
        )
        print(f"{'API server RSS':<34} {rss_mib(pid):9.0f} MiB")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pods", type=int, default=10000)
    asyncio.run(main_async(p.parse_args().pods))


if __name__ == "__main__":
    main()
