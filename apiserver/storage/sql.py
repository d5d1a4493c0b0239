"""SQLAlchemy backend: SQLite (WAL, ``synchronous=FULL`` per batch) or PostgreSQL.

Schema: ``objects`` (current state, one row per key), ``log`` (one row per revision), ``head``
(one row: the newest revision and the compaction point). A batch takes the head row first
(``FOR UPDATE`` on PostgreSQL; SQLite has one writer), so revisions are handed out and committed in
the same order by every server sharing the store.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

from apiserver.storage import Compacted, Key, Outcome, Record, Snapshot, Write

_meta = MetaData()
objects = Table(
    "objects",
    _meta,
    Column("resource", String(200), primary_key=True),
    Column("namespace", String(253), primary_key=True),
    Column("name", String(253), primary_key=True),
    Column("rev", BigInteger, nullable=False),
    Column("value", LargeBinary, nullable=False),
)
log = Table(
    "log",
    _meta,
    Column("rev", BigInteger, primary_key=True, autoincrement=False),
    Column("type", String(10), nullable=False),
    Column("resource", String(200), nullable=False),
    Column("namespace", String(253), nullable=False),
    Column("name", String(253), nullable=False),
    Column("value", LargeBinary, nullable=False),
)
head = Table(
    "head",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("rev", BigInteger, nullable=False),
    Column("compacted", BigInteger, nullable=False),
)

_EVENT = {"create": "ADDED", "update": "MODIFIED", "delete": "DELETED"}
_COMPACT_LOCK = 0x747567626F6174  # PostgreSQL advisory lock id of compaction ("tugboat")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class SqlBackend:
    """The storage :class:`~apiserver.storage.Backend` on any SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        self._p = "?" if self.sqlite else "%s"  # the driver's paramstyle, for raw statements
        self.engine: Engine = create_engine(url, pool_pre_ping=not self.sqlite)
        if self.sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _meta.create_all(self.engine)
        with self.engine.begin() as conn:
            if conn.execute(select(head.c.rev)).first() is None:
                conn.execute(insert(head).values(id=1, rev=0, compacted=0))

    def load(self, history: int) -> Snapshot:
        with self.engine.connect() as conn:
            if not self.sqlite:  # one snapshot for the head, the objects and the log
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            rev, compacted = conn.execute(select(head.c.rev, head.c.compacted)).one()
            objs = [
                (Key(r.resource, r.namespace, r.name), r.rev, r.value)
                for r in conn.execute(select(objects))
            ]
            recent = conn.execute(
                select(log).where(log.c.rev > max(compacted, rev - history)).order_by(log.c.rev)
            )
            records = [
                Record(r.rev, r.type, Key(r.resource, r.namespace, r.name), r.value) for r in recent
            ]
        return Snapshot(rev=rev, compacted=compacted, objects=objs, history=records)

    def commit(self, writes: list[Write]) -> list[Outcome]:
        """One transaction for the batch. The checks run against the stored revisions (read
        under the head-row lock) plus the batch's own earlier writes; the rows are then written
        with one ``executemany`` per statement, which is what makes batching pay."""
        p = self._p
        with self.engine.begin() as conn:
            # The driver's own cursor: SQLAlchemy's per-statement bookkeeping cost more CPU
            # than SQLite itself for these small statements (the writer shares the GIL with
            # the request path).
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            lock = " FOR UPDATE" if not self.sqlite else ""
            cur.execute(f"SELECT rev FROM head WHERE id = 1{lock}")
            rev = cur.fetchone()[0]
            current: dict[tuple[str, str, str], int | None] = {}
            select_rev = (
                f"SELECT rev FROM objects WHERE resource = {p} AND namespace = {p} AND name = {p}"
            )
            for w in writes:
                k = (w.key.resource, w.key.namespace, w.key.name)
                if k not in current:
                    cur.execute(select_rev, k)
                    row = cur.fetchone()
                    current[k] = row[0] if row is not None else None
            inserts: list[tuple] = []
            updates: list[tuple] = []
            deletes: list[tuple] = []
            logged: list[tuple] = []
            outcomes: list[Outcome] = []
            for w in writes:
                k = (w.key.resource, w.key.namespace, w.key.name)
                have = current[k]
                if w.op == "create" and have is not None:
                    outcomes.append(Outcome(error="exists"))
                    continue
                if w.op != "create" and have is None:
                    outcomes.append(Outcome(error="missing"))
                    continue
                if w.op != "create" and w.expected is not None and w.expected != have:
                    outcomes.append(Outcome(error="conflict"))
                    continue
                rev += 1
                w.obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
                raw = orjson.dumps(w.obj)
                if w.op == "delete":
                    current[k] = None
                    deletes.append(k)
                    inserts = [r for r in inserts if r[:3] != k]
                    updates = [r for r in updates if r[2:] != k]
                elif have is None:
                    inserts.append((*k, rev, raw))
                    current[k] = rev
                else:
                    updates.append((rev, raw, *k))
                    current[k] = rev
                logged.append((rev, _EVENT[w.op], *k, raw))
                outcomes.append(Outcome(rev=rev, raw=raw))
            self._write_rows(cur, inserts, updates, deletes, logged, rev)
            cur.close()
        return outcomes

    def _write_rows(
        self,
        cur: Any,
        inserts: list[tuple],
        updates: list[tuple],
        deletes: list[tuple],
        logged: list[tuple],
        rev: int,
    ) -> None:
        """Deletes first (a key deleted and re-created in one batch is inserted afresh), then
        inserts, updates, the log rows and the head revision, one statement each."""
        p = self._p
        where = f"resource = {p} AND namespace = {p} AND name = {p}"
        if deletes:
            cur.executemany(f"DELETE FROM objects WHERE {where}", deletes)
        if inserts:
            cur.executemany(
                f"INSERT INTO objects (resource, namespace, name, rev, value) "
                f"VALUES ({p}, {p}, {p}, {p}, {p})",
                inserts,
            )
        if updates:
            cur.executemany(f"UPDATE objects SET rev = {p}, value = {p} WHERE {where}", updates)
        if logged:
            cur.executemany(
                f"INSERT INTO log (rev, type, resource, namespace, name, value) "
                f"VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                logged,
            )
            cur.execute(f"UPDATE head SET rev = {p} WHERE id = 1", (rev,))

    def compact(self, keep: int) -> int:
        """Servers sharing the store all call this: on PostgreSQL one runs at a time (the
        others find the advisory lock taken and return), and nothing happens unless the head's
        compaction point is behind ``rev - keep``. The newest record is always kept, so a
        reader behind the head finds out from the log itself that it fell behind."""
        keep = max(1, keep)
        with self.engine.begin() as conn:
            if not self.sqlite:
                mine = conn.exec_driver_sql(f"SELECT pg_try_advisory_xact_lock({_COMPACT_LOCK})")
                if not mine.scalar_one():
                    return conn.execute(select(head.c.compacted)).scalar_one()
            rev, compacted = conn.execute(select(head.c.rev, head.c.compacted)).one()
            point = rev - keep
            if point <= compacted:
                return compacted
            conn.execute(delete(log).where(log.c.rev <= point))
            conn.execute(
                update(head).where(head.c.id == 1, head.c.compacted < point).values(compacted=point)
            )
        return point

    def records_after(self, rev: int, limit: int = 10000) -> list[Record]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(log).where(log.c.rev > rev).order_by(log.c.rev).limit(limit)
            ).all()
            if rows and rows[0].rev != rev + 1:
                compacted = conn.execute(select(head.c.compacted)).scalar_one()
                if compacted > rev:
                    raise Compacted(rev, compacted)
                # revisions are handed out and committed in order, so this is a broken store
                raise RuntimeError(f"revision log has a gap: {rows[0].rev} follows {rev}")
            return [
                Record(r.rev, r.type, Key(r.resource, r.namespace, r.name), r.value) for r in rows
            ]

    def close(self) -> None:
        self.engine.dispose()
