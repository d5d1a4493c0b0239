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
from sqlalchemy.engine import Connection, Engine

from apiserver.storage import Key, Outcome, Record, Snapshot, Write

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
        self.engine: Engine = create_engine(url, pool_pre_ping=not self.sqlite)
        if self.sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _meta.create_all(self.engine)
        with self.engine.begin() as conn:
            if conn.execute(select(head.c.rev)).first() is None:
                conn.execute(insert(head).values(id=1, rev=0, compacted=0))

    def load(self, history: int) -> Snapshot:
        with self.engine.connect() as conn:
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
        with self.engine.begin() as conn:
            query = select(head.c.rev).where(head.c.id == 1)
            if not self.sqlite:
                query = query.with_for_update()
            rev = conn.execute(query).scalar_one()
            outcomes = []
            for w in writes:
                outcome = self._apply(conn, w, rev + 1)
                if outcome.error is None:
                    rev += 1
                outcomes.append(outcome)
            conn.execute(update(head).where(head.c.id == 1).values(rev=rev))
        return outcomes

    def _apply(self, conn: Connection, w: Write, rev: int) -> Outcome:
        k = w.key
        where = (
            (objects.c.resource == k.resource)
            & (objects.c.namespace == k.namespace)
            & (objects.c.name == k.name)
        )
        current = conn.execute(select(objects.c.rev).where(where)).scalar()
        if w.op == "create" and current is not None:
            return Outcome(error="exists")
        if w.op != "create":
            if current is None:
                return Outcome(error="missing")
            if w.expected is not None and w.expected != current:
                return Outcome(error="conflict")
        w.obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
        raw = orjson.dumps(w.obj)
        if w.op == "create":
            conn.execute(
                insert(objects).values(
                    resource=k.resource, namespace=k.namespace, name=k.name, rev=rev, value=raw
                )
            )
        elif w.op == "update":
            conn.execute(update(objects).where(where).values(rev=rev, value=raw))
        else:
            conn.execute(delete(objects).where(where))
        conn.execute(
            insert(log).values(
                rev=rev,
                type=_EVENT[w.op],
                resource=k.resource,
                namespace=k.namespace,
                name=k.name,
                value=raw,
            )
        )
        return Outcome(rev=rev, raw=raw)

    def compact(self, keep: int) -> int:
        with self.engine.begin() as conn:
            rev = conn.execute(select(head.c.rev)).scalar_one()
            point = max(0, rev - keep)
            conn.execute(delete(log).where(log.c.rev <= point))
            conn.execute(update(head).where(head.c.id == 1).values(compacted=point))
        return point

    def records_after(self, rev: int, limit: int = 10000) -> list[Record]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(log).where(log.c.rev > rev).order_by(log.c.rev).limit(limit))
            return [
                Record(r.rev, r.type, Key(r.resource, r.namespace, r.name), r.value) for r in rows
            ]

    def close(self) -> None:
        self.engine.dispose()
