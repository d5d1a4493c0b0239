"""Cache freshness across informers: has a dependents cache seen everything an owner may claim?

``resourceVersion`` is one global, strictly increasing revision. A controller that wakes for an
owner (a ReplicaSet) reads its dependents (pods) from another informer, whose watch may lag: an
orphan created just before the owner can still be missing, and acting on that view creates a
pod too many and then deletes one by rank, possibly the orphan.

Rule: before acting for an owner first observed at revision R, the dependents cache must have
seen revision R (every dependent created before the owner is then in it). :class:`FirstSeen`
remembers R per owner uid. When the cache is behind, the controller reads the dependents live
from the API server instead of waiting: a watch reports progress only with events or bookmarks,
and bookmarks come after seconds of silence, so waiting would delay every new owner's first
pods in a quiet namespace. Once the cache has passed R it is used again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controllers.objects import meta, uid_of

Obj = dict[str, Any]


def revision(value: str | None) -> int | None:
    """A resourceVersion as an int (None when missing or not a number)."""
    try:
        return int(value) if value else None
    except ValueError:
        return None


class FirstSeen:
    """The revision at which each owner (by uid) was first observed by this controller."""

    def __init__(self) -> None:
        self._revisions: dict[str, int] = {}

    def observe(self, obj: Obj) -> None:
        rv = revision(meta(obj).get("resourceVersion"))
        if rv is not None:
            self._revisions.setdefault(uid_of(obj), rv)

    def forget(self, obj: Obj) -> None:
        self._revisions.pop(uid_of(obj), None)

    def covered(self, obj: Obj, cache_revision: Callable[[], str | None] | None) -> bool:
        """True when the cache whose last revision ``cache_revision`` returns has seen ``obj``'s
        first revision; True without a cache revision source, False while it has none yet."""
        if cache_revision is None:
            return True
        seen = self._revisions.get(uid_of(obj))
        if seen is None:
            seen = revision(meta(obj).get("resourceVersion"))
        cached = revision(cache_revision())
        return seen is None or (cached is not None and cached >= seen)
