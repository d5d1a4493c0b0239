"""The Node object: registration, the Lease heartbeat and node status.

Contracts:

- :meth:`NodeStatus.register` creates the Node (or adopts an existing one of the same name),
  with labels ``kubernetes.io/{hostname,os,arch}``, ``spec.podCIDR`` and a full status:
  capacity/allocatable (cpu, memory, pods, ephemeral-storage) measured on the machine,
  addresses, ``nodeInfo`` (runtime version from CRI) and
  ``daemonEndpoints.kubeletEndpoint.Port``.
- Pod CIDR: ``--pod-cidr`` when given (it must match the runtime's CNI config); otherwise
  the first free /24 of 10.244.0.0/16 among the existing nodes (the project has no node-IPAM
  controller yet; a process-wide :class:`CidrAllocator` keeps hollow nodes from colliding;
  two separate processes registering at the same instant may still pick the same one).
- :meth:`NodeStatus.run_lease` renews ``kube-node-lease/<node>`` every ``lease_period``
  (10 s; duration 40 s), recreating it if deleted. The Lease is the heartbeat.
- :meth:`NodeStatus.run_status` computes the conditions (Ready from the runtime's RuntimeReady
  and NetworkReady; Memory/Disk/PID pressure from the machine) every ``status_check_period``
  (10 s, Kubernetes' nodeStatusUpdateFrequency) and PATCHes them only when they changed, or
  every ``status_period`` (60 s) with a fresh ``lastHeartbeatTime``.
- No GET of what the agent holds: the last Node and Lease it wrote are kept and compared or
  updated with their ``resourceVersion``; a 409 re-reads the Lease. After a failed write (the
  API server may have marked the node ``Unknown`` meanwhile) the next status pass re-reads the
  Node and writes whatever differs.
- Timers carry Kubernetes' 4% jitter, and the first status pass and second renewal land at a
  random point of their period, so many agents in one process (hollow nodes) do not fire
  together.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import platform
import random
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machinery import errors
from machinery.kinds import builtin, lookup
from machinery.leaderelection import micro_time

log = logging.getLogger(__name__)

NODES = lookup("nodes")
LEASES = builtin("coordination.k8s.io/v1", "Lease")
NAMESPACES = lookup("namespaces")
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
CLUSTER_CIDR = "10.244.0.0/16"
KUBELET_VERSION = "v1.33.0-tugboat"
MAX_PODS = 110
RUNTIME_DOWN_AFTER = 30.0  # s without a runtime answer before NotReady (kubelet: 30 s)
JITTER = 0.04  # wait.JitterUntil's factor for the kubelet's status and lease loops
Obj = dict[str, Any]
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out: dict[str, int] = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


@dataclass(frozen=True)
class Machine:
    """The machine's resources and identity, as the Node reports them."""

    cpu: int
    memory: int  # bytes
    ephemeral_storage: int  # bytes
    pods: int = MAX_PODS
    machine_id: str = ""
    boot_id: str = ""
    kernel: str = ""
    os_image: str = ""
    arch: str = "amd64"

    @classmethod
    def detect(cls, root_dir: str = "/") -> Machine:
        disk = shutil.disk_usage(root_dir if os.path.exists(root_dir) else "/")
        return cls(
            cpu=os.cpu_count() or 1,
            memory=meminfo().get("MemTotal", 0),
            ephemeral_storage=disk.total,
            machine_id=_read("/etc/machine-id"),
            boot_id=_read("/proc/sys/kernel/random/boot_id"),
            kernel=platform.release(),
            os_image=os_image(),
            arch=_ARCH.get(platform.machine(), platform.machine()),
        )

    def capacity(self) -> dict[str, str]:
        return {
            "cpu": str(self.cpu),
            "memory": f"{self.memory // 1024}Ki",
            "pods": str(self.pods),
            "ephemeral-storage": f"{self.ephemeral_storage // 1024}Ki",
        }


@dataclass(frozen=True)
class Pressure:
    memory: bool = False
    disk: bool = False
    pid: bool = False


