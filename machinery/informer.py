"""Informers: a local, watch-fed cache of one resource type plus change notifications.

An :class:`Informer` lists (paged), then watches from the list's resourceVersion with bookmarks,
keeping its :class:`Store` equal to the server's state as of the last event seen. Guarantees:

* The store is updated *before* handlers run, so a handler reading the store sees the change.
* Handlers run in event order, on the event loop, one at a time; an exception in a handler is
  logged and does not stop the informer. Handlers should only enqueue keys.
* When the watch ends (server timeout) it resumes from the last resourceVersion seen. When that
  revision has been compacted (410 Expired/Gone) the informer relists and emits synthetic
  add/update/delete calls for exactly the differences between the old store and the new list.
  Other failures are retried with capped exponential backoff; the store is kept meanwhile.
* ``last_resource_version`` is the revision the store reflects (the list's, then every event's
  and bookmark's): every object of the selection written at or before it is in the store.
  The API server sends a bookmark only after seconds without events, so a quiet selection's
  revision can trail the global one (see ``controllers/freshness.py``).
* With ``resync_period``, every cached object is re-delivered to ``on_update(obj, obj)`` that
  often, so level-triggered controllers periodically revisit everything.
* Objects in the store are shared, not copied: **never mutate them**; copy, change, write.
  Every cached object carries ``kind`` and ``apiVersion`` (filled in for list items).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from machinery import errors
from machinery.aio import wait_event
from machinery.client import AsyncClient
from machinery.kinds import ResourceType
from machinery.workqueue import Clock, RealClock

log = logging.getLogger(__name__)

Object = dict[str, Any]
Objects = list[Object]  # (Store.list shadows the builtin inside the class body)
Keys = list[str]
Indexer = Callable[[Object], list[str]]
NAMESPACE_INDEX = "namespace"


class Selector(Protocol):
    def matches(self, labels: dict[str, str]) -> bool: ...


def key_of(obj: Object) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def _rv(obj: Object) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


def _by_namespace(obj: Object) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


class Store:
    """Objects by key, with secondary indexes. Read-only for everyone but its informer."""

    def __init__(self, indexers: dict[str, Indexer] | None = None) -> None:
        self._items: dict[str, Object] = {}
        self._indexers: dict[str, Indexer] = {NAMESPACE_INDEX: _by_namespace}
        self._indices: dict[str, dict[str, set[str]]] = {NAMESPACE_INDEX: {}}
        self.add_indexers(indexers or {})

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key: str) -> Object | None:
        return self._items.get(key)

    def get_by(self, namespace: str | None, name: str) -> Object | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace: str | None = None, selector: Selector | None = None) -> list[Object]:
        """Objects (of ``namespace``, if given) whose labels match ``selector``."""
        if namespace is None:
            objs: list[Object] = list(self._items.values())
        else:
            objs = self.by_index(NAMESPACE_INDEX, namespace)
        if selector is None:
            return objs
        return [o for o in objs if selector.matches((o.get("metadata") or {}).get("labels") or {})]

    def by_index(self, index: str, value: str) -> Objects:
        """Objects for which ``indexers[index]`` returned ``value``; KeyError for an unknown
        index."""
        keys = self._indices[index].get(value, ())
        return [self._items[k] for k in keys]

    def keys(self) -> Keys:
        return [*self._items]

    def __len__(self) -> int:
        return len(self._items)

    # -- writes (the informer's) ---------------------------------------------------------------

    def add_indexers(self, indexers: dict[str, Indexer]) -> None:
        """Add indexes (also over what is already stored); re-adding a name is an error."""
        for name, fn in indexers.items():
            if name in self._indexers:
                if self._indexers[name] is fn:
                    continue
                raise ValueError(f"indexer {name!r} already exists")
            self._indexers[name] = fn
            self._indices[name] = {}
            for key, obj in self._items.items():
                self._index(name, key, obj)

    def put(self, obj: Object) -> Object | None:
        """Store ``obj``; return the object it replaced."""
        key = key_of(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._indexers:
            self._index(name, key, obj)
        return old

    def delete(self, key: str) -> Object | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index(self, name: str, key: str, obj: Object) -> None:
        for value in self._indexers[name](obj):
            self._indices[name].setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Object) -> None:
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


@dataclass
class _Handler:
    on_add: Callable[[Object], None] | None
    on_update: Callable[[Object, Object], None] | None
    on_delete: Callable[[Object], None] | None


class Informer:
    """List+watch cache of one resource type; see the module docstring for the contract."""

    backoff_initial = 0.8
    backoff_max = 30.0
    min_watch_timeout = 300  # seconds; each watch asks for 1-2x this (spreads reconnects)

    def __init__(
        self,
        client: AsyncClient,
        rt: ResourceType,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_period: float | None = None,
        indexers: dict[str, Indexer] | None = None,
        page_size: int = 500,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.rt = rt
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.page_size = page_size
        self.store = Store(indexers)
        self.last_resource_version: str | None = None
        self._clock: Clock = clock or RealClock()
        self._handlers: list[_Handler] = []
        self._synced = asyncio.Event()

    def add_handler(
        self,
        on_add: Callable[[Object], None] | None = None,
        on_update: Callable[[Object, Object], None] | None = None,
        on_delete: Callable[[Object], None] | None = None,
    ) -> None:
        """Register callbacks; a handler added to a running informer first gets ``on_add`` for
        every object already cached."""
        handler = _Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if on_add is not None:
            for obj in self.store.list():
                self._call(on_add, obj)

    @property
    def synced(self) -> bool:
        """True once the first list has been stored and delivered to handlers."""
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> bool:
        return await wait_event(self._synced, timeout)

    async def run(self) -> None:
        """List, then watch, forever (until cancelled)."""
        resync = asyncio.create_task(self._resync_loop()) if self.resync_period else None
        try:
            await self._list_watch_loop()
        finally:
            if resync is not None:
                resync.cancel()

    # -- list and watch ------------------------------------------------------------------------

    async def _list_watch_loop(self) -> None:
        failures = 0
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._watch()
                failures = 0  # a watch that ended normally: resume from the last RV
            except errors.Gone as e:
                log.info("%s: %s; relisting", self._name, e)
                need_list = True
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:
                failures += 1
                delay = self._backoff(failures)
                log.warning(
                    "%s: %s failed (%s); retrying in %.1fs",
                    self._name,
                    "list" if need_list else "watch",
                    e,
                    delay,
                )
                await self._clock.sleep(delay)

    def _backoff(self, failures: int) -> float:
        base = min(self.backoff_initial * 2.0 ** (failures - 1), self.backoff_max)
        return base * random.uniform(1.0, 1.2)  # jitter so many clients do not reconnect at once

    async def _relist(self) -> None:
        try:
            body = await self.client.list_all(
                self.rt,
                self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                limit=self.page_size,
            )
        except errors.Gone:
            # a continue token expired mid-way: fall back to one unpaged list
            body = await self.client.list(
                self.rt,
                self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
            )
        items = body.get("items") or []
        for obj in items:  # list items may omit their type; watch events never do
            obj.setdefault("kind", self.rt.kind)
            obj.setdefault("apiVersion", self.rt.api_version)
        self._replace(items)
        self.last_resource_version = (body.get("metadata") or {}).get("resourceVersion")
        self._synced.set()

    def _replace(self, items: list[Object]) -> None:
        """Make the store equal ``items``, notifying handlers of the differences only."""
        fresh = {key_of(obj): obj for obj in items}
        cached = self.store.keys()
        for key in [k for k in cached if k not in fresh]:
            old = self.store.delete(key)
            if old is not None:
                self._notify_delete(old)
        for obj in items:
            old = self.store.get(key_of(obj))
            if old is not None and _rv(old) == _rv(obj) and _rv(obj) is not None:
                continue
            self.store.put(obj)
            if old is None:
                self._notify_add(obj)
            else:
                self._notify_update(old, obj)

    async def _watch(self) -> None:
        timeout = int(self.min_watch_timeout * (1 + random.random()))
        async for etype, obj in self.client.watch(
            self.rt,
            self.namespace,
            resource_version=self.last_resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout,
            allow_bookmarks=True,
        ):
            if etype in ("ADDED", "MODIFIED"):
                old = self.store.put(obj)
                if old is None:
                    self._notify_add(obj)
                else:
                    self._notify_update(old, obj)
            elif etype == "DELETED" and self.store.delete(key_of(obj)) is not None:
                self._notify_delete(obj)  # the final state the server sent
            # BOOKMARK: nothing but the revision below
            if rv := _rv(obj):
                self.last_resource_version = rv

    async def _resync_loop(self) -> None:
        assert self.resync_period is not None
        while True:
            await self._clock.sleep(self.resync_period)
            if not self.synced:
                continue
            for obj in self.store.list():
                self._notify_update(obj, obj)

    # -- notifications -------------------------------------------------------------------------

    @property
    def _name(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"informer {self.rt.plural}.{self.rt.group or 'core'}{where}"

    def _call(self, fn: Callable[..., None], *args: Object) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s: event handler %r failed", self._name, fn)

    def _notify_add(self, obj: Object) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _notify_update(self, old: Object, new: Object) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _notify_delete(self, obj: Object) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)


InformerKey = tuple[str, str, str, str | None, str | None, str | None]


class InformerFactory:
    """Shared informers: one per (resource type, namespace, label selector, field selector).

    Informers asked for after :meth:`start` start on the next :meth:`start` call."""

    def __init__(self, client: AsyncClient, *, resync_period: float | None = None) -> None:
        self.client = client
        self.resync_period = resync_period
        self._informers: dict[InformerKey, Informer] = {}
        self._tasks: dict[InformerKey, asyncio.Task[None]] = {}

    def informer(
        self,
        rt: ResourceType,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: dict[str, Indexer] | None = None,
    ) -> Informer:
        """The shared informer for this selection, created on first use; ``indexers`` are
        added to it."""
        key = (rt.group, rt.version, rt.plural, namespace, label_selector, field_selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(
                self.client,
                rt,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                indexers=indexers,
                resync_period=self.resync_period,
            )
            self._informers[key] = inf
        elif indexers:
            inf.store.add_indexers(indexers)
        return inf

    async def start(self) -> None:
        """Start every informer not yet running, each as its own task."""
        for key, inf in self._informers.items():
            if key not in self._tasks:
                self._tasks[key] = asyncio.create_task(inf.run(), name=inf._name)

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """True once every started informer has synced (False on timeout)."""
        waits = [self._informers[k].wait_synced() for k in self._tasks]
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*waits)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
