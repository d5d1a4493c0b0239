"""Compaction of a store shared by several API servers: one compacts at a time, only forward,
and a server whose next revisions were compacted away reloads instead of skipping them.

Runs on one SQLite file shared by two stores (``shared=True``) and, when configured, on
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text

from apiserver.storage import Compacted, Key, Write, open_backend
from apiserver.storage.sql import _COMPACT_LOCK
from apiserver.store import Store
from tests.unit.test_storage import PG, _pg_schema_url

CM = "/configmaps"


def k(name: str) -> Key:
    return Key(CM, "default", name)


def cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state.db"
    elif not PG:
        pytest.skip("no PostgreSQL configured (set TUGBOAT_TEST_POSTGRES)")
    else:
        yield _pg_schema_url()


def test_compaction_only_moves_forward_and_keeps_the_newest_record(url):
    a, b = open_backend(url), open_backend(url)
    try:
        for i in range(10):
            a.commit([Write("create", k(f"c{i}"), cm(f"c{i}"))])
        assert a.compact(keep=4) == 6
        assert b.compact(keep=4) == 6  # the other server: nothing left to do
        assert b.compact(keep=8) == 6  # never back
        assert b.compact(keep=0) == 9  # the newest record stays
        assert [r.rev for r in a.records_after(9)] == [10]
        assert a.load(100).compacted == 9
    finally:
        a.close()
        b.close()


def test_reading_past_the_compaction_point_raises_compacted(url):
    backend = open_backend(url)
    try:
        for i in range(6):
            backend.commit([Write("create", k(f"c{i}"), cm(f"c{i}"))])
        backend.compact(keep=2)
        assert [r.rev for r in backend.records_after(4)] == [5, 6]
        with pytest.raises(Compacted) as gone:
            backend.records_after(2)
        assert (gone.value.rev, gone.value.compacted) == (2, 4)
    finally:
        backend.close()


@pytest.mark.skipif(not PG, reason="no PostgreSQL configured (set TUGBOAT_TEST_POSTGRES)")
def test_one_server_compacts_at_a_time_on_postgresql():
    url = _pg_schema_url()
    backend = open_backend(url)
    other = create_engine(url)
    try:
        for i in range(6):
            backend.commit([Write("create", k(f"c{i}"), cm(f"c{i}"))])
        with other.begin() as conn:  # another server is compacting
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_COMPACT_LOCK})"))
            assert backend.compact(keep=2) == 0
            assert [r.rev for r in backend.records_after(0)] == [1, 2, 3, 4, 5, 6]
        assert backend.compact(keep=2) == 4
    finally:
        other.dispose()
        backend.close()


class Gate:
    """Holds a store's log reads (its follower) until opened; says when one is waiting."""

    def __init__(self, read: Callable) -> None:
        self.read = read
        self.open = threading.Event()
        self.open.set()
        self.waiting = threading.Event()

    def __call__(self, rev: int, limit: int = 10000):
        self.waiting.set()
        self.open.wait()
        return self.read(rev, limit)


async def test_a_server_behind_the_compaction_point_reloads_and_expires_its_watches(url):
    a = Store(url, history=5, shared=True)
    b = Store(url, history=5, shared=True)
    gate = Gate(b.backend.records_after)
    b.backend.records_after = gate  # type: ignore[method-assign]
    await a.start(compact_every=3600)
    await b.start(compact_every=3600)
    heard: list[tuple[str, str]] = []
    b.cache.listen(CM, lambda typ, new, old: heard.append((typ, (new or old)["metadata"]["name"])))
    try:
        await a.write(Write("create", k("early"), cm("early")))
        await a.write(Write("create", k("gone"), cm("gone")))
        while b.cache.rev < a.cache.rev:
            await asyncio.sleep(0.01)
        watch = b.cache.watch(CM, None, None, b.cache.rev)
        behind = b.cache.rev

        gate.open.clear()  # b stops reading the log: its connection to the store is stuck
        gate.waiting.clear()
        b._kick.set()
        assert await asyncio.to_thread(gate.waiting.wait, 10)
        await a.write(Write("delete", k("gone"), cm("gone")))
        for i in range(12):
            await a.write(Write("create", k(f"late{i}"), cm(f"late{i}")))
        point = await asyncio.to_thread(a.backend.compact, a.history)
        assert point > behind + 1
        gate.open.set()

        async with asyncio.timeout(10):
            while b.cache.rev < a.cache.rev:
                await asyncio.sleep(0.01)
        # the watch could not be given the compacted events: 410, its client re-lists
        assert watch.queue.get_nowait() is None
        assert watch.expired and "too old" in (watch.closed or "")
        names = {name for (_, name), _ in b.cache.list(CM)}
        assert names == {"early"} | {f"late{i}" for i in range(12)}
        assert ("DELETED", "gone") in heard and ("ADDED", "late11") in heard
        assert ("ADDED", "early") not in heard[2:]  # unchanged objects are not re-announced
        with pytest.raises(LookupError):
            b.cache.watch(CM, None, None, behind)

        # b carries on as a follower of the shared log
        out = await b.write(Write("create", k("after"), cm("after")))
        assert out.error is None and b.cache.get(k("after")) is not None
        async with asyncio.timeout(10):
            while a.cache.get(k("after")) is None:
                await asyncio.sleep(0.01)
    finally:
        gate.open.set()
        await b.stop()
        await a.stop()
