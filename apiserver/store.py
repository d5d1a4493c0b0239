"""The API server's view of storage: a backend, the watch cache, and a group-committing writer.

Every write goes through :meth:`Store.write`, which queues it for the single writer task. The
writer takes everything queued, commits it in one transaction on a worker thread, and
acknowledges each request only once its write is durable AND visible in the cache, so a read that
follows sees it.

Two ways the cache learns about commits:

* alone on a store (SQLite), the writer applies its own results, in revision order;
* sharing a store with other API servers (PostgreSQL), a follower task tails the revision log
  (``records_after``) and applies every server's writes, its own included, in revision order;
  the writer then waits until the follower has caught up with its revisions. Revisions are handed
  out under the store's head-row lock and committed in that order, so the log never shows a gap
  that a later commit fills.

Every server compacts the shared log (the store lets one do it at a time, and only moves the
compaction point forward). A follower that finds its next revision compacted away (it fell more
than ``history`` revisions behind) reloads the cache from a snapshot and ends its watches with
410 Expired, so that their clients re-list, rather than skip the events it never saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from apiserver.cache import WatchCache
from apiserver.storage import Backend, Compacted, Key, Outcome, Write, open_backend
from machinery.aio import wait_event

log = logging.getLogger(__name__)

_EVENT = {"create": "ADDED", "update": "MODIFIED", "delete": "DELETED"}


class Store:
    """Backend + cache + writer. Use from one asyncio loop; call :meth:`start` first."""

    def __init__(
        self,
        url: str,
        *,
        history: int = 50000,
        max_batch: int = 512,
        shared: bool | None = None,
        poll_interval: float = 0.02,
    ) -> None:
        self.backend: Backend = open_backend(url)
        self.history = history
        self.max_batch = max_batch
        self.shared = url.startswith("postgresql") if shared is None else shared
        self.poll_interval = poll_interval
        self.cache = WatchCache(window=history)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-follower")
        self._queue: asyncio.Queue[tuple[Write, asyncio.Future[Outcome]]] | None = None
        self._tasks: list[asyncio.Task] = []
        self._caught_up = asyncio.Condition()  # notified whenever the follower applied records
        self._kick = asyncio.Event()  # set after a commit: the follower reads the log at once
        self._writing = asyncio.Lock()  # a batch being written, or a compaction

    async def start(self, compact_every: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        snap = await loop.run_in_executor(self._pool, self.backend.load, self.history)
        self.cache.load(snap.rev, snap.compacted, snap.objects, snap.history)
        gc.freeze()  # what the cache loaded lives as long as the server: keep it out of GC scans
        self._queue = asyncio.Queue()
        self._tasks = [
            asyncio.create_task(self._writer(), name="store-writer"),
            asyncio.create_task(self._compactor(compact_every), name="store-compactor"),
        ]
        if self.shared:
            self._tasks.append(asyncio.create_task(self._follower(), name="store-follower"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        await asyncio.get_running_loop().run_in_executor(self._pool, self.backend.close)
        self._pool.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    async def write(self, w: Write) -> Outcome:
        """Queue one write; return its outcome once committed and visible in the cache."""
        assert self._queue is not None, "Store.start() was not called"
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((w, fut))
        return await fut

    async def _writer(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            writes = [w for w, _ in batch]
            try:
                async with self._writing:
                    if self.backend.stages:
                        outcomes = self.backend.stage(writes)
                        await loop.run_in_executor(self._pool, self.backend.finish)
                    else:
                        outcomes = await loop.run_in_executor(
                            self._pool, self.backend.commit, writes
                        )
            except Exception as exc:  # the whole batch failed: nothing was stored
                log.exception("store commit failed")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            if self.shared:
                newest = max((o.rev for o in outcomes if o.error is None), default=0)
                self._kick.set()
                async with self._caught_up:
                    await self._caught_up.wait_for(lambda newest=newest: self.cache.rev >= newest)
            for (w, fut), out in zip(batch, outcomes, strict=True):
                if out.error is None and not self.shared:
                    self.cache.apply(_EVENT[w.op], w.key, out.rev, w.obj, out.raw)
                if not fut.done():
                    fut.set_result(out)

    async def _follower(self) -> None:
        """Apply the log to the cache as it grows (shared stores only)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                records = await loop.run_in_executor(
                    self._reader, self.backend.records_after, self.cache.rev
                )
            except Compacted as gone:
                log.warning("%s: reloading the cache; open watches end with 410 Expired", gone)
                try:
                    await self._reload()
                except Exception:  # the next read finds the gap again and retries
                    log.exception("reloading the cache failed")
                    await asyncio.sleep(1)
                continue
            except Exception:
                log.exception("reading the revision log failed")
                await asyncio.sleep(1)
                continue
            for rec in records:
                if rec.rev <= self.cache.rev:
                    continue
                self.cache.apply(rec.type, rec.key, rec.rev, orjson.loads(rec.raw), rec.raw)
            if records:
                async with self._caught_up:
                    self._caught_up.notify_all()
            else:
                await wait_event(self._kick, self.poll_interval)
                self._kick.clear()

    async def _reload(self) -> None:
        """Replace the cache with a fresh snapshot of the store (see :meth:`WatchCache.reload`)."""
        loop = asyncio.get_running_loop()
        snap = await loop.run_in_executor(self._reader, self.backend.load, self.history)
        self.cache.reload(snap.rev, snap.compacted, snap.objects, snap.history)
        async with self._caught_up:
            self._caught_up.notify_all()

    async def _compactor(self, every: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            try:
                async with self._writing:  # never while a batch is staged
                    await loop.run_in_executor(self._pool, self.backend.compact, self.history)
            except Exception:
                log.exception("compaction failed")

    def get(self, key: Key) -> Any:
        return self.cache.get(key)
