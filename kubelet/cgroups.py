"""Pod-level cgroups and the QoS tree, as the Kubernetes kubelet lays them out (cgroupfs driver).

Layout under the agent's ``--cgroup-root`` (several agents on one machine each have their own
root)::

    <root>/kubepods/pod<uid>               Guaranteed pods (kubepods itself: no limits set)
    <root>/kubepods/burstable/pod<uid>     Burstable pods (class cpu.shares: their cpu requests)
    <root>/kubepods/besteffort/pod<uid>    BestEffort pods (class cpu.shares: 2)

The sandbox's ``cgroup_parent`` is the pod cgroup (:func:`kubelet.specs.cgroup_parent`), so the
runtime creates each container's cgroup inside it. Before the sandbox starts, the pod cgroup
gets the pod-level limits Kubernetes computes (:func:`pod_cgroup`, pure):

- cpu shares from the sum of the requests (2 when none: BestEffort);
- a CFS quota from the sum of the cpu limits, only when every container states one;
- a memory limit of the sum of the memory limits, only when every container states one;
- init containers count by their largest value when that exceeds the app containers' sum.

Limits are written on cgroup v1 (``cpu.shares``, ``cpu.cfs_*``, ``memory.limit_in_bytes`` in the
``cpu`` and ``memory`` hierarchies) or, on a host whose cgroup v2 tree has the cpu and memory
controllers, in that tree (``cpu.weight`` converted from the shares as Kubernetes does,
``cpu.max``, ``memory.max``), after enabling the controllers in each ancestor's
``cgroup.subtree_control``. A hybrid host's v2 tree (``/sys/fs/cgroup/unified``) has no
controllers, so there only the directories are made.

Removal is the pod worker's (``remove_cgroup`` of every candidate path, see
:func:`candidate_paths`): CRI never removes pod-level cgroups. The
``kubepods`` tree itself stays until ``tug down`` removes the agent's cgroup root.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machinery.quantity import cpu_millis, to_bytes

from .cri.cgroups import CGROUP_MOUNT, hierarchies, remove_cgroup
from .specs import (
    CPU_PERIOD,
    MAX_SHARES,
    MIN_SHARES,
    QOS_CGROUPS,
    cpu_quota,
    cpu_shares,
    qos_cgroup,
    qos_class,
    requests_and_limits,
)

Obj = dict[str, Any]
V2_CONTROLLERS = frozenset({"cpu", "memory"})


@dataclass(frozen=True)
class PodCgroup:
    """A pod cgroup and its limits (``None``: unlimited)."""

    path: str
    cpu_shares: int
    cpu_quota: int | None = None  # microseconds per ``cpu_period``
    cpu_period: int = CPU_PERIOD
    memory_limit: int | None = None  # bytes

    def v1_files(self) -> dict[str, dict[str, str]]:
        """Controller → {file: value} to write in that cgroup v1 hierarchy."""
        cpu = {"cpu.shares": str(self.cpu_shares)}
        if self.cpu_quota is not None:
            cpu["cpu.cfs_period_us"] = str(self.cpu_period)
            cpu["cpu.cfs_quota_us"] = str(self.cpu_quota)
        out = {"cpu": cpu}
        if self.memory_limit is not None:
            out["memory"] = {"memory.limit_in_bytes": str(self.memory_limit)}
        return out

    def v2_files(self) -> dict[str, str]:
        """{file: value} to write in the pod's cgroup v2 directory."""
        out = {"cpu.weight": str(cpu_weight(self.cpu_shares))}
        if self.cpu_quota is not None:
            out["cpu.max"] = f"{self.cpu_quota} {self.cpu_period}"
        if self.memory_limit is not None:
            out["memory.max"] = str(self.memory_limit)
        return out


def cpu_weight(shares: int) -> int:
    """Kubernetes' ``CpuSharesToCpuWeight``: cpu shares [2, 262144] onto cgroup v2's
    ``cpu.weight`` [1, 10000]."""
    return 1 + ((shares - MIN_SHARES) * 9999) // (MAX_SHARES - MIN_SHARES)


def _pod_total(pod_spec: Obj, index: int, resource: str) -> int:
    """max(sum over app containers, max over init containers) of requests (0) or limits (1)."""

    def amount(c: Obj) -> int:
        values = requests_and_limits(c)[index]
        if resource not in values:
            return 0
        return cpu_millis(values[resource]) if resource == "cpu" else to_bytes(values[resource])

    app = sum(amount(c) for c in pod_spec.get("containers") or [])
    init = max((amount(c) for c in pod_spec.get("initContainers") or []), default=0)
    return max(app, init)


def _all_limit(pod_spec: Obj, resource: str) -> bool:
    containers = pod_spec.get("containers") or []
    return bool(containers) and all(resource in requests_and_limits(c)[1] for c in containers)


def pod_cgroup(pod: Obj, cgroup_root: str, qos: str) -> PodCgroup:
    """The pod's cgroup path and limits for QoS class ``qos`` (Kubernetes'
    ``ResourceConfigForPod``)."""
    spec = pod.get("spec") or {}
    uid = str((pod.get("metadata") or {}).get("uid") or "")
    path = f"{qos_cgroup(cgroup_root, qos)}/pod{uid}"
    if qos == "BestEffort":
        return PodCgroup(path, MIN_SHARES)
    shares = cpu_shares(_pod_total(spec, 0, "cpu"))
    quota = memory = None
    if qos == "Guaranteed" or _all_limit(spec, "cpu"):
        quota = cpu_quota(_pod_total(spec, 1, "cpu"))
    if qos == "Guaranteed" or _all_limit(spec, "memory"):
        memory = _pod_total(spec, 1, "memory")
    return PodCgroup(path, shares, quota, CPU_PERIOD, memory)


