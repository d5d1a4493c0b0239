"""The controller-manager's command line (per-controller worker counts) and its probe and
metrics endpoints, scraped over HTTP."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import httpx
import pytest

from controllers.manager import (
    CONCURRENCY_FLAGS,
    CONTROLLERS,
    ControllerManager,
    parse_args,
    serve_health,
    worker_counts,
)
from machinery.controller import run_workers
from machinery.workqueue import WorkQueue

_seq = itertools.count()


def test_workers_is_the_default_for_every_controller():
    counts = worker_counts(parse_args(["--workers", "3"]))
    assert counts == dict.fromkeys(CONTROLLERS, 3)


@pytest.mark.parametrize(
    ("flag", "controller"),
    [
        ("--concurrent-deployment-syncs", "deployment"),
        ("--concurrent-replicaset-syncs", "replicaset"),
        ("--concurrent-gc-syncs", "garbagecollector"),
        ("--concurrent-namespace-syncs", "namespace"),
        ("--concurrent-service-endpoint-syncs", "endpointslice"),
        ("--concurrent-endpointslice-syncs", "endpointslice"),
        ("--concurrent-horizontal-pod-autoscaler-syncs", "horizontalpodautoscaler"),
        ("--concurrent-resource-quota-syncs", "resourcequota"),
    ],
    ids=lambda v: v.removeprefix("--"),
)
def test_concurrency_flag_sets_only_its_controller(flag, controller):
    counts = worker_counts(parse_args(["--workers", "2", flag, "7"]))
    assert counts[controller] == 7
    assert {n: c for n, c in counts.items() if n != controller} == {
        n: 2 for n in CONTROLLERS if n != controller
    }


def test_every_concurrency_flag_names_a_controller():
    assert set(CONCURRENCY_FLAGS) <= set(CONTROLLERS)


def test_the_persistent_volume_binder_runs_by_default():
    assert "persistentvolume-binder" in parse_args([]).controllers.split(",")
    assert "persistentvolume-binder" in ControllerManager(None).enabled  # type: ignore[arg-type]
    _, component = CONTROLLERS["persistentvolume-binder"]
    assert component == "persistentvolume-controller"  # Kubernetes' event source


# -- /healthz, /readyz, /metrics ----------------------------------------------------------------


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[ControllerManager, httpx.AsyncClient]]:
    manager = ControllerManager(None, leader_elect=False)  # type: ignore[arg-type]
    server = await serve_health(manager, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        try:
            yield manager, http
        finally:
            server.close()
            await server.wait_closed()


async def test_healthz_and_readyz_follow_the_caches(endpoint):
    manager, http = endpoint
    assert (await http.get("/healthz")).text == "ok"
    assert (await http.get("/readyz")).status_code == 200  # a standby is ready
    manager.leading, manager.synced = True, False
    r = await http.get("/readyz")
    assert (r.status_code, r.text) == (503, "caches not synced")
    assert (await http.get("/healthz")).status_code == 200  # alive all the same
    manager.synced = True
    assert (await http.get("/readyz")).status_code == 200
    assert (await http.get("/nothing")).status_code == 404


async def until(check, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def _sample(text: str, metric: str, name: str) -> float | None:
    prefix = f'{metric}{{name="{name}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


async def test_metrics_show_queue_depth_latency_and_errors(endpoint):
    _, http = endpoint
    name = f"probe-{next(_seq)}"
    queue = WorkQueue(name=name)
    release = asyncio.Event()
    failed: set[str] = set()
    succeeded: set[str] = set()

    async def reconcile(key: str) -> None:
        await release.wait()
        if key not in failed:  # each key fails once, then succeeds
            failed.add(key)
            raise RuntimeError("transient")
        succeeded.add(key)

    for key in ("a", "b", "c"):
        queue.add(key)
    workers = asyncio.create_task(run_workers(queue, reconcile, 1, name=name))
    await until(lambda: len(queue) == 2)  # the one worker holds "a"; "b" and "c" wait
    text = (await http.get("/metrics")).text
    assert _sample(text, "tugboat_workqueue_depth", name) == 2.0
    assert not _sample(text, "tugboat_controller_reconcile_errors_total", name)  # none yet

    release.set()
    await until(lambda: len(succeeded) == 3)
    queue.shutdown()
    await workers
    r = await http.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=")  # Prometheus text
    assert _sample(r.text, "tugboat_workqueue_depth", name) == 0.0
    assert _sample(r.text, "tugboat_controller_reconcile_errors_total", name) == 3.0
    assert _sample(r.text, "tugboat_controller_reconcile_duration_seconds_count", name) == 6.0
