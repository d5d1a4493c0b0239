"""WorkQueue (the client-go contract) and the controller run loop, driven by a FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from machinery import errors
from machinery.controller import ControllerMetrics, Result, process_one, run_workers
from machinery.workqueue import FakeClock, WorkQueue
from tests.unit.fake_apiserver import eventually


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> WorkQueue:
    return WorkQueue(name="test", clock=clock)


async def settle(clock: FakeClock, waiters: int) -> None:
    """Let the loop run until ``waiters`` coroutines sleep on the clock (bounded)."""
    for _ in range(1000):
        if clock.waiters >= waiters:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"expected {waiters} sleepers, have {clock.waiters}")


async def get_now(queue: WorkQueue) -> str | None:
    """A get that must not block: the key is already there."""
    return await asyncio.wait_for(queue.get(), timeout=1)


async def test_a_waiting_key_is_queued_once(queue: WorkQueue) -> None:
    for key in ["a", "b", "a", "c", "b", "a"]:
        queue.add(key)
    assert len(queue) == 3
    assert [await get_now(queue) for _ in range(3)] == ["a", "b", "c"]
    assert len(queue) == 0


async def test_a_key_is_never_handed_out_while_processing(queue: WorkQueue) -> None:
    queue.add("a")
    assert await get_now(queue) == "a"
    queue.add("a")  # added while in flight: dirty, not queued
    assert len(queue) == 0
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not second.done()
    queue.done("a")  # now it comes back, exactly once
    assert await asyncio.wait_for(second, 1) == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_many_adds_while_in_flight_requeue_once(queue: WorkQueue) -> None:
    queue.add("a")
    await get_now(queue)
    for _ in range(5):
        queue.add("a")
    queue.done("a")
    assert len(queue) == 1


async def test_concurrent_workers_never_share_a_key(queue: WorkQueue) -> None:
    active: set[str] = set()
    overlaps: list[str] = []
    processed: list[str] = []

    async def worker() -> None:
        while (key := await queue.get()) is not None:
            if key in active:
                overlaps.append(key)
            active.add(key)
            await asyncio.sleep(0)
            if len(processed) < 30:
                queue.add(key)  # re-add while in flight
            await asyncio.sleep(0)
            processed.append(key)
            active.discard(key)
            queue.done(key)

    for key in ("x", "y", "z"):
        queue.add(key)
    workers = [asyncio.create_task(worker()) for _ in range(4)]
    for _ in range(1000):
        if len(processed) >= 30 and len(queue) == 0 and not active:
            break
        await asyncio.sleep(0)
    queue.shutdown()
    await asyncio.wait_for(asyncio.gather(*workers), 1)
    assert overlaps == []
    assert len(processed) >= 30
    assert set(processed) == {"x", "y", "z"}


@pytest.mark.parametrize(
    ("base", "cap", "expected"),
    [
        (0.005, 1000.0, [0.005, 0.01, 0.02, 0.04, 0.08]),
        (1.0, 5.0, [1.0, 2.0, 4.0, 5.0, 5.0]),
    ],
    ids=["grows-exponentially", "capped-at-max-delay"],
)
async def test_rate_limited_backoff(
    clock: FakeClock, base: float, cap: float, expected: list[float]
) -> None:
    q = WorkQueue(clock=clock, base_delay=base, max_delay=cap, rate=0)
    for n, delay in enumerate(expected):
        q.add_rate_limited("k")
        assert q.num_requeues("k") == n + 1
        clock.step(delay * 0.99)
        assert len(q) == 0, f"retry {n + 1} came back before {delay}s"
        clock.step(delay * 0.01 + 1e-9)
        assert len(q) == 1, f"retry {n + 1} not back after {delay}s"
        assert await get_now(q) == "k"
        q.done("k")


async def test_forget_resets_backoff(clock: FakeClock) -> None:
    q = WorkQueue(clock=clock, base_delay=1.0, rate=0)
    for _ in range(3):
        q.add_rate_limited("k")
    assert q.num_requeues("k") == 3
    q.forget("k")
    assert q.num_requeues("k") == 0
    q.add_rate_limited("other")
    clock.step(1.0)
    # "k" was scheduled at 1s (its first backoff) and is due too; both are out now
    assert len(q) == 2


async def test_token_bucket_limits_overall_rate(clock: FakeClock) -> None:
    q = WorkQueue(clock=clock, base_delay=0.0, rate=10, burst=2)
    for key in ("a", "b", "c", "d"):
        q.add_rate_limited(key)
    assert len(q) == 2  # the burst goes straight through
    clock.step(0.1)
    assert len(q) == 3  # then one every 1/rate seconds
    clock.step(0.1)
    assert len(q) == 4


async def test_add_after_waits_for_the_clock(queue: WorkQueue, clock: FakeClock) -> None:
    queue.add_after("late", 5.0)
    queue.add_after("early", 1.0)
    getter = asyncio.create_task(queue.get())
    await settle(clock, 1)
    assert not getter.done()
    clock.step(0.9)
    await asyncio.sleep(0)
    assert not getter.done()
    clock.step(0.2)
    assert await asyncio.wait_for(getter, 1) == "early"
    assert len(queue) == 0
    clock.step(4.0)
    assert len(queue) == 1
    assert await get_now(queue) == "late"


async def test_add_after_keeps_the_earliest_time(queue: WorkQueue, clock: FakeClock) -> None:
    queue.add_after("k", 10.0)
    queue.add_after("k", 2.0)
    queue.add_after("k", 8.0)
    clock.step(2.0)
    assert len(queue) == 1
    assert await get_now(queue) == "k"
    queue.done("k")
    clock.step(10.0)
    assert len(queue) == 0  # the later schedules were folded into the earliest


async def test_add_after_zero_is_immediate(queue: WorkQueue) -> None:
    queue.add_after("k", 0)
    assert len(queue) == 1


async def test_shutdown_drains_then_returns_none(queue: WorkQueue, clock: FakeClock) -> None:
    queue.add("a")
    queue.add("b")
    queue.add_after("never", 1.0)
    queue.shutdown()
    queue.add("c")  # ignored
    assert await get_now(queue) == "a"
    assert await get_now(queue) == "b"
    assert await get_now(queue) is None
    clock.step(5.0)
    assert await get_now(queue) is None


async def test_shutdown_wakes_blocked_getters(queue: WorkQueue) -> None:
    getters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    queue.shutdown()
    assert await asyncio.wait_for(asyncio.gather(*getters), 1) == [None, None, None]


async def test_a_blocked_getter_gets_a_new_key(queue: WorkQueue) -> None:
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.add("k")
    assert await asyncio.wait_for(getter, 1) == "k"


async def test_cancelled_getter_does_not_swallow_a_key(queue: WorkQueue) -> None:
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.add("k")  # wakes `first`
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert await asyncio.wait_for(second, 1) == "k"


# -- the controller run loop (machinery.controller) -------------------------------------------


@pytest.fixture
def metrics() -> ControllerMetrics:
    return ControllerMetrics(CollectorRegistry())


def sample(metrics: ControllerMetrics, name: str, labels: dict[str, str]) -> float | None:
    assert metrics.registry is not None
    return metrics.registry.get_sample_value(name, labels)


def _raise(exc: BaseException) -> Callable[[str], Awaitable[Result | None]]:
    async def reconcile(key: str) -> Result | None:
        raise exc

    return reconcile


def _return(value: Result | None) -> Callable[[str], Awaitable[Result | None]]:
    async def reconcile(key: str) -> Result | None:
        return value

    return reconcile


# (reconcile, outcome, seconds until the key is back or None, requeues counted afterwards)
OUTCOMES = [
    ("done", _return(None), "success", None, 0),
    ("done-result", _return(Result()), "success", None, 0),
    ("requeue-after", _return(Result(requeue_after=5.0)), "requeue_after", 5.0, 0),
    ("not-found", _raise(errors.NotFound("gone")), "not_found", None, 0),
    ("permanent", _raise(errors.PermanentError("bad spec")), "permanent_error", None, 0),
    ("conflict", _raise(errors.Conflict("stale")), "conflict", 1.0, 2),
    ("error", _raise(RuntimeError("bug")), "error", 1.0, 2),
    ("temporary", _raise(errors.TemporaryError("later", delay=30.0)), "error", 30.0, 2),
]


@pytest.mark.parametrize(
    ("reconcile", "outcome", "back_after", "requeues"),
    [o[1:] for o in OUTCOMES],
    ids=[o[0] for o in OUTCOMES],
)
async def test_process_one_outcomes(
    clock: FakeClock,
    metrics: ControllerMetrics,
    reconcile: Callable[[str], Awaitable[Result | None]],
    outcome: str,
    back_after: float | None,
    requeues: int,
) -> None:
    q = WorkQueue(clock=clock, base_delay=1.0, rate=0)
    q.add_rate_limited("k")  # one earlier failure: done/forget must reset it
    clock.step(1.0)
    assert await get_now(q) == "k"
    got = await process_one(q, reconcile, "k", name="t", metrics=metrics)
    q.done("k")
    assert got == outcome
    assert q.num_requeues("k") == requeues
    if back_after is None:
        clock.step(10_000)
        assert len(q) == 0
    else:
        # a failure backs off base*2^1 = 2 s here, unless the error asks for longer
        expected = max(back_after, 2.0) if requeues else back_after
        clock.step(expected * 0.99)
        assert len(q) == 0
        clock.step(expected * 0.02)
        assert len(q) == 1
    assert (
        sample(metrics, "tugboat_controller_reconcile_total", {"name": "t", "result": outcome}) == 1
    )
    assert (
        sample(metrics, "tugboat_controller_reconcile_duration_seconds_count", {"name": "t"}) == 1
    )


async def test_max_retries_drops_the_key(clock: FakeClock, metrics: ControllerMetrics) -> None:
    q = WorkQueue(clock=clock, base_delay=1.0, rate=0)
    failing = _raise(RuntimeError("always"))
    outcomes = []
    for _ in range(4):
        clock.step(100)
        key = await get_now(q) if len(q) else "k"
        outcomes.append(await process_one(q, failing, key, metrics=metrics, max_retries=3))
        q.done(key)
    assert outcomes == ["error", "error", "error", "dropped"]
    clock.step(10_000)
    assert len(q) == 0


async def test_run_workers_processes_everything_once_per_add(
    metrics: ControllerMetrics,
) -> None:
    q = WorkQueue(name="demo")
    active: set[str] = set()
    overlap: list[str] = []
    calls: list[str] = []
    depth_seen: list[tuple[float | None, int]] = []
    len_seen: list[int] = []

    async def reconcile(key: str) -> Result | None:
        len_seen.append(len(q))
        depth_seen.append((sample(metrics, "tugboat_workqueue_depth", {"name": "demo"}), len(q)))
        if key in active:
            overlap.append(key)
        active.add(key)
        calls.append(key)
        await asyncio.sleep(0)
        active.discard(key)
        if key == "retry-me" and calls.count(key) == 1:
            raise errors.Conflict("first try conflicts")
        return None

    for i in range(10):
        q.add(f"k{i}")
    q.add("retry-me")
    runner = asyncio.create_task(run_workers(q, reconcile, workers=3, metrics=metrics))
    await eventually(lambda: len(calls) == 12, what="12 reconciles")
    q.shutdown()
    await asyncio.wait_for(runner, 5)
    assert overlap == []
    assert sorted(calls) == sorted([f"k{i}" for i in range(10)] + ["retry-me"] * 2)
    assert sample(metrics, "tugboat_controller_reconcile_errors_total", {"name": "demo"}) == 1
    assert (
        sample(metrics, "tugboat_controller_reconcile_total", {"name": "demo", "result": "success"})
        == 11
    )
    assert depth_seen[0] == (len_seen[0], len_seen[0]) and len_seen[0] > 0
    assert sample(metrics, "tugboat_workqueue_depth", {"name": "demo"}) == 0
