"""Lease-based leader election: electors share one API (fake or real) and one FakeClock."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from machinery.client import AsyncClient
from machinery.leaderelection import LEASES, LeaderElector
from machinery.workqueue import FakeClock
from tests.unit import fake_apiserver
from tests.unit.fake_apiserver import Backend, eventually

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with fake_apiserver.backend(request) as b:
        yield b


@pytest.fixture
async def aclient(backend: Backend) -> AsyncIterator[AsyncClient]:
    async with backend.async_client() as c:
        yield c


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Candidate:
    """An elector running in a task, recording when it led and stopped."""

    def __init__(
        self, client: AsyncClient, ns: str, identity: str, clock: FakeClock, **kw: Any
    ) -> None:
        self.elector = LeaderElector(client, "ctrl", ns, identity, clock=clock, **kw)
        self.started = 0
        self.stopped = 0
        self.leading_cancelled = False
        self.task: asyncio.Task[None] | None = None
        self.work = asyncio.Event()  # set to make the leading callback return

    async def _lead(self) -> None:
        self.started += 1
        try:
            await self.work.wait()
        except asyncio.CancelledError:
            self.leading_cancelled = True
            raise

    def _stop(self) -> None:
        self.stopped += 1

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.run(self._lead, self._stop))
        return self

    async def crash(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def advance(clock: FakeClock, seconds: float, sleepers: int, tick: float = 0.5) -> None:
    """Move the clock in ticks, letting ``sleepers`` parked loops run between ticks."""
    for _ in range(round(seconds / tick)):
        clock.step(tick)
        await eventually(lambda: clock.waiters >= sleepers, what=f"{sleepers} sleepers")


async def lease(client: AsyncClient, ns: str) -> dict[str, Any]:
    return (await client.get(LEASES, "ctrl", ns))["spec"]


async def test_only_one_leads_and_the_other_takes_over_after_expiry(
    backend: Backend, aclient: AsyncClient, clock: FakeClock
) -> None:
    ns = backend.namespace
    a = Candidate(aclient, ns, "a", clock, release_on_cancel=False).start()
    await eventually(lambda: a.elector.is_leader, what="a leading")
    b = Candidate(aclient, ns, "b", clock).start()
    await eventually(lambda: clock.waiters == 2)
    spec = await lease(aclient, ns)
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert MICRO_TIME.match(spec["acquireTime"]) and MICRO_TIME.match(spec["renewTime"])

    await advance(clock, 60, sleepers=2)  # a renews all along: b never leads
    assert a.elector.is_leader and not b.elector.is_leader
    assert (a.started, b.started) == (1, 0)
    renewed = await lease(aclient, ns)
    assert renewed["acquireTime"] == spec["acquireTime"]
    assert renewed["renewTime"] != spec["renewTime"]
    assert b.elector.holder == "a"

    await a.crash()  # no release: b must wait for the lease to expire
    assert a.stopped == 1 and a.leading_cancelled
    waited = 0.0
    while not b.elector.is_leader:
        await advance(clock, 0.5, sleepers=1)
        waited += 0.5
        assert waited < 30, "b never took over"
    assert 15 - 2.4 <= waited <= 15 + 2.4 + 0.5  # one lease duration, give or take a retry
    await eventually(lambda: b.started == 1)
    spec = await lease(aclient, ns)
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1
    await b.crash()
    assert b.stopped == 1


async def test_release_hands_over_at_once(
    backend: Backend, aclient: AsyncClient, clock: FakeClock
) -> None:
    ns = backend.namespace
    a = Candidate(aclient, ns, "a", clock).start()
    await eventually(lambda: a.elector.is_leader)
    b = Candidate(aclient, ns, "b", clock).start()
    await eventually(lambda: clock.waiters == 2)
    await a.crash()  # graceful: releases the lease
    assert "holderIdentity" not in await lease(aclient, ns)
    await advance(clock, 2.5, sleepers=1)  # b's next retry (retry_period * jitter <= 2.4)
    await eventually(lambda: b.elector.is_leader)
    await b.crash()


async def test_leader_that_cannot_renew_steps_down(
    backend: Backend, aclient: AsyncClient, clock: FakeClock
) -> None:
    fake = backend.need_fake()
    a = Candidate(aclient, backend.namespace, "a", clock).start()
    await eventually(lambda: a.elector.is_leader)
    await eventually(lambda: clock.waiters == 1)
    fake.fail(503, "ServiceUnavailable", path_contains="/leases", times=10_000)
    await advance(clock, 8, sleepers=1)
    assert a.elector.is_leader  # still within renew_deadline (10 s)
    steps = 0
    while a.task is not None and not a.task.done():
        clock.step(0.5)
        await eventually(lambda: clock.waiters >= 1 or a.task.done())  # type: ignore[union-attr]
        steps += 1
        assert steps < 20
    assert not a.elector.is_leader
    assert a.leading_cancelled and a.stopped == 1
    assert a.task.exception() is None  # run() returns normally after losing the lease


async def test_callback_return_releases_and_exceptions_propagate(
    backend: Backend, aclient: AsyncClient, clock: FakeClock
) -> None:
    ns = backend.namespace
    a = Candidate(aclient, ns, "a", clock).start()
    await eventually(lambda: a.started == 1)
    a.work.set()
    assert a.task is not None
    await asyncio.wait_for(a.task, 5)
    assert a.stopped == 1 and not a.elector.is_leader
    assert "holderIdentity" not in await lease(aclient, ns)

    async def failing() -> None:
        raise RuntimeError("leader crashed")

    again = LeaderElector(aclient, "ctrl", ns, "a2", clock=clock)
    with pytest.raises(RuntimeError, match="leader crashed"):
        await asyncio.wait_for(again.run(failing), 5)
    assert "holderIdentity" not in await lease(aclient, ns)


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [(10, 10, 2), (15, 10, 9), (5, 10, 2)],
    ids=["deadline-not-below-duration", "retry-too-long", "duration-too-short"],
)
def test_timing_is_validated(duration: float, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError):
        LeaderElector(
            None,
            "x",
            lease_duration=duration,  # type: ignore[arg-type]
            renew_deadline=deadline,
            retry_period=retry,
        )
