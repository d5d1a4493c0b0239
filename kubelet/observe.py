"""What the runtime holds for one pod, read back from CRI: :class:`PodRuntime`.

The snapshot is built only from CRI state and the labels/annotations the agent wrote
(:mod:`kubelet.labels`), so a restarted agent sees exactly what the previous one left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from . import labels as L
from .cri import api_pb2 as pb
from .cri.errors import CriNotFound

T = TypeVar("T")
RUNNING = "running"
EXITED = "exited"
CREATED = "created"
UNKNOWN = "unknown"
_STATES = {
    pb.CONTAINER_RUNNING: RUNNING,
    pb.CONTAINER_EXITED: EXITED,
    pb.CONTAINER_CREATED: CREATED,
    pb.CONTAINER_UNKNOWN: UNKNOWN,
}


@dataclass(frozen=True)
class ContainerRecord:
    """One container instance. Times are epoch seconds (0: not yet)."""

    id: str
    name: str
    sandbox_id: str
    restart_count: int
    state: str
    init: bool = False
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    hash: str = ""
    log_path: str = ""
    pre_stop: str = ""  # JSON of lifecycle.preStop, if any
    grace: int | None = None  # terminationGracePeriodSeconds when it was created


@dataclass(frozen=True)
class SandboxRecord:
    id: str
    attempt: int
    ready: bool
    created_at: float
    ip: str = ""
    extra_ips: tuple[str, ...] = ()


@dataclass
class PodRuntime:
    """A pod's sandboxes (newest first) and containers by name (newest instance first)."""

    uid: str
    sandboxes: list[SandboxRecord] = field(default_factory=list)
    containers: dict[str, list[ContainerRecord]] = field(default_factory=dict)

    @property
    def sandbox(self) -> SandboxRecord | None:
        """The newest sandbox, ready or not."""
        return self.sandboxes[0] if self.sandboxes else None

    def latest(self, name: str, sandbox_id: str | None = None) -> ContainerRecord | None:
        """The newest instance of container ``name`` (in ``sandbox_id`` if given)."""
        for c in self.containers.get(name, ()):
            if sandbox_id is None or c.sandbox_id == sandbox_id:
                return c
        return None

    def previous(self, name: str) -> ContainerRecord | None:
        """The instance before the newest one (for ``lastState`` and ``logs --previous``)."""
        instances = self.containers.get(name, ())
        return instances[1] if len(instances) > 1 else None

    def restart_count(self, name: str) -> int:
        latest = self.latest(name)
        return latest.restart_count if latest else 0

    def all_containers(self) -> list[ContainerRecord]:
        return [c for items in self.containers.values() for c in items]

    def running(self) -> list[ContainerRecord]:
        return [c for c in self.all_containers() if c.state in (RUNNING, CREATED, UNKNOWN)]

    @property
    def empty(self) -> bool:
        return not self.sandboxes and not self.containers


RuntimeView = dict[str, str]
"""A pod's runtime objects by key and state: ``s<id>`` → ready|notready for a sandbox,
``c<id>`` → running|exited|created|unknown for a container."""


def sandbox_state(ready: bool) -> str:
    return "ready" if ready else "notready"


def container_state(state: int) -> str:
    return _STATES.get(state, UNKNOWN)


def runtime_view(rt: PodRuntime) -> RuntimeView:
    """The :data:`RuntimeView` of a snapshot (what the runtime poller compares against)."""
    view = {"s" + s.id: sandbox_state(s.ready) for s in rt.sandboxes}
    view.update(("c" + c.id, c.state) for c in rt.all_containers())
    return view


class Runtime(Protocol):
    async def list_pod_sandbox(self, *, labels: dict[str, str] | None = None) -> list: ...
    async def list_containers(self, *, labels: dict[str, str] | None = None) -> list: ...
    async def pod_sandbox_status(self, pod_sandbox_id: str) -> pb.PodSandboxStatus: ...
    async def container_status(self, container_id: str) -> pb.ContainerStatus: ...


