"""Per-key exponential back-off for container restarts and image pulls (Kubernetes semantics).

The first restart is immediate and arms a 10 s delay; every later one doubles it up to 5 min.
A key is *in back-off* while less than its delay has passed since the event that needs the
restart (the container's exit). An entry untouched for twice the cap is forgotten, so a
container that ran well for 10 minutes starts again from 10 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

INITIAL = 10.0
MAXIMUM = 300.0


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    def __init__(
        self,
        initial: float = INITIAL,
        maximum: float = MAXIMUM,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.clock = clock or time.time
        self._entries: dict[str, _Entry] = {}

    def get(self, key: str) -> float:
        """The current delay of ``key`` (0 when none is armed)."""
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def _expired(self, entry: _Entry, event_time: float) -> bool:
        return event_time - entry.last_update > 2 * self.maximum

    def in_backoff_since(self, key: str, event_time: float) -> bool:
        """True while less than the delay has passed since ``event_time``."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            return False
        return self.clock() - event_time < entry.delay

    def in_backoff_since_update(self, key: str) -> bool:
        """True while less than the delay has passed since the last :meth:`next` (image pulls:
        the delay counts from the last failed attempt)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, self.clock()):
            return False
        return self.clock() - entry.last_update < entry.delay

    def remaining_since_update(self, key: str) -> float:
        entry = self._entries.get(key)
        if entry is None or not self.in_backoff_since_update(key):
            return 0.0
        return max(0.0, entry.last_update + entry.delay - self.clock())

    def remaining(self, key: str, event_time: float) -> float:
        """Seconds until ``key`` leaves back-off (0 if it is not in back-off)."""
        if not self.in_backoff_since(key, event_time):
            return 0.0
        return max(0.0, event_time + self._entries[key].delay - self.clock())

    def next(self, key: str, event_time: float) -> None:
        """Record a retry: arm the initial delay, or double the current one up to the cap."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            self._entries[key] = _Entry(self.initial, event_time)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last_update = event_time

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        """Drop every key starting with ``prefix`` (a pod's keys when it goes)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