def measure_pressure(root_dir: str = "/") -> Pressure:
    """Eviction-threshold-style pressure: < 100 MiB memory, < 10% disk, < 5% pids free."""
    info = meminfo()
    memory = bool(info) and info.get("MemAvailable", 1 << 40) < 100 * 1024 * 1024
    disk_usage = shutil.disk_usage(root_dir if os.path.exists(root_dir) else "/")
    disk = disk_usage.free < disk_usage.total * 0.10
    try:
        pid_max = int(_read("/proc/sys/kernel/pid_max", "0"))
        running = sum(1 for p in os.listdir("/proc") if p.isdigit())
        pid = pid_max > 0 and running > pid_max * 0.95
    except OSError:
        pid = False
    return Pressure(memory, disk, pid)


def _condition(old: list[Obj], type_: str, status: str, reason: str, message: str) -> Obj:
    now = now_rfc3339()
    prior = next((c for c in old if c.get("type") == type_), None)
    transition = now
    if prior is not None and prior.get("status") == status and prior.get("lastTransitionTime"):
        transition = prior["lastTransitionTime"]
    return {
        "type": type_,
        "status": status,
        "lastHeartbeatTime": now,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


def node_conditions(
    old: list[Obj], runtime_ready: bool, runtime_message: str, pressure: Pressure
) -> list[Obj]:
    """Kubernetes' four node conditions, keeping transition times of unchanged ones."""

    def flag(type_: str, on: bool, yes: tuple[str, str], no: tuple[str, str]) -> Obj:
        reason, message = yes if on else no
        return _condition(old, type_, "True" if on else "False", reason, message)

    out = [
        flag(
            "MemoryPressure",
            pressure.memory,
            ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
            ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ),
        flag(
            "DiskPressure",
            pressure.disk,
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ),
        flag(
            "PIDPressure",
            pressure.pid,
            ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
            ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ),
    ]
    if runtime_ready:
        out.append(
            _condition(old, "Ready", "True", "KubeletReady", "kubelet is posting ready status")
        )
    else:
        out.append(_condition(old, "Ready", "False", "KubeletNotReady", runtime_message))
    return out


def condition_states(conditions: list[Obj]) -> dict[str, str]:
    return {c.get("type", ""): c.get("status", "") for c in conditions}


def jittered(period: float, factor: float = JITTER) -> float:
    """``period`` plus up to ``factor`` of it, at random (Kubernetes' ``wait.Jitter``)."""
    return period * (1 + factor * random.random())


class RuntimeUnanswered(Exception):
    """The runtime did not answer a status check, but answered recently: keep the status."""


class CidrAllocator:
    """Hands out /24s of the cluster CIDR not used by any node (process-wide reservations)."""

    def __init__(self, cluster_cidr: str = CLUSTER_CIDR, prefix: int = 24) -> None:
        self.subnets = list(ipaddress.ip_network(cluster_cidr).subnets(new_prefix=prefix))
        self.reserved: set[str] = set()
        self.lock = asyncio.Lock()

    async def allocate(self, client: Any) -> str | None:
        async with self.lock:
            nodes = await client.list_all(NODES)
            used = set(self.reserved)
            for n in nodes.get("items") or []:
                spec = n.get("spec") or {}
                used.update(spec.get("podCIDRs") or [])
                if spec.get("podCIDR"):
                    used.add(spec["podCIDR"])
            for subnet in self.subnets:
                if str(subnet) not in used:
                    self.reserved.add(str(subnet))
                    return str(subnet)
            return None


@dataclass
class NodeConfig:
    name: str
    ip: str = "127.0.0.1"
    port: int = 10250
    pod_cidr: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    lease_period: float = 10.0
    status_period: float = 60.0
    status_check_period: float = 10.0
    root_dir: str = "/"


RuntimeStatusFn = Callable[[], Awaitable[tuple[bool, str, str]]]  # (ready, message, version)


class NodeStatus:
    """Registers and keeps the Node and its Lease; see the module docstring."""

    def __init__(
        self,
        client: Any,
        config: NodeConfig,
        runtime_status: RuntimeStatusFn,
        *,
        machine: Machine | None = None,
        pressure: Callable[[], Pressure] | None = None,
        allocator: CidrAllocator | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.runtime_status = runtime_status
        self.machine = machine or Machine.detect(config.root_dir)
        self.pressure = pressure or (lambda: measure_pressure(config.root_dir))
        self.allocator = allocator  # made on first use: nodes with a known CIDR need none
        self.node: Obj | None = None  # as last written (or read)
        self.lease: Obj | None = None  # as last written
        self.reread = False  # a write failed: the server's Node may differ from ``node``
        self.runtime_answered: float | None = None  # loop time of the last runtime answer
        self.last_status_write = 0.0
        self.registered = asyncio.Event()

    @property
    def pod_cidr(self) -> str:
        return str(((self.node or {}).get("spec") or {}).get("podCIDR") or "")

    def node_object(self, runtime_version: str, conditions: list[Obj]) -> Obj:
        c = self.config
        labels = {
            "kubernetes.io/hostname": c.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": self.machine.arch,
            **c.labels,
        }
        m = self.machine
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": c.name, "labels": labels},
            "spec": {},
            "status": {
                "capacity": m.capacity(),
                "allocatable": m.capacity(),
                "conditions": conditions,
                "addresses": [
                    {"type": "InternalIP", "address": c.ip},
                    {"type": "Hostname", "address": c.name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": c.port}},
                "nodeInfo": {
                    "machineID": m.machine_id,
                    "systemUUID": m.machine_id,
                    "bootID": m.boot_id,
                    "kernelVersion": m.kernel,
                    "osImage": m.os_image,
                    "containerRuntimeVersion": runtime_version,
                    "kubeletVersion": KUBELET_VERSION,
                    "kubeProxyVersion": KUBELET_VERSION,
                    "operatingSystem": "linux",
                    "architecture": m.arch,
                },
            },
        }

    async def _conditions(self, old: list[Obj]) -> tuple[list[Obj], str]:
        """The conditions now. A runtime that stops answering makes the node NotReady once it
        last answered :data:`RUNTIME_DOWN_AFTER` ago; until then :class:`RuntimeUnanswered`."""
        now = asyncio.get_running_loop().time()
        try:
            ready, message, version = await self.runtime_status()
            self.runtime_answered = now
        except Exception as err:
            answered = self.runtime_answered
            if answered is not None and now - answered < RUNTIME_DOWN_AFTER:
                raise RuntimeUnanswered(str(err)) from err
            ready, message, version = False, f"container runtime is down: {err}", ""
        return node_conditions(old, ready, message, self.pressure()), version

    async def register(self) -> Obj:
        """Create or adopt the Node; retries until the API server accepts it."""
        delay = 0.2
        while True:
            try:
                self.node = await self._register_once()
                self.reread = False
                self.registered.set()
                return self.node
            except (errors.ApiError, OSError) as err:
                log.warning("node %s: registration failed (%s); retrying", self.config.name, err)
            except Exception as err:  # httpx errors while the API server starts
                log.warning("node %s: registration failed (%s); retrying", self.config.name, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _register_once(self) -> Obj:
        conditions, version = await self._conditions([])
        body = self.node_object(version, conditions)
        cidr = self.config.pod_cidr  # None: allocate one (or keep the existing node's); "": none
        existing = None
        if cidr is None:
            with contextlib.suppress(errors.NotFound):
                existing = await self.client.get(NODES, self.config.name)
        if existing is not None and not cidr:
            cidr = (existing.get("spec") or {}).get("podCIDR") or cidr
        if cidr is None:
            self.allocator = self.allocator or CidrAllocator()
            cidr = await self.allocator.allocate(self.client)
        if cidr:
            body["spec"] = {"podCIDR": cidr, "podCIDRs": [cidr]}
        if existing is None:
            try:
                node = await self.client.create(NODES, body)
            except errors.AlreadyExists:
                existing = await self.client.get(NODES, self.config.name)
            else:
                self.last_status_write = asyncio.get_running_loop().time()
                return node
        spec_patch: Obj = {"metadata": {"labels": body["metadata"]["labels"]}}
        if cidr and not (existing.get("spec") or {}).get("podCIDR"):
            spec_patch["spec"] = body["spec"]
        await self.client.patch(NODES, self.config.name, spec_patch)
        old = (existing.get("status") or {}).get("conditions") or []
        body["status"]["conditions"], _ = await self._conditions(old)
        node = await self.client.patch(
            NODES, self.config.name, {"status": body["status"]}, subresource="status"
        )
        self.last_status_write = asyncio.get_running_loop().time()
        return node

    # -- lease -------------------------------------------------------------------------------

    def _lease_body(self) -> Obj:
        meta: Obj = {"name": self.config.name, "namespace": LEASE_NAMESPACE}
        uid = ((self.node or {}).get("metadata") or {}).get("uid")
        if uid:
            meta["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.config.name, "uid": uid}
            ]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.config.name,
                "leaseDurationSeconds": LEASE_DURATION,
                "renewTime": micro_time(),
            },
        }

    def _renewed(self, lease: Obj) -> Obj:
        """``lease`` (with its resourceVersion) holding a fresh renewTime."""
        return {**lease, "spec": {**(lease.get("spec") or {}), **self._lease_body()["spec"]}}

    async def _create_lease(self) -> Obj:
        try:
            return await self.client.create(LEASES, self._lease_body(), LEASE_NAMESPACE)
        except errors.AlreadyExists:  # e.g. left by an earlier run of this agent
            current = await self.client.get(LEASES, self.config.name, LEASE_NAMESPACE)
            return await self.client.update(LEASES, self._renewed(current))
        except errors.NotFound:  # the namespace does not exist yet
            with contextlib.suppress(errors.AlreadyExists):
                await self.client.create(
                    NAMESPACES,
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": LEASE_NAMESPACE},
                    },
                )
            return await self.client.create(LEASES, self._lease_body(), LEASE_NAMESPACE)

    async def renew_lease(self) -> Obj:
        """Create or renew the node's Lease once: an update of the Lease last written, with
        no GET unless that one is out of date (409) or gone."""
        try:
            if self.lease is None:
                self.lease = await self._create_lease()
            else:
                self.lease = await self.client.update(LEASES, self._renewed(self.lease))
        except errors.Conflict:  # someone else wrote it (or created it meanwhile)
            current = await self.client.get(LEASES, self.config.name, LEASE_NAMESPACE)
            self.lease = await self.client.update(LEASES, self._renewed(current))
        except errors.NotFound:
            self.lease = None
            self.lease = await self._create_lease()
        return self.lease

    async def run_lease(self) -> None:
        await self.registered.wait()
        first = True
        while True:
            try:
                await self.renew_lease()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.reread = True
                log.warning("node %s: lease renewal failed: %s", self.config.name, err)
            period = self.config.lease_period
            await asyncio.sleep(period * random.uniform(0.5, 1) if first else jittered(period))
            first = False

    # -- status ------------------------------------------------------------------------------

    async def update_status(self, force: bool = False) -> bool:
        """Write the node status if a condition or the runtime version changed (or ``force``);
        returns whether it wrote. Compares with the Node last written, re-read only after a
        failed write."""
        current = self.node
        if current is None or self.reread:
            current = await self.client.get(NODES, self.config.name)
            self.node, self.reread = current, False
        old_status = current.get("status") or {}
        old = old_status.get("conditions") or []
        conditions, version = await self._conditions(old)
        node_info = old_status.get("nodeInfo") or {}
        new_version = bool(version) and node_info.get("containerRuntimeVersion") != version
        if not force and not new_version and condition_states(conditions) == condition_states(old):
            return False
        status: Obj = {"conditions": conditions}
        if version:
            status["nodeInfo"] = {**node_info, "containerRuntimeVersion": version}
        try:
            self.node = await self.client.patch(
                NODES, self.config.name, {"status": status}, subresource="status"
            )
        except errors.NotFound:
            raise
        except Exception:
            self.reread = True
            raise
        self.last_status_write = asyncio.get_running_loop().time()
        return True

    async def run_status(self) -> None:
        await self.registered.wait()
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.uniform(0, self.config.status_check_period))
        while True:
            due = loop.time() - self.last_status_write >= self.config.status_period
            try:
                await self.update_status(force=due)
            except asyncio.CancelledError:
                raise
            except errors.NotFound:
                log.warning("node %s was deleted; registering again", self.config.name)
                self.lease = None
                await self.register()
            except Exception as err:
                log.warning("node %s: status update failed: %s", self.config.name, err)
            await asyncio.sleep(jittered(self.config.status_check_period))
