"""The worker loop every controller runs: take a key, reconcile it, decide when to see it again.

``reconcile(key)`` is level-triggered and idempotent; its outcome picks the next step:

==============================================  ==============================================
outcome                                         next step
==============================================  ==============================================
``None`` or ``Result()``                        done: forget the key's backoff
``Result(requeue_after=T)``                     forget the backoff, see the key again after T
raises ``errors.NotFound``                      done (the object is gone; nothing to do)
raises ``errors.PermanentError``                log, forget: retrying cannot help
raises ``errors.TemporaryError(delay=D)``       retry with backoff, not sooner than D
raises ``errors.Conflict`` or anything else     retry with per-key exponential backoff
==============================================  ==============================================

A key is never reconciled by two workers at once (the queue guarantees it), and
``queue.done(key)`` is always called. With ``max_retries`` set, a key that failed that many
times in a row is dropped (logged) until something adds it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from machinery import errors
from machinery.workqueue import WorkQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for: ``requeue_after`` seconds until the next look, or None."""

    requeue_after: float | None = None


Reconcile = Callable[[str], Awaitable["Result | None"]]


class ControllerMetrics:
    """Prometheus metrics for controller loops, labelled by controller ``name``."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.registry = registry
        self.depth = Gauge(
            "tugboat_workqueue_depth",
            "Keys waiting in the work queue.",
            ["name"],
            registry=registry,
        )
        self.reconcile_seconds = Histogram(
            "tugboat_controller_reconcile_duration_seconds",
            "Time spent in one reconcile.",
            ["name"],
            registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.reconciles = Counter(
            "tugboat_controller_reconcile_total",
            "Reconciles by outcome.",
            ["name", "result"],
            registry=registry,
        )
        self.errors = Counter(
            "tugboat_controller_reconcile_errors_total",
            "Reconciles that raised.",
            ["name"],
            registry=registry,
        )


_default_metrics: ControllerMetrics | None = None


def default_metrics() -> ControllerMetrics:
    """The process-wide metrics on the default Prometheus registry (created once)."""
    global _default_metrics
    if _default_metrics is None:
        _default_metrics = ControllerMetrics()
    return _default_metrics


async def run_workers(
    queue: WorkQueue,
    reconcile: Reconcile,
    workers: int = 2,
    *,
    name: str = "",
    metrics: ControllerMetrics | None = None,
    max_retries: int | None = None,
) -> None:
    """Run ``workers`` concurrent workers until the queue is shut down and drained.

    Cancelling this coroutine cancels every worker.
    """
    name = name or queue.name
    m = metrics or default_metrics()
    m.depth.labels(name).set_function(lambda: len(queue))
    async with asyncio.TaskGroup() as tg:
        for _ in range(max(1, workers)):
            tg.create_task(_worker(queue, reconcile, name, m, max_retries))


async def _worker(
    queue: WorkQueue, reconcile: Reconcile, name: str, m: ControllerMetrics, max_retries: int | None
) -> None:
    while (key := await queue.get()) is not None:
        try:
            await process_one(queue, reconcile, key, name=name, metrics=m, max_retries=max_retries)
        finally:
            queue.done(key)


async def process_one(
    queue: WorkQueue,
    reconcile: Reconcile,
    key: str,
    *,
    name: str = "",
    metrics: ControllerMetrics | None = None,
    max_retries: int | None = None,
) -> str:
    """Reconcile one key already taken from ``queue`` and schedule what comes next (see the
    module table). Does not call ``queue.done``. Returns the outcome label."""
    m = metrics or default_metrics()
    start = time.perf_counter()
    try:
        result = await reconcile(key)
    except asyncio.CancelledError:
        raise
    except errors.NotFound:
        queue.forget(key)
        outcome = "not_found"
    except errors.PermanentError as e:
        log.error("%s: %s failed permanently: %s", name, key, e)
        queue.forget(key)
        outcome = "permanent_error"
    except Exception as e:  # every other failure is retried with backoff
        outcome = "conflict" if isinstance(e, errors.Conflict) else "error"
        m.errors.labels(name).inc()
        if max_retries is not None and queue.num_requeues(key) >= max_retries:
            log.error("%s: dropping %s after %d retries: %s", name, key, max_retries, e)
            queue.forget(key)
            outcome = "dropped"
        else:
            delay = e.delay if isinstance(e, errors.TemporaryError) else 0.0
            if outcome == "conflict":
                log.debug("%s: %s conflict, retrying: %s", name, key, e)
            else:
                log.warning(
                    "%s: %s failed, retrying: %s",
                    name,
                    key,
                    e,
                    exc_info=not isinstance(e, errors.TemporaryError | errors.ApiError),
                )
            queue.add_rate_limited(key, min_delay=delay)
    else:
        queue.forget(key)
        if result is not None and result.requeue_after is not None:
            queue.add_after(key, result.requeue_after)
            outcome = "requeue_after"
        else:
            outcome = "success"
    finally:
        m.reconcile_seconds.labels(name).observe(time.perf_counter() - start)
    m.reconciles.labels(name, outcome).inc()
    return outcome
