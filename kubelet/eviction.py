"""Local-storage eviction: a pod whose disk ``emptyDir`` outgrows its ``sizeLimit`` is evicted.

As the Kubernetes kubelet's eviction manager does, every ``period`` seconds the node agent
measures each running pod's disk-backed ``emptyDir`` volumes that state a ``sizeLimit`` (like
``du``: allocated blocks, not crossing into other file systems, links not followed) and, for
the first volume over its limit, hands the pod worker the message
``Usage of EmptyDir volume "NAME" exceeds the limit "SIZE". ``; the worker then kills the pod
and reports phase ``Failed``, reason ``Evicted`` with an ``Evicted`` event
(:meth:`kubelet.podworker.PodWorker.evict`). ``medium: Memory`` volumes are tmpfs mounts of
that size already and are not measured.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from machinery.quantity import format_bytes, to_bytes

log = logging.getLogger(__name__)

Obj = dict[str, Any]
REASON = "Evicted"
DEFAULT_PERIOD = 10.0
TERMINAL = ("Succeeded", "Failed")


class Evictable(Protocol):
    """What the checker needs of a pod worker."""

    pod: Obj | None

    def empty_dir(self, name: str) -> Path: ...

    def evict(self, message: str) -> None: ...


def size_limits(pod: Obj) -> dict[str, int]:
    """Disk ``emptyDir`` volume name → its ``sizeLimit`` in bytes."""
    out = {}
    for v in (pod.get("spec") or {}).get("volumes") or []:
        spec = v.get("emptyDir")
        if spec is not None and spec.get("medium") != "Memory" and spec.get("sizeLimit"):
            out[v["name"]] = to_bytes(spec["sizeLimit"])
    return out


def disk_usage(path: Path) -> int:
    """Bytes allocated below ``path`` (``du -s -x -B1``); 0 when it does not exist."""
    try:
        device = path.lstat().st_dev
    except FileNotFoundError:
        return 0
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if st.st_dev != device:
                if stat.S_ISDIR(st.st_mode):
                    dirnames.remove(name)
                continue
            total += st.st_blocks * 512
    return total


def violation(pod: Obj, usage: dict[str, int]) -> str | None:
    """The eviction message for the first volume over its limit, else ``None``."""
    for name, limit in size_limits(pod).items():
        if usage.get(name, 0) > limit:
            return f'Usage of EmptyDir volume "{name}" exceeds the limit "{format_bytes(limit)}". '
    return None


def check(worker: Evictable) -> str | None:
    """Measure one pod's limited volumes; returns the eviction message (blocking I/O)."""
    pod = worker.pod
    if pod is None or (pod.get("status") or {}).get("phase") in TERMINAL:
        return None
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    names = size_limits(pod)
    if not names:
        return None
    return violation(pod, {name: disk_usage(worker.empty_dir(name)) for name in names})


async def run(workers: Callable[[], Iterable[Evictable]], period: float = DEFAULT_PERIOD) -> None:
    """Every ``period`` seconds, evict the pods whose volumes exceed their limits."""
    while True:
        for worker in list(workers()):
            try:
                message = await asyncio.to_thread(check, worker)
            except OSError as err:
                log.warning("measuring emptyDir volumes failed: %s", err)
                continue
            if message is not None:
                worker.evict(message)
        await asyncio.sleep(period)
