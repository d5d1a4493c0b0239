"""Storage behind one narrow interface (see :class:`Backend`).

The store keeps the current object per key and a revision log. The revision is one global,
strictly increasing integer per store; it is the ``resourceVersion`` of every object. A write is a
:class:`Write`; a batch of writes commits in one transaction and each write either applies whole or
fails with a reason, never partly. Backends are chosen by URL scheme: ``sqlite://`` and
``postgresql+psycopg://`` (both through SQLAlchemy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Op = Literal["create", "update", "delete"]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class Key:
    """Where an object lives: storage resource (``apps/deployments``), namespace, name."""

    resource: str
    namespace: str
    name: str


@dataclass
class Write:
    """One requested change.

    ``expected`` is the revision the object must have now (``None``: any); a create requires the
    key to be absent. ``obj`` is the full new object (for deletes: the final state, which the
    DELETED event carries); the backend stamps ``metadata.resourceVersion`` and serialises it.
    """

    op: Op
    key: Key
    obj: dict[str, Any]
    expected: int | None = None


@dataclass
class Outcome:
    """The result of one :class:`Write`: its revision and stored bytes, or why it failed."""

    rev: int = 0
    raw: bytes = b""
    error: Literal["exists", "missing", "conflict"] | None = None


@dataclass
class Record:
    """One entry of the revision log (also what a backend loads at start)."""

    rev: int
    type: EventType
    key: Key
    raw: bytes


class Compacted(Exception):
    """The log no longer holds the records after ``rev``: they were compacted away (up to and
    including ``compacted``). A reader this far behind must start again from a snapshot."""

    def __init__(self, rev: int, compacted: int) -> None:
        super().__init__(f"revisions after {rev} were compacted (up to {compacted})")
        self.rev = rev
        self.compacted = compacted


@dataclass
class Snapshot:
    """Everything a server needs at start: current objects, recent history, head revision."""

    rev: int
    compacted: int
    objects: list[tuple[Key, int, bytes]] = field(default_factory=list)
    history: list[Record] = field(default_factory=list)


class Backend(Protocol):
    """What the API server needs from a store. Backends are used from one writer thread."""

    def load(self, history: int) -> Snapshot:
        """Current objects and up to ``history`` most recent log records."""

    #: True when :meth:`stage` and :meth:`finish` split a commit (the writer then runs the
    #: statements on its own thread and only the durable part on a worker thread)
    stages: bool

    def commit(self, writes: list[Write]) -> list[Outcome]:
        """Apply writes in order in one durable transaction; a failed write changes nothing."""

    def stage(self, writes: list[Write]) -> list[Outcome]:
        """With ``stages``: :meth:`commit`'s statements, in a transaction left open."""

    def finish(self) -> None:
        """With ``stages``: make the staged transaction durable (or roll it back and raise)."""

    def compact(self, keep: int) -> int:
        """Drop log records older than the newest ``keep`` (at least one is kept); return the
        compacted revision. Idempotent, and safe to call from every server sharing the store:
        it only moves the store's compaction point forward."""

    def records_after(self, rev: int, limit: int = 10000) -> list[Record]:
        """Log records with revision > ``rev``, oldest first and without gaps (for servers
        sharing one store); raises :class:`Compacted` when revision ``rev + 1`` was compacted."""

    def close(self) -> None: ...


def open_backend(url: str) -> Backend:
    """Open the backend a URL names (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    from apiserver.storage.sql import SqlBackend

    if not (url.startswith("sqlite") or url.startswith("postgresql")):
        raise ValueError(
            f"unsupported storage URL {url!r}: use sqlite:/// or postgresql+psycopg://"
        )
    return SqlBackend(url)
