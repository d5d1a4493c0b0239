"""Expectations: what a controller has asked for but not yet seen in its cache.

After a controller creates N pods it must not act on the same owner again until its informer has
seen those N creations (or a TTL passes), otherwise a slow watch makes it create them twice. The
same holds for deletions, tracked per pod key (Kubernetes' ``UIDTrackingControllerExpectations``).

Contract: :meth:`Expectations.satisfied` is True when nothing is pending for the key, when the
pending record is older than ``ttl`` seconds, or when no record exists. The observe methods never
push a count below zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

EXPECTATIONS_TTL = 300.0


@dataclass
class _Record:
    adds: int
    deletes: set[str] = field(default_factory=set)
    stamp: float = 0.0


class Expectations:
    def __init__(
        self, *, ttl: float = EXPECTATIONS_TTL, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._now = now
        self._records: dict[str, _Record] = {}

    def expect_creations(self, key: str, count: int) -> None:
        self._records[key] = _Record(adds=count, stamp=self._now())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._records[key] = _Record(adds=0, deletes=set(pod_keys), stamp=self._now())

    def creation_observed(self, key: str) -> None:
        rec = self._records.get(key)
        if rec and rec.adds > 0:
            rec.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        rec = self._records.get(key)
        if rec:
            rec.deletes.discard(pod_key)

    def satisfied(self, key: str) -> bool:
        rec = self._records.get(key)
        if rec is None:
            return True
        if rec.adds <= 0 and not rec.deletes:
            return True
        return self._now() - rec.stamp > self._ttl

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected for ``key``."""
        rec = self._records.get(key)
        return (rec.adds, len(rec.deletes)) if rec else (0, 0)

    def delete(self, key: str) -> None:
        self._records.pop(key, None)
