"""A rate-limited, de-duplicating work queue for controllers (the client-go workqueue contract).

Guarantees, for keys (strings, normally ``namespace/name``):

* **Fair**: keys are handed out in the order they were added.
* **Stingy**: a key added several times before it is processed is processed once.
* **Exclusive**: one key is never handed to two workers at once. A key added while it is being
  processed is marked dirty and re-queued when the worker calls :meth:`WorkQueue.done`.
* **Delayed and rate limited**: :meth:`WorkQueue.add_after` holds a key back for a while;
  :meth:`WorkQueue.add_rate_limited` holds it back by the larger of a per-key exponential backoff
  (``base_delay * 2**failures``, capped at ``max_delay``) and an overall token bucket
  (``rate`` per second, ``burst``). :meth:`WorkQueue.forget` resets the key's backoff.
* **Shutdown**: after :meth:`WorkQueue.shutdown` adds are ignored, keys already queued are still
  handed out, and :meth:`WorkQueue.get` returns ``None`` once the queue is empty.

All time goes through a :class:`Clock`; tests use :class:`FakeClock` and never sleep. The queue
lives on one asyncio event loop and is not thread-safe.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from typing import Protocol


class Clock(Protocol):
    """Time source: ``now()`` in seconds (monotonic) and an awaitable ``sleep``."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """The monotonic clock and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to: :meth:`step` wakes every sleeper that is due."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    def step(self, seconds: float) -> None:
        """Advance time by ``seconds`` and wake the sleepers whose deadline has passed."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    @property
    def waiters(self) -> int:
        """How many coroutines are asleep on this clock (lets tests wait until all are parked)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())


class RateLimiter:
    """Per-key exponential backoff combined (max) with an overall token bucket."""

    def __init__(
        self, clock: Clock, base_delay: float, max_delay: float, rate: float, burst: int
    ) -> None:
        self._clock = clock
        self._base = base_delay
        self._max = max_delay
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = clock.now()
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        """The delay before ``key`` may be retried; counts one more failure for it."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        backoff = min(self._base * 2.0**n, self._max) if n < 1024 else self._max
        return max(backoff, self._reserve())

    def _reserve(self) -> float:
        """Take one token (possibly going into debt) and return how long until it is ours."""
        if self._rate <= 0:
            return 0.0
        now = self._clock.now()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        self._tokens -= 1.0
        return max(0.0, -self._tokens / self._rate)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)


class WorkQueue:
    """See the module docstring for the contract."""

    def __init__(
        self,
        *,
        name: str = "",
        base_delay: float = 0.005,
        max_delay: float = 1000.0,
        rate: float = 10,
        burst: int = 100,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self._clock: Clock = clock or RealClock()
        self._limiter = RateLimiter(self._clock, base_delay, max_delay, rate, burst)
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._shutting_down = False
        self._getters: deque[asyncio.Future[None]] = deque()
        # Delayed keys: heap of (ready_at, seq, key); _ready_at holds each key's earliest time.
        self._delayed: list[tuple[float, int, str]] = []
        self._ready_at: dict[str, float] = {}
        self._seq = itertools.count()

    # -- adding --------------------------------------------------------------------------------

    def add(self, key: str) -> None:
        """Queue ``key`` unless it is already waiting; if it is being processed, re-queue it
        when :meth:`done` is called."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds have passed (an earlier pending time wins)."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready_at = self._clock.now() + delay
        current = self._ready_at.get(key)
        if current is not None and current <= ready_at:
            return
        self._ready_at[key] = ready_at
        heapq.heappush(self._delayed, (ready_at, next(self._seq), key))
        self._wake_one()  # a getter may need to sleep for a shorter time now

    def add_rate_limited(self, key: str, min_delay: float = 0.0) -> None:
        """Add ``key`` after its backoff (and the overall rate limit), at least ``min_delay``."""
        self.add_after(key, max(self._limiter.when(key), min_delay))

    def forget(self, key: str) -> None:
        """Stop tracking ``key``'s failures: its next backoff starts from ``base_delay``."""
        self._limiter.forget(key)

    def num_requeues(self, key: str) -> int:
        """How many times ``key`` went through :meth:`add_rate_limited` since it was forgotten."""
        return self._limiter.num_requeues(key)

    # -- processing ----------------------------------------------------------------------------

    async def get(self) -> str | None:
        """Wait for the next key and mark it processing; ``None`` once shut down and empty."""
        while True:
            self._promote_due()
            if self._queue:
                key = self._queue.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                return key
            if self._shutting_down:
                return None
            await self._wait(self._delayed[0][0] - self._clock.now() if self._delayed else None)

    def done(self, key: str) -> None:
        """Finish processing ``key``; if it was added meanwhile, queue it again."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def shutdown(self) -> None:
        """Ignore further adds; getters drain what is queued and then receive ``None``.
        Delayed keys that are not yet due are dropped."""
        self._shutting_down = True
        self._delayed.clear()
        self._ready_at.clear()
        self._wake_all()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Keys ready to be handed out (delayed keys count once due)."""
        self._promote_due()
        return len(self._queue)

    # -- internals -----------------------------------------------------------------------------

    def _promote_due(self) -> None:
        now = self._clock.now()
        while self._delayed and self._delayed[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._delayed)
            if self._ready_at.get(key) == ready_at:
                del self._ready_at[key]
                self.add(key)

    async def _wait(self, timeout: float | None) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._getters.append(fut)
        sleeper = asyncio.ensure_future(self._clock.sleep(timeout)) if timeout is not None else None
        try:
            if sleeper is None:
                await fut
            else:
                await asyncio.wait({fut, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._wake_one()  # pass on a wake-up this cancelled getter swallowed
            raise
        finally:
            if sleeper is not None:
                sleeper.cancel()
            try:
                self._getters.remove(fut)
            except ValueError:
                pass

    def _wake_one(self) -> None:
        for fut in self._getters:
            if not fut.done():
                fut.set_result(None)
                return

    def _wake_all(self) -> None:
        for fut in self._getters:
            if not fut.done():
                fut.set_result(None)