def burstable_shares(pods: list[Obj]) -> int:
    """The Burstable class's cpu shares: the cpu requests of its pods that are neither
    finished nor being deleted (Kubernetes' ``qosContainerManager``)."""
    millis = sum(
        _pod_total(p.get("spec") or {}, 0, "cpu")
        for p in pods
        if qos_class(p.get("spec") or {}) == "Burstable"
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and not (p.get("metadata") or {}).get("deletionTimestamp")
    )
    return cpu_shares(millis)


def candidate_paths(cgroup_root: str, uid: str) -> list[str]:
    """Every place a pod cgroup of ``uid`` may be (its class may be unknown at removal)."""
    return [f"{qos_cgroup(cgroup_root, qos)}/pod{uid}" for qos in QOS_CGROUPS]


class CgroupManager:
    """Creates the ``kubepods`` tree and pod cgroups under one agent's cgroup root."""

    def __init__(
        self,
        cgroup_root: str,
        mount: Path = CGROUP_MOUNT,
        pods: Callable[[], list[Obj]] = list,
    ) -> None:
        self.root = cgroup_root
        self.mount = mount
        self.pods = pods  # the node's pods (a snapshot per call), for the Burstable shares
        self._qos_lock = threading.Lock()  # the last write reflects the latest snapshot

    @functools.cached_property
    def _controllers(self) -> dict[str, Path | None]:
        """The root of the v1 hierarchy holding each controller (``None`` on cgroup v2); the
        mounts do not change while the agent runs, so they are looked up once."""
        probes = {"cpu": "cpu.shares", "memory": "memory.limit_in_bytes"}
        roots = hierarchies(self.mount)
        return {
            controller: next((r for r in roots if (r / probe).exists()), None)
            for controller, probe in probes.items()
        }

    def _hierarchy(self, controller: str) -> Path | None:
        return self._controllers[controller]

    @functools.cached_property
    def _unified(self) -> tuple[Path, frozenset[str]] | None:
        """The cgroup v2 root and which of cpu and memory it manages, when the limits go
        there: no v1 hierarchy has them and the v2 tree offers at least one."""
        if any(self._controllers.values()):
            return None
        for root in hierarchies(self.mount):
            available = root / "cgroup.controllers"
            if available.exists():
                offered = frozenset(available.read_text().split()) & V2_CONTROLLERS
                if offered:
                    return root, offered
        return None

    @functools.cached_property
    def _root_dirs(self) -> list[Path]:
        found = [r for r in self._controllers.values() if r is not None]
        if found:
            return found
        return [r for r in hierarchies(self.mount) if (r / "cgroup.controllers").exists()]

    def _roots(self) -> list[Path]:
        return self._root_dirs

    def ensure_qos(self) -> None:
        """Make ``kubepods``, ``kubepods/burstable`` and ``kubepods/besteffort`` (idempotent)
        and set their cpu shares as the kubelet does: the minimum for BestEffort, the Burstable
        pods' requests for Burstable (:func:`burstable_shares`)."""
        for qos in QOS_CGROUPS:
            for root in self._roots():
                (root / qos_cgroup(self.root, qos).strip("/")).mkdir(parents=True, exist_ok=True)
        classes = {"BestEffort": lambda: MIN_SHARES, "Burstable": self._burstable_shares}
        cpu = self._hierarchy("cpu")
        if cpu is not None:
            with self._qos_lock:
                for qos, shares in classes.items():
                    path = cpu / qos_cgroup(self.root, qos).strip("/")
                    _write(path / "cpu.shares", str(shares()))
        elif self._unified is not None:
            root, offered = self._unified
            with self._qos_lock:
                for qos, shares in classes.items():
                    path = qos_cgroup(self.root, qos).strip("/")
                    _enable_controllers(root, path, offered)
                    if "cpu" in offered:
                        _write(root / path / "cpu.weight", str(cpu_weight(shares())))

    def _burstable_shares(self) -> int:
        return burstable_shares(self.pods())

    def apply(self, cg: PodCgroup) -> None:
        """Create the pod cgroup (and the QoS tree) and write its limits."""
        self.ensure_qos()
        for root in self._roots():
            (root / cg.path.strip("/")).mkdir(parents=True, exist_ok=True)
        for controller, files in cg.v1_files().items():
            root = self._hierarchy(controller)
            if root is None:
                continue
            for name, value in files.items():
                _write(root / cg.path.strip("/") / name, value)
        if self._unified is not None:
            root, offered = self._unified
            for name, value in cg.v2_files().items():
                if name.split(".", 1)[0] in offered:
                    _write(root / cg.path.strip("/") / name, value)

    def remove(self, uid: str) -> list[Path]:
        """rmdir the pod's cgroup wherever it is (then update the QoS shares); returns
        directories still busy."""
        left: list[Path] = []
        for path in candidate_paths(self.root, uid):
            left += remove_cgroup(path, self.mount)
        self.ensure_qos()
        return left


def _enable_controllers(root: Path, path: str, controllers: frozenset[str]) -> None:
    """Turn ``controllers`` on in ``cgroup.subtree_control`` of every cgroup from ``root`` down
    to ``path`` itself, so ``path`` and its children get their files."""
    parts = Path(path).parts
    for depth in range(len(parts) + 1):
        control = root.joinpath(*parts[:depth], "cgroup.subtree_control")
        missing = controllers - set(control.read_text().split())
        if missing:
            _write(control, " ".join(f"+{c}" for c in sorted(missing)))


def _write(path: Path, value: str) -> None:
    current = path.read_text().strip() if path.exists() else None
    if current != value:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # as a shell's `>`; cgroupfs allows it
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
