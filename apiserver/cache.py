"""The watch cache: every current object and a window of recent events, in memory.

Lists and gets are served from here without touching the store; watches replay the window and
then follow new events. Guarantees:

* events are applied in revision order, and a write is visible here before it is acknowledged;
* a watcher receives every event after its starting revision exactly once, in order, or an error
  (410 Expired when the start is older than the window, or when the cache is reloaded because the
  store compacted events it had not applied yet; "too slow" when its bounded buffer fills, which
  never holds up the other watchers);
* a list at an earlier revision (the pages after the first of a paginated list) is exactly what
  the store held at that revision, rebuilt from the current objects and the window, or a
  LookupError when the window no longer reaches back that far;
* objects in the cache are never mutated after they are stored (callers copy before changing).
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from apiserver.storage import Key, Record


@dataclass(slots=True)
class Entry:
    """A stored object: revision, decoded dict (read-only) and its JSON bytes."""

    rev: int
    obj: dict[str, Any]
    raw: bytes


@dataclass(slots=True)
class Event:
    """A change: type, key, revision, new object (final object for DELETED), previous object."""

    type: str
    key: Key
    rev: int
    entry: Entry
    prev: Entry | None


#: events a watcher may have waiting before it is closed as too slow (``--watch-buffer-size``)
WATCHER_BUFFER = 10000

Filter = Callable[[dict[str, Any]], bool]
# (event type, new object or None when deleted, previous object or None when added)
Listener = Callable[[str, dict[str, Any] | None, dict[str, Any] | None], None]


@dataclass(eq=False)
class Watcher:
    """One open watch: a resource, an optional namespace, a predicate and a bounded buffer."""

    resource: str
    namespace: str | None
    predicate: Filter | None
    limit: int = 10000
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    closed: str | None = None
    expired: bool = False  # closed because its next events are gone: 410, the client re-lists

    def close(self, reason: str, *, expired: bool = False) -> None:
        """End the watch: what is queued is still delivered, then the error ``reason``."""
        if not self.closed:
            self.closed, self.expired = reason, expired
            self.queue.put_nowait(None)

    def offer(self, ev: Event, live: bool = True) -> None:
        if self.closed:
            return
        if self.namespace is not None and ev.key.namespace != self.namespace:
            return
        typ, entry = ev.type, ev.entry
        if self.predicate is not None:
            now = ev.type != "DELETED" and self.predicate(ev.entry.obj)
            before = ev.prev is not None and self.predicate(ev.prev.obj)
            if ev.type == "DELETED":
                now, before = False, self.predicate(ev.entry.obj)
            if not now and not before:
                return
            if now and not before:
                typ = "ADDED"
            elif before and not now:
                typ = "DELETED"
        if live and self.queue.qsize() >= self.limit:
            self.close("the watcher fell too far behind")
            return
        self.queue.put_nowait((typ, entry))


class WatchCache:
    """Objects by resource and (namespace, name), a global event window, and live watchers."""

    def __init__(self, window: int = 50000) -> None:
        self.rev = 0
        self.objects: dict[str, dict[tuple[str, str], Entry]] = {}
        self.events: deque[Event] = deque(maxlen=window)
        self.oldest = 0  # events with rev > oldest are all in the window
        self.watchers: dict[str, set[Watcher]] = {}
        # sorted keys per resource, dropped when a key is added or removed
        self._order: dict[str, list[tuple[str, str]]] = {}
        self.listeners: dict[str, list[Listener]] = {}
        # per resource: the newest loaded event whose previous object is unknown (its key's
        # first event in the loaded history, not an ADDED); lists at earlier revisions of that
        # resource cannot be rebuilt
        self._rebuild_floor: dict[str, int] = {}

    # -- loading and applying -------------------------------------------------------------------
    def load(
        self, rev: int, compacted: int, objects: list[tuple[Key, int, bytes]], history: list[Record]
    ) -> None:
        """Fill from a store snapshot."""
        for key, orev, raw in objects:
            self.bucket(key.resource)[(key.namespace, key.name)] = Entry(
                orev, orjson.loads(raw), raw
            )
        self.rev = rev
        self.oldest = history[0].rev - 1 if history else rev
        self.oldest = max(self.oldest, compacted)
        last: dict[Key, Entry | None] = {}
        for rec in history:
            entry = Entry(rec.rev, orjson.loads(rec.raw), rec.raw)
            prev = last.get(rec.key)
            if rec.key not in last and rec.type != "ADDED":
                floor = self._rebuild_floor.get(rec.key.resource, 0)
                self._rebuild_floor[rec.key.resource] = max(floor, rec.rev)
            self.events.append(Event(rec.type, rec.key, rec.rev, entry, prev))
            last[rec.key] = None if rec.type == "DELETED" else entry

    def reload(
        self, rev: int, compacted: int, objects: list[tuple[Key, int, bytes]], history: list[Record]
    ) -> None:
        """Start again from a newer store snapshot, when the events between the cache and the
        store can no longer be read (compacted). Every open watch ends with 410 Expired (its
        clients re-list); listeners hear the difference between the old and the new objects as
        ADDED, MODIFIED and DELETED, so the state they derive stays right."""
        for watchers in self.watchers.values():
            for w in watchers:
                w.close("The resourceVersion for the provided watch is too old.", expired=True)
        old = self.objects
        self.watchers, self.objects, self._order, self._rebuild_floor = {}, {}, {}, {}
        self.events.clear()
        self.load(rev, compacted, objects, history)
        for resource, listeners in self.listeners.items():
            before, after = old.get(resource, {}), self.objects.get(resource, {})
            for nk in sorted(before.keys() | after.keys()):
                b, a = before.get(nk), after.get(nk)
                if b is not None and a is not None and a.rev == b.rev:
                    continue
                typ = "DELETED" if a is None else "ADDED" if b is None else "MODIFIED"
                for listener in listeners:
                    listener(typ, a.obj if a else None, b.obj if b else None)

    def apply(self, typ: str, key: Key, rev: int, obj: dict[str, Any], raw: bytes) -> None:
        """Record one committed change (in revision order) and fan it out to watchers."""
        bucket = self.bucket(key.resource)
        nk = (key.namespace, key.name)
        prev = bucket.get(nk)
        entry = Entry(rev, obj, raw)
        if typ == "DELETED":
            bucket.pop(nk, None)
            self._order.pop(key.resource, None)
        else:
            if prev is None:
                self._order.pop(key.resource, None)
            bucket[nk] = entry
        ev = Event(typ, key, rev, entry, prev)
        if len(self.events) == self.events.maxlen:
            self.oldest = self.events[0].rev
        self.events.append(ev)
        self.rev = rev
        for w in self.watchers.get(key.resource, ()):
            w.offer(ev)
        for listener in self.listeners.get(key.resource, ()):
            listener(typ, None if typ == "DELETED" else obj, prev.obj if prev else None)

    def listen(self, resource: str, listener: Listener) -> None:
        """Call ``listener`` for every change of ``resource`` applied from now on, whichever
        API server made it (how servers sharing a store keep derived state in step)."""
        self.listeners.setdefault(resource, []).append(listener)

    def bucket(self, resource: str) -> dict[tuple[str, str], Entry]:
        b = self.objects.get(resource)
        if b is None:
            b = self.objects[resource] = {}
        return b

    # -- reads ----------------------------------------------------------------------------------
    def get(self, key: Key) -> Entry | None:
        return self.objects.get(key.resource, {}).get((key.namespace, key.name))

    def list(
        self, resource: str, namespace: str | None = None
    ) -> list[tuple[tuple[str, str], Entry]]:
        """Entries sorted by (namespace, name), optionally of one namespace."""
        bucket = self.objects.get(resource)
        if not bucket:
            return []
        order = self._order.get(resource)
        if order is None:
            order = self._order[resource] = sorted(bucket)
        if namespace is None:
            return [(k, bucket[k]) for k in order]
        start = bisect.bisect_left(order, (namespace, ""))
        out = []
        for k in order[start:]:
            if k[0] != namespace:
                break
            out.append((k, bucket[k]))
        return out

    def list_at(
        self, resource: str, namespace: str | None, rev: int
    ) -> list[tuple[tuple[str, str], Entry]]:
        """Like :meth:`list`, as the store held it at revision ``rev``: the current entries
        with every change after ``rev`` undone (each changed key gets back the object its first
        later event replaced). LookupError when the window no longer reaches back to ``rev``."""
        if rev < max(self.oldest, self._rebuild_floor.get(resource, 0)):
            raise LookupError(f"too old resource version: {rev} ({self.oldest + 1})")
        before: dict[tuple[str, str], Entry | None] = {}
        for ev in reversed(self.events):
            if ev.rev <= rev:
                break
            if ev.key.resource != resource or (
                namespace is not None and ev.key.namespace != namespace
            ):
                continue
            # walking backwards, the last write wins: the object before the first later event
            before[(ev.key.namespace, ev.key.name)] = None if ev.type == "ADDED" else ev.prev
        current = self.list(resource, namespace)
        if not before:
            return current
        entries = dict(current)
        for nk, entry in before.items():
            if entry is None:
                entries.pop(nk, None)
            else:
                entries[nk] = entry
        return sorted(entries.items(), key=lambda item: item[0])

    # -- watches --------------------------------------------------------------------------------
    def watch(
        self, resource: str, namespace: str | None, predicate: Filter | None, since: int
    ) -> Watcher:
        """Open a watcher that first replays events after ``since``; raises LookupError when
        ``since`` is older than the window."""
        if since < self.oldest:
            raise LookupError(f"too old resource version: {since} ({self.oldest + 1})")
        w = Watcher(resource, namespace, predicate, limit=WATCHER_BUFFER)
        for ev in self.events:
            if ev.rev > since and ev.key.resource == resource:
                w.offer(ev, live=False)
        self.watchers.setdefault(resource, set()).add(w)
        return w

    def unwatch(self, w: Watcher) -> None:
        self.watchers.get(w.resource, set()).discard(w)
