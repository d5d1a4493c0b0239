"""The scheduling queue: which pending pod to try next, and when to try a failed one again.

Three places a pending pod can wait::

    add ──▶ activeQ ──pop──▶ (scheduling cycle) ──fit──▶ bound
              ▲   ▲                 │ no fit
              │   └── backoffQ ◀────┤  (a cluster event arrived during the cycle, or an error)
              │    1 s, 2 s … 10 s  ▼
              └─────────────── unschedulable ◀── parked until an event its rejecting plugins
                 event / 5 min flush                care about, or 5 minutes pass

Contract:

* ``pop`` returns the highest ``spec.priority`` first, then the earliest queued; each pending pod
  is in exactly one of the three places or being scheduled (in flight), never twice.
* A pod's backoff after its n-th failed attempt is ``initial_backoff × 2^(n-1)`` capped at
  ``max_backoff``, counted from the failure; moved pods that are still backing off wait in the
  backoff queue, not in the active queue.
* ``move_on(event)`` moves the unschedulable pods that the event may help: those rejected by a
  plugin that lists the event (or rejected without a plugin to blame). If the event arrives
  while a pod is in flight, that pod is not parked as unschedulable when its cycle fails.
* Time comes from an injectable clock (``now()``, ``async sleep()``), so tests step a fake one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from scheduler.framework import ALL_EVENTS
from scheduler.pods import pod_key, priority_of

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_UNSCHEDULABLE_DURATION = 300.0
BACKOFF_FLUSH_PERIOD = 1.0
UNSCHEDULABLE_FLUSH_PERIOD = 30.0


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class QueuedPodInfo:
    """A pending pod with its scheduling history."""

    pod: dict[str, Any]
    timestamp: float  # when it was (re)queued: the tie-breaker after priority
    initial_attempt: float | None = None
    attempts: int = 0
    unschedulable_plugins: frozenset[str] = field(default_factory=frozenset)
    cycle: int = 0  # the scheduling cycle that popped it last

    @property
    def key(self) -> str:
        return pod_key(self.pod)


class SchedulingQueue:
    """Active (priority heap), backoff (expiry heap) and unschedulable (parked) pods."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        events_for: Callable[[Iterable[str]], set[str]] | None = None,
        initial_backoff: float = INITIAL_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        max_unschedulable: float = MAX_UNSCHEDULABLE_DURATION,
    ) -> None:
        self.clock: Clock = clock or MonotonicClock()
        self._events_for = events_for or (lambda _plugins: {ALL_EVENTS})
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self._seq = itertools.count()
        self._active: dict[str, QueuedPodInfo] = {}
        self._active_heap: list[tuple[int, float, int, str]] = []
        self._active_entry: dict[str, int] = {}  # key → seq of its live heap entry
        self._backoff: dict[str, QueuedPodInfo] = {}
        self._backoff_heap: list[tuple[float, int, str]] = []
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._in_flight: dict[str, QueuedPodInfo] = {}
        self._deleted_in_flight: set[str] = set()
        self._cycle = 0
        self._move_request_cycle = -1
        self._nominated: dict[str, dict[str, dict[str, Any]]] = {}  # node → key → pod
        self._nominated_node: dict[str, str] = {}
        self._wakeup: asyncio.Event | None = None
        self._closed = False

    # ---- adding and removing pending pods -----------------------------------------------
    def add(self, pod: dict[str, Any]) -> None:
        """A new pending pod (or one seen again): queue it unless it is already queued."""
        key = pod_key(pod)
        if key in self._in_flight:
            self._in_flight[key].pod = pod
            return
        for where in (self._active, self._backoff, self._unschedulable):
            if key in where:
                where[key].pod = pod
                return
        self._push_active(QueuedPodInfo(pod, self.clock.now()))

    def update(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """A pending pod changed; a parked one gets another try (its spec may now fit)."""
        key = pod_key(new)
        info = self._unschedulable.pop(key, None)
        if info is not None:
            info.pod = new
            if _spec_changed(old, new):
                self._requeue_moved(info)
            else:
                self._unschedulable[key] = info
            return
        self.add(new)
        self._update_nominated(new)

    def delete(self, pod: dict[str, Any]) -> None:
        key = pod_key(pod)
        self._active.pop(key, None)
        self._active_entry.pop(key, None)
        self._backoff.pop(key, None)
        self._unschedulable.pop(key, None)
        if key in self._in_flight:
            self._deleted_in_flight.add(key)
        self.remove_nominated(key)

    # ---- popping ------------------------------------------------------------------------
    def pop_nowait(self) -> QueuedPodInfo | None:
        """The next pod to schedule, or None when the active queue is empty."""
        while self._active_heap:
            _, _, seq, key = heapq.heappop(self._active_heap)
            if self._active_entry.get(key) != seq:
                continue  # stale entry
            del self._active_entry[key]
            info = self._active.pop(key)
            self._cycle += 1
            info.cycle = self._cycle
            info.attempts += 1
            if info.initial_attempt is None:
                info.initial_attempt = self.clock.now()
            self._in_flight[key] = info
            return info
        return None

    async def pop(self) -> QueuedPodInfo | None:
        """Wait for the next pod; None once the queue is closed."""
        while not self._closed:
            info = self.pop_nowait()
            if info is not None:
                return info
            event = self._event()
            event.clear()
            await event.wait()
        return None

    def close(self) -> None:
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.set()

    @property
    def scheduling_cycle(self) -> int:
        return self._cycle

    # ---- outcomes of a cycle ------------------------------------------------------------
    def done(self, key: str) -> None:
        """The pod's cycle ended and it was placed (or handed to the binder)."""
        self._in_flight.pop(key, None)
        self._deleted_in_flight.discard(key)

    def add_unschedulable(self, info: QueuedPodInfo, plugins: Iterable[str] = ()) -> None:
        """The pod fit nowhere. Park it, unless an event during its cycle may have helped."""
        key = info.key
        self._in_flight.pop(key, None)
        if key in self._deleted_in_flight:
            self._deleted_in_flight.discard(key)
            return
        info.unschedulable_plugins = frozenset(plugins)
        info.timestamp = self.clock.now()
        if self._move_request_cycle >= info.cycle:
            self._push_backoff(info)
        else:
            self._unschedulable[key] = info

    def add_backoff(self, info: QueuedPodInfo) -> None:
        """The attempt failed for a reason other than fit (an error, a failed bind): retry
        after backoff."""
        key = info.key
        self._in_flight.pop(key, None)
        if key in self._deleted_in_flight:
            self._deleted_in_flight.discard(key)
            return
        info.timestamp = self.clock.now()
        self._push_backoff(info)

    # ---- moving parked pods ------------------------------------------------------------
    def move_on(self, event: str) -> int:
        """Move the unschedulable pods ``event`` may help; returns how many moved."""
        self._move_request_cycle = self._cycle
        moved = 0
        for key, info in list(self._unschedulable.items()):
            if self._helps(event, info):
                del self._unschedulable[key]
                self._requeue_moved(info)
                moved += 1
        return moved

    def flush_backoff_completed(self) -> int:
        """Move pods whose backoff has expired to the active queue."""
        now = self.clock.now()
        moved = 0
        while self._backoff_heap and self._backoff_heap[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff_heap)
            info = self._backoff.pop(key, None)
            if info is not None and self.backoff_expiry(info) <= now:
                self._push_active(info)
                moved += 1
            elif info is not None:
                self._push_backoff(info)
        return moved

    def flush_unschedulable_left_over(self) -> int:
        """Move pods parked longer than ``max_unschedulable``."""
        now = self.clock.now()
        moved = 0
        for key, info in list(self._unschedulable.items()):
            if now - info.timestamp >= self.max_unschedulable:
                del self._unschedulable[key]
                self._requeue_moved(info)
                moved += 1
        return moved

    async def run(self) -> None:
        """Flush periodically until closed (backoff every second, parked pods every 30 s)."""
        last_unschedulable_flush = self.clock.now()
        while not self._closed:
            await self.clock.sleep(BACKOFF_FLUSH_PERIOD)
            self.flush_backoff_completed()
            if self.clock.now() - last_unschedulable_flush >= UNSCHEDULABLE_FLUSH_PERIOD:
                last_unschedulable_flush = self.clock.now()
                self.flush_unschedulable_left_over()

    # ---- nominated pods (preemptors waiting for their victims to go) ---------------------
    def add_nominated(self, pod: dict[str, Any], node_name: str) -> None:
        key = pod_key(pod)
        self.remove_nominated(key)
        self._nominated.setdefault(node_name, {})[key] = pod
        self._nominated_node[key] = node_name

    def remove_nominated(self, key: str) -> None:
        node = self._nominated_node.pop(key, None)
        if node is not None:
            pods = self._nominated.get(node, {})
            pods.pop(key, None)
            if not pods:
                self._nominated.pop(node, None)

    def nominated_pods_for_node(self, node_name: str) -> list[dict[str, Any]]:
        return list(self._nominated.get(node_name, {}).values())

    def nominated_nodes(self) -> Container[str]:
        """The nodes that have nominated pods now (a live view: do not keep it)."""
        return self._nominated.keys()

    def _update_nominated(self, pod: dict[str, Any]) -> None:
        key = pod_key(pod)
        node = (pod.get("status") or {}).get("nominatedNodeName")
        if node:
            self.add_nominated(pod, node)
        elif key in self._nominated_node and node == "":
            self.remove_nominated(key)

    # ---- introspection ------------------------------------------------------------------
    def backoff_duration(self, info: QueuedPodInfo) -> float:
        if info.attempts <= 0:
            return 0.0
        return min(self.initial_backoff * 2 ** (info.attempts - 1), self.max_backoff)

    def backoff_expiry(self, info: QueuedPodInfo) -> float:
        return info.timestamp + self.backoff_duration(info)

    def sizes(self) -> dict[str, int]:
        return {
            "active": len(self._active),
            "backoff": len(self._backoff),
            "unschedulable": len(self._unschedulable),
            "gated": 0,
        }

    def where(self, key: str) -> str | None:
        """``active``, ``backoff``, ``unschedulable``, ``in_flight`` or None."""
        for name, where in (
            ("active", self._active),
            ("backoff", self._backoff),
            ("unschedulable", self._unschedulable),
            ("in_flight", self._in_flight),
        ):
            if key in where:
                return name
        return None

    def __len__(self) -> int:
        return len(self._active) + len(self._backoff) + len(self._unschedulable)

    # ---- internals ----------------------------------------------------------------------
    def _helps(self, event: str, info: QueuedPodInfo) -> bool:
        if not info.unschedulable_plugins or event == ALL_EVENTS:
            return True
        events = self._events_for(info.unschedulable_plugins)
        return event in events or ALL_EVENTS in events

    def _requeue_moved(self, info: QueuedPodInfo) -> None:
        if self.backoff_expiry(info) > self.clock.now():
            self._push_backoff(info)
        else:
            self._push_active(info)

    def _push_active(self, info: QueuedPodInfo) -> None:
        key = info.key
        self._backoff.pop(key, None)
        self._unschedulable.pop(key, None)
        seq = next(self._seq)
        self._active[key] = info
        self._active_entry[key] = seq
        heapq.heappush(self._active_heap, (-priority_of(info.pod), info.timestamp, seq, key))
        if self._wakeup is not None:
            self._wakeup.set()

    def _push_backoff(self, info: QueuedPodInfo) -> None:
        key = info.key
        self._backoff[key] = info
        heapq.heappush(self._backoff_heap, (self.backoff_expiry(info), next(self._seq), key))

    def _event(self) -> asyncio.Event:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        return self._wakeup


def _spec_changed(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if old is None:
        return True
    strip = ("resourceVersion", "generation", "managedFields")
    old_meta = {k: v for k, v in (old.get("metadata") or {}).items() if k not in strip}
    new_meta = {k: v for k, v in (new.get("metadata") or {}).items() if k not in strip}
    return old.get("spec") != new.get("spec") or old_meta != new_meta
