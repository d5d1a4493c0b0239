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
_ROWS_PER_STATEMENT = 500  # x 6 parameters stays well inside SQLite's and PostgreSQL's limits
_COMPACT_LOCK = 0x747567626F6174  # PostgreSQL advisory lock id of compaction ("tugboat")
_SCHEMA_LOCK = _COMPACT_LOCK + 1  # ... and of creating the tables


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
        self._writer: Any = None  # SQLite: the pooled connection batches are written on
        self.stages = self.sqlite  # commits in two halves: stage() and finish()
        if self.sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        with self.engine.begin() as conn:
            if not self.sqlite:  # servers starting together create the schema one at a time
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            _meta.create_all(conn)
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
        """One transaction for the batch (on SQLite: :meth:`stage`, then :meth:`finish`)."""
        if self.sqlite:
            outcomes = self.stage(writes)
            self.finish()
            return outcomes
        with self.engine.begin() as conn:
            # The driver's own cursor: SQLAlchemy's per-statement bookkeeping cost more CPU
            # than the database itself for these small statements.
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cur.execute("SELECT rev FROM head WHERE id = 1 FOR UPDATE")
            outcomes = self._apply(cur, writes, cur.fetchone()[0])
            cur.close()
        return outcomes

    def stage(self, writes: list[Write]) -> list[Outcome]:
        """SQLite: run the batch's statements in a new transaction left open for
        :meth:`finish`; on any error roll back and raise.

        The two halves let the API server run the statements on its event loop thread, which
        holds the GIL anyway, and only the durable COMMIT (fsync, GIL released) on a worker
        thread. Run whole on a worker thread, a batch waited for the GIL at every statement
        step while the event loop held it: about 4 ms per batch of 8 instead of 0.7."""
        conn = self._writer_connection()
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            cur.execute("SELECT rev FROM head WHERE id = 1")
            return self._apply(cur, writes, cur.fetchone()[0])
        except BaseException:
            conn.rollback()
            raise
        finally:
            cur.close()

    def finish(self) -> None:
        """SQLite: make the staged batch durable; on failure roll it back and raise."""
        conn = self._writer_connection()
        try:
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _writer_connection(self) -> Any:
        """The one SQLite connection batches are written on, kept for the backend's life."""
        if self._writer is None:
            self._writer = self.engine.raw_connection()
        return self._writer.driver_connection

    def _apply(self, cur: Any, writes: list[Write], rev: int) -> list[Outcome]:
        """Check and write a batch on ``cur`` inside an open transaction whose head revision
        is ``rev`` (read under the head-row lock): checks run against the stored revisions
        plus the batch's own earlier writes.

        The batch costs a handful of multi-row statements whatever its size: every SQLite
        statement step releases and retakes the GIL, so a statement per write (or an
        ``executemany``, a step per row) made a batch wait for the GIL dozens of times."""
        current = self._stored_revisions(cur, writes)
        upserts: dict[tuple[str, str, str], tuple[int, bytes]] = {}
        deletes: list[tuple[str, str, str]] = []
        logged: list[tuple] = []
        outcomes: list[Outcome] = []
        for w in writes:
            k = (w.key.resource, w.key.namespace, w.key.name)
            have = current.get(k)
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
                upserts.pop(k, None)
                deletes.append(k)
            else:
                current[k] = rev
                upserts[k] = (rev, raw)
            logged.append((rev, _EVENT[w.op], *k, raw))
            outcomes.append(Outcome(rev=rev, raw=raw))
        self._write_rows(cur, upserts, deletes, logged, rev)
        return outcomes

    def _stored_revisions(
        self, cur: Any, writes: list[Write]
    ) -> dict[tuple[str, str, str], int | None]:
        """The stored revision of every key the batch touches: one query per resource and
        namespace (and per ``_ROWS_PER_STATEMENT`` names); absent keys are left out."""
        names: dict[tuple[str, str], set[str]] = {}
        for w in writes:
            names.setdefault((w.key.resource, w.key.namespace), set()).add(w.key.name)
        p = self._p
        out: dict[tuple[str, str, str], int | None] = {}
        for (resource, namespace), group in names.items():
            ordered = sorted(group)
            for chunk in _chunks(ordered):
                cur.execute(
                    f"SELECT name, rev FROM objects WHERE resource = {p} AND namespace = {p} "
                    f"AND name IN ({', '.join([p] * len(chunk))})",
                    (resource, namespace, *chunk),
                )
                out.update(((resource, namespace, name), r) for name, r in cur.fetchall())
        return out

    def _write_rows(
        self,
        cur: Any,
        upserts: dict[tuple[str, str, str], tuple[int, bytes]],
        deletes: list[tuple[str, str, str]],
        logged: list[tuple],
        rev: int,
    ) -> None:
        """Deletes first (a key deleted and re-created in one batch is inserted afresh), then
        the new current rows as one upsert, the log rows and the head revision."""
        p = self._p
        if deletes:
            cur.executemany(
                f"DELETE FROM objects WHERE resource = {p} AND namespace = {p} AND name = {p}",
                deletes,
            )
        rows = [(*k, r, raw) for k, (r, raw) in upserts.items()]
        for chunk in _chunks(rows):
            cur.execute(
                "INSERT INTO objects (resource, namespace, name, rev, value) VALUES "
                + _placeholders(p, 5, len(chunk))
                + " ON CONFLICT (resource, namespace, name) DO UPDATE"
                " SET rev = excluded.rev, value = excluded.value",
                [v for row in chunk for v in row],
            )
        for chunk in _chunks(logged):
            cur.execute(
                "INSERT INTO log (rev, type, resource, namespace, name, value) VALUES "
                + _placeholders(p, 6, len(chunk)),
                [v for row in chunk for v in row],
            )
        if logged:
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
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.engine.dispose()


def _chunks(items: list) -> list[list]:
    step = _ROWS_PER_STATEMENT
    return [items[i : i + step] for i in range(0, len(items), step)]


def _placeholders(p: str, columns: int, rows: int) -> str:
    """``(?, ?), (?, ?)`` for ``rows`` rows of ``columns`` parameters in paramstyle ``p``."""
    row = "(" + ", ".join([p] * columns) + ")"
    return ", ".join([row] * rows)
