"""Controller benchmark: ``python -m bench.controllers [--replicas N] [--workers W]``.

A controller-manager (its own process, no leader election) against an API server on a temp dir,
no kubelet: this process marks pods Ready as they appear (like a kubelet would, one status
PATCH per pod). Figures:

1. a Deployment of N replicas (default 1,000): time until all pods exist and until the
   Deployment's status says complete (what ``kubectl rollout status`` waits for);
2. a rolling update of those N replicas (default 25%/25%): time to complete and the peak number
   of live pods (the bound is N + maxSurge).

Floor, measured in the same run: N pods created straight through the API with the same
concurrency the ReplicaSet controller reaches (slow-start batches up to 500), then N status
patches; the ratios say how close the controllers come to the API's own throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench.common import apiserver, rss_mib
from controllers.objects import is_deleting, is_pod_ready
from machinery import errors
from machinery.client import AsyncClient
from machinery.informer import Informer
from machinery.kinds import lookup

NS_RT, POD, DEPLOY = lookup("namespaces"), lookup("pods"), lookup("deployments")


def ready_patch() -> dict:
    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ts}],
        }
    }


class Kubelet:
    """Marks every new pod in a namespace Ready; tracks the peak number of live pods."""

    def __init__(self, client: AsyncClient, namespace: str, concurrency: int = 32) -> None:
        self.client, self.ns = client, namespace
        self.informer = Informer(client, POD, namespace=namespace)
        self.informer.add_handler(self._on_pod, lambda _o, n: self._count(), lambda _o: None)
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.concurrency = concurrency
        self.peak = 0
        self.tasks: list[asyncio.Task] = []

    def _count(self) -> None:
        live = sum(1 for p in self.informer.store.list() if not is_deleting(p))
        self.peak = max(self.peak, live)

    def _on_pod(self, pod: dict) -> None:
        self._count()
        if not is_pod_ready(pod) and not is_deleting(pod):
            self.queue.put_nowait(pod["metadata"]["name"])

    async def _worker(self) -> None:
        while True:
            name = await self.queue.get()
            try:
                await self.client.patch(POD, name, ready_patch(), self.ns, subresource="status")
            except errors.NotFound:
                pass

    def live(self) -> int:
        return sum(1 for p in self.informer.store.list() if not is_deleting(p))

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(self.informer.run())]
        self.tasks += [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
        await self.informer.wait_synced(30)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def wait_for(check, timeout: float, what: str) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if await check():
            return time.perf_counter() - start
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


def deployment(ns: str, replicas: int, image: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench", "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


async def complete(client: AsyncClient, ns: str, image: str) -> bool:
    d = await client.get(DEPLOY, "bench", ns)
    st, want = d.get("status") or {}, d["spec"]["replicas"]
    return (
        st.get("observedGeneration", 0) >= d["metadata"]["generation"]
        and st.get("updatedReplicas") == want == st.get("replicas")
        and st.get("availableReplicas", 0) >= want
        and d["spec"]["template"]["spec"]["containers"][0]["image"] == image
    )


async def floor(client: AsyncClient, n: int) -> float:
    """Seconds to create n pods and mark them ready straight through the API."""
    ns = "bench-floor"
    await client.create(NS_RT, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "floor-"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    start = time.perf_counter()
    names: list[str] = []
    done, batch = 0, 1
    while done < n:
        size = min(batch, n - done, 500)
        pods = await asyncio.gather(*(client.create(POD, body, ns) for _ in range(size)))
        names += [p["metadata"]["name"] for p in pods]
        done += size
        batch *= 2
    sem = asyncio.Semaphore(32)

    async def mark(name: str) -> None:
        async with sem:
            await client.patch(POD, name, ready_patch(), ns, subresource="status")

    await asyncio.gather(*(mark(n) for n in names))
    return time.perf_counter() - start


async def run(url: str, api_pid: int, replicas: int, workers: int) -> None:
    client = AsyncClient(url, timeout=120)
    floor_s = await floor(client, replicas)
    ns = "bench"
    await client.create(NS_RT, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    cmd = [
        sys.executable,
        "-m",
        "controllers.manager",
        "--server",
        url,
        "--port",
        "0",
        "--no-leader-elect",
        "--workers",
        str(workers),
    ]
    manager = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kubelet = Kubelet(client, ns)
    await kubelet.start()
    try:
        t0 = time.perf_counter()
        await client.create(DEPLOY, deployment(ns, replicas, "app:1"), ns)

        async def all_pods() -> bool:
            return kubelet.live() >= replicas

        pods_s = await wait_for(all_pods, 600, "all pods")
        converge_s = (
            await wait_for(lambda: complete(client, ns, "app:1"), 600, "status convergence")
        ) + pods_s
        total_up = time.perf_counter() - t0

        kubelet.peak = kubelet.live()

        patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "app:2"}]}}}}
        await client.patch(DEPLOY, "bench", patch, ns, patch_type="strategic")
        rollout_s = await wait_for(lambda: complete(client, ns, "app:2"), 900, "rollout")
        surge = math.ceil(replicas * 0.25)
        print(f"controllers benchmark: {replicas} replicas, {workers} workers per controller")
        rows = [
            (f"floor: {replicas} pods created + marked ready via API", floor_s, None),
            (f"scale-up: all {replicas} pods exist", pods_s, None),
            ("scale-up: status converged (rollout complete)", converge_s, total_up / floor_s),
            ("rolling update 25%/25%: complete", rollout_s, rollout_s / floor_s),
        ]
        for label, seconds, ratio in rows:
            tail = f"   {ratio:5.2f}x floor" if ratio is not None else ""
            print(f"  {label:<52} {seconds:8.2f} s{tail}")
        print(f"  rolling update: peak live pods {kubelet.peak} (bound {replicas + surge})")
        print(
            f"  RSS: controller-manager {rss_mib(manager.pid):.0f} MiB, "
            f"API server {rss_mib(api_pid):.0f} MiB"
        )
    finally:
        manager.terminate()
        try:
            manager.wait(15)
        except subprocess.TimeoutExpired:
            manager.kill()
        await kubelet.stop()
        await client.aclose()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.controllers")
    p.add_argument("--replicas", type=int, default=1000)
    p.add_argument("--workers", type=int, default=5)
    args = p.parse_args(argv)
    with apiserver() as (url, pid):
        asyncio.run(run(url, pid, args.replicas, args.workers))


if __name__ == "__main__":
    main()