def _seconds(ns: int) -> float:
    return ns / 1e9 if ns else 0.0


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def sandbox_record(
    s: pb.PodSandbox | pb.PodSandboxStatus, status: pb.PodSandboxStatus | None
) -> SandboxRecord:
    """The record of sandbox ``s`` (a list item or its status); ``status`` gives the IPs."""
    ip, extra = "", ()
    if status is not None:
        ip = status.network.ip
        extra = tuple(x.ip for x in status.network.additional_ips)
    ready = s.state == pb.SANDBOX_READY
    return SandboxRecord(s.id, s.metadata.attempt, ready, _seconds(s.created_at), ip, extra)


def container_record(
    container_id: str, st: pb.ContainerStatus, sandbox_id: str, listed: pb.Container | None = None
) -> ContainerRecord:
    """The record of one container from its ContainerStatus (``listed``: its list item, whose
    labels and annotations stand in for missing ones)."""
    ann = dict(st.annotations) or (dict(listed.annotations) if listed is not None else {})
    lab = dict(st.labels) or (dict(listed.labels) if listed is not None else {})
    return ContainerRecord(
        id=container_id,
        name=st.metadata.name or (listed.metadata.name if listed is not None else ""),
        sandbox_id=sandbox_id,
        restart_count=_int(ann.get(L.RESTART_COUNT)),
        state=container_state(st.state),
        init=lab.get(L.CONTAINER_TYPE) == "init",
        created_at=_seconds(st.created_at),
        started_at=_seconds(st.started_at),
        finished_at=_seconds(st.finished_at),
        exit_code=st.exit_code,
        reason=st.reason,
        message=st.message,
        image=st.image.image,
        image_ref=st.image_ref,
        hash=ann.get(L.CONTAINER_HASH, ""),
        log_path=st.log_path,
        pre_stop=ann.get(L.PRE_STOP, ""),
        grace=_int(ann[L.GRACE_PERIOD]) if L.GRACE_PERIOD in ann else None,
    )


async def _or_none(call: Awaitable[T]) -> T | None:
    try:
        return await call
    except CriNotFound:
        return None


def assemble(
    uid: str, sandboxes: list[SandboxRecord], records: list[ContainerRecord]
) -> PodRuntime:
    """A :class:`PodRuntime` with sandboxes and container instances in their order."""
    out = PodRuntime(uid, sorted(sandboxes, key=lambda s: (s.attempt, s.created_at), reverse=True))
    for r in sorted(records, key=lambda r: (r.restart_count, r.created_at), reverse=True):
        out.containers.setdefault(r.name, []).append(r)
    return out


async def observe(runtime: Runtime, uid: str, node: str) -> PodRuntime:
    """Read the pod's sandboxes and containers (with their statuses) from the runtime; the
    calls that do not depend on each other run concurrently."""
    selector = {L.POD_UID: uid, L.NODE: node}
    listed_sandboxes, listed = await asyncio.gather(
        runtime.list_pod_sandbox(labels=selector), runtime.list_containers(labels=selector)
    )
    ready = [s for s in listed_sandboxes if s.state == pb.SANDBOX_READY]
    answers = await asyncio.gather(
        *(_or_none(runtime.pod_sandbox_status(s.id)) for s in ready),
        *(_or_none(runtime.container_status(c.id)) for c in listed),
    )
    found = dict(zip((s.id for s in ready), answers[: len(ready)], strict=True))
    sandboxes = [
        sandbox_record(s, found.get(s.id))
        for s in listed_sandboxes
        if s.state != pb.SANDBOX_READY or found.get(s.id) is not None
    ]
    records = [
        container_record(c.id, st, c.pod_sandbox_id, c)
        for c, st in zip(listed, answers[len(ready) :], strict=True)
        if st is not None
    ]
    return assemble(uid, sandboxes, records)
