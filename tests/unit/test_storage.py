"""The storage backend contract, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

from apiserver.storage import Key, Write, open_backend

PG = os.environ.get("TUGBOAT_TEST_POSTGRES")


def _pg_schema_url() -> str:
    """A fresh PostgreSQL schema per test, selected through the connection's search_path."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(PG)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    sep = "&" if "?" in PG else "?"
    return f"{PG}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        b = open_backend(f"sqlite:///{tmp_path}/state.db")
    else:
        if not PG:
            pytest.skip("no PostgreSQL configured (set TUGBOAT_TEST_POSTGRES)")
        b = open_backend(_pg_schema_url())
    yield b
    b.close()


def k(name: str) -> Key:
    return Key("/configmaps", "default", name)


def test_revisions_are_global_and_increasing(backend):
    outs = backend.commit([Write("create", k("a"), {"n": 1}), Write("create", k("b"), {"n": 2})])
    assert [o.rev for o in outs] == [1, 2]
    out = backend.commit([Write("update", k("a"), {"n": 3}, expected=1)])[0]
    assert out.rev == 3 and b'"resourceVersion":"3"' in out.raw


def test_failed_writes_change_nothing_and_do_not_spend_revisions(backend):
    backend.commit([Write("create", k("a"), {})])
    outs = backend.commit(
        [
            Write("create", k("a"), {"dup": True}),
            Write("update", k("missing"), {}),
            Write("update", k("a"), {"stale": True}, expected=99),
            Write("update", k("a"), {"ok": True}, expected=1),
        ]
    )
    assert [o.error for o in outs] == ["exists", "missing", "conflict", None]
    assert outs[3].rev == 2
    snap = backend.load(100)
    assert snap.rev == 2
    [(key, rev, raw)] = snap.objects
    assert key == k("a") and rev == 2 and b'"ok":true' in raw


def test_delete_and_recreate_in_one_batch(backend):
    backend.commit([Write("create", k("a"), {"v": 1})])
    outs = backend.commit([Write("delete", k("a"), {"v": 1}), Write("create", k("a"), {"v": 2})])
    assert [o.error for o in outs] == [None, None]
    [(_, rev, raw)] = backend.load(100).objects
    assert rev == 3 and b'"v":2' in raw


def test_a_key_written_several_times_in_one_batch_keeps_the_last(backend):
    backend.commit([Write("create", k("a"), {"v": 1})])
    outs = backend.commit(
        [
            Write("update", k("a"), {"v": 2}, expected=1),
            Write("update", k("a"), {"v": 3}, expected=2),
            Write("create", k("b"), {"v": 1}),
            Write("delete", k("b"), {"v": 1}),
            Write("create", k("c"), {"v": 1}),
            Write("update", k("c"), {"v": 2}, expected=99),  # conflict: c is at 5
        ]
    )
    assert [o.error for o in outs] == [None, None, None, None, None, "conflict"]
    objects = {key.name: (rev, raw) for key, rev, raw in backend.load(100).objects}
    assert set(objects) == {"a", "c"}
    assert objects["a"][0] == 3 and b'"v":3' in objects["a"][1]
    assert objects["c"][0] == 6
    assert [r.type for r in backend.records_after(1)] == [
        "MODIFIED",
        "MODIFIED",
        "ADDED",
        "DELETED",
        "ADDED",
    ]


def test_batches_larger_than_one_statement(backend):
    names = [f"n{i:04d}" for i in range(1203)]  # more than two statements' worth of rows
    other = Key("/secrets", "kube-system", "n0001")  # same name, another resource/namespace
    outs = backend.commit(
        [Write("create", k(n), {"i": n}) for n in names] + [Write("create", other, {})]
    )
    assert [o.rev for o in outs] == list(range(1, 1205))
    outs = backend.commit(
        [Write("update", k(n), {"i": n, "u": 1}, expected=i + 1) for i, n in enumerate(names)]
        + [Write("create", other, {})]
    )
    assert all(o.error is None for o in outs[:-1]) and outs[-1].error == "exists"
    snap = backend.load(5000)
    assert len(snap.objects) == 1204 and snap.rev == 2407
    assert all(b'"u":1' in raw for key, _, raw in snap.objects if key != other)


def test_log_records_and_compaction(backend):
    for i in range(10):
        backend.commit([Write("create", k(f"c{i}"), {})])
    assert [r.rev for r in backend.records_after(7)] == [8, 9, 10]
    assert {r.type for r in backend.records_after(0)} == {"ADDED"}
    assert backend.compact(keep=3) == 7
    snap = backend.load(100)
    assert snap.compacted == 7 and [r.rev for r in snap.history] == [8, 9, 10]
    assert len(snap.objects) == 10


def test_reopen_keeps_state(tmp_path):
    url = f"sqlite:///{tmp_path}/state.db"
    b = open_backend(url)
    b.commit([Write("create", k("keep"), {"x": 1})])
    b.close()
    b = open_backend(url)
    snap = b.load(10)
    assert snap.rev == 1 and snap.objects[0][0] == k("keep")
    b.close()


def test_unknown_url_scheme_fails_loudly():
    with pytest.raises(ValueError, match="unsupported storage URL"):
        open_backend("etcd://localhost:2379")


def test_a_failed_finish_stores_nothing(tmp_path, monkeypatch):
    """SQLite commits in two halves; when the durable half fails the staged batch is gone."""
    import sqlite3

    b = open_backend(f"sqlite:///{tmp_path}/state.db")
    b.commit([Write("create", k("a"), {})])
    assert b.stage([Write("create", k("b"), {})])[0].rev == 2
    real = b._writer_connection()

    class FailingCommit:
        def __getattr__(self, name):
            return getattr(real, name)

        def commit(self):
            raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(b, "_writer_connection", FailingCommit)
    with pytest.raises(sqlite3.OperationalError):
        b.finish()
    monkeypatch.undo()
    snap = b.load(100)
    assert snap.rev == 1 and [key.name for key, _, _ in snap.objects] == ["a"]
    assert b.commit([Write("create", k("b"), {})])[0].rev == 2
    b.close()


def test_servers_starting_together_share_one_schema():
    """API servers started at once on an empty PostgreSQL schema create it one at a time."""
    if not PG:
        pytest.skip("no PostgreSQL configured (set TUGBOAT_TEST_POSTGRES)")
    from concurrent.futures import ThreadPoolExecutor

    url = _pg_schema_url()
    with ThreadPoolExecutor(4) as pool:
        backends = list(pool.map(lambda _: open_backend(url), range(4)))
    try:
        assert backends[0].commit([Write("create", k("a"), {})])[0].rev == 1
        assert all(b.load(10).rev == 1 for b in backends)
    finally:
        for b in backends:
            b.close()
