"""The node agent: registration, heartbeats, one worker per pod, and a runtime poller.

:class:`NodeAgent` wires the pieces together:

- :class:`~kubelet.node.NodeStatus` registers the Node, renews its Lease and writes status;
- pods come from an informer on ``fieldSelector=spec.nodeName=<node>`` (or, for hollow nodes,
  from a shared informer that calls :meth:`NodeAgent.pod_event`); each pod uid gets a
  :class:`~kubelet.podworker.PodWorker`; an agent with its own pod informer also watches
  Services (:class:`~kubelet.env.ServiceCache`) for the pods' Service variables;
- a poller (the kubelet's PLEG) lists the node's sandboxes and containers every
  ``pleg_period`` and tells the worker of every pod whose runtime state changed what it now
  is (a worker makes no pass for a state its own last pass left);
- once the pod cache is synced, pods the runtime holds but the API server does not are
  orphans and are torn down (:mod:`kubelet.adopt`); pods it does hold are re-adopted as they
  are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from machinery.informer import Informer, Store
from machinery.kinds import lookup

from . import adopt, eviction, logs, specs
from . import labels as L
from . import metrics as resource_metrics
from .backoff import Backoff
from .cgroups import CgroupManager
from .cri import api_pb2 as pb
from .cri.client import AsyncRuntimeClient
from .env import ServiceCache
from .node import CidrAllocator, Machine, NodeConfig, NodeStatus
from .observe import RuntimeView, container_state, sandbox_state
from .podworker import NullRecorder, PodWorker, Recorder, WorkerContext

log = logging.getLogger(__name__)

PODS = lookup("pods")
Obj = dict[str, Any]


@dataclass
class AgentConfig:
    """Settings of one node agent (the command line of ``tug kubelet``)."""

    node_name: str
    node_ip: str = "127.0.0.1"
    port: int = 10250
    pod_cidr: str | None = None
    log_root: str = "/var/log/tugboat/pods"
    cgroup_root: str = "/tugboat"
    root_dir: str = "/var/lib/tugboat/kubelet"  # pod volumes: <root_dir>/pods/<uid>
    cluster_dns: tuple[str, ...] = ("10.96.0.10",)
    cluster_domain: str = "cluster.local"
    local_registries: tuple[str, ...] = ()  # registries treated as reachable (see podworker)
    labels: dict[str, str] = field(default_factory=dict)
    pleg_period: float = 1.0  # 0: no poller of its own (hollow nodes share one)
    resync: float | None = 60.0
    lease_period: float = 10.0
    status_period: float = 60.0
    status_check_period: float = 10.0
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    metrics_period: float = resource_metrics.DEFAULT_PERIOD
    container_log_max_size: int = logs.MAX_SIZE  # bytes; bigger logs are rotated
    container_log_max_files: int = logs.MAX_FILES
    log_rotate_period: float = 10.0
    eviction_period: float = eviction.DEFAULT_PERIOD  # emptyDir sizeLimit checks

    def node_config(self) -> NodeConfig:
        return NodeConfig(
            name=self.node_name,
            ip=self.node_ip,
            port=self.port,
            pod_cidr=self.pod_cidr,
            labels=dict(self.labels),
            lease_period=self.lease_period,
            status_period=self.status_period,
            status_check_period=self.status_check_period,
        )


class NodeAgent:
    """One node. ``await agent.run()`` runs it until cancelled."""

    def __init__(
        self,
        client: Any,
        runtime: AsyncRuntimeClient,
        config: AgentConfig,
        *,
        recorder: Recorder | None = None,
        machine: Machine | None = None,
        pressure: Any = None,
        allocator: CidrAllocator | None = None,
        own_informer: bool = True,
    ) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.name = config.node_name
        self.recorder = recorder or NullRecorder()
        self.status = NodeStatus(
            client,
            config.node_config(),
            self._runtime_status,
            machine=machine,
            pressure=pressure,
            allocator=allocator,
        )
        self.own_informer = own_informer
        self.informer: Informer | None = None
        self.pods: dict[str, Obj] = {}  # uid → newest pod bound here
        self.workers: dict[str, PodWorker] = {}
        self.synced = asyncio.Event()
        self.runtime_name = "containerd"
        self._runtime_version: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pleg_seen: dict[str, tuple[str, str]] = {}  # key → (pod uid, state)
        self._relisted = False  # the poller has listed the runtime once
        self.ctx: WorkerContext | None = None
        self.sampler: resource_metrics.ResourceSampler | None = None

    # -- runtime identity --------------------------------------------------------------------

    async def _runtime_status(self) -> tuple[bool, str, str]:
        """(ready, message, version) for the node status. The version is asked once, and
        again only after a status call failed (the runtime may have been replaced)."""
        if self._runtime_version is None:
            version = await self.runtime.version()
            self._runtime_version = f"{version.runtime_name}://{version.runtime_version}"
        try:
            status = await self.runtime.status()
        except Exception:
            self._runtime_version = None
            raise
        not_ready = [
            f"{c.type}=false reason:{c.reason} message:{c.message}"
            for c in status.status.conditions
            if c.type in ("RuntimeReady", "NetworkReady") and not c.status
        ]
        message = "container runtime not ready: " + ", ".join(not_ready) if not_ready else ""
        return not not_ready, message, self._runtime_version

    def _make_context(self) -> WorkerContext:
        c = self.config
        node = specs.NodeContext(
            name=self.name,
            ip=c.node_ip,
            log_root=c.log_root,
            cgroup_root=c.cgroup_root,
            cluster_dns=tuple(c.cluster_dns),
            cluster_domain=c.cluster_domain,
            memory_capacity=self.status.machine.memory,
            cpu_capacity_millis=self.status.machine.cpu * 1000,
            root_dir=c.root_dir,
        )
        return WorkerContext(
            client=self.client,
            runtime=self.runtime,
            node=node,
            recorder=self.recorder,
            runtime_name=self.runtime_name,
            backoff=Backoff(c.backoff_initial, c.backoff_max),
            image_backoff=Backoff(c.backoff_initial, c.backoff_max),
            start_backoff=Backoff(c.backoff_initial, c.backoff_max),
            resync=c.resync,
            local_registries=frozenset(c.local_registries),
            cgroups=self._cgroups(),
        )

    def _cgroups(self) -> CgroupManager | None:
        """Pod cgroups under the agent's cgroup root (none for the fake runtime)."""
        if self.runtime_name == "tugboat-fake":
            return None
        return CgroupManager(self.config.cgroup_root, pods=lambda: list(self.pods.values()))

    # -- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Register the node and start every loop in the background."""
        self.runtime_name = await self._detect_runtime_name()
        self.ctx = self._make_context()
        await self.status.register()
        self._spawn(self.status.run_lease(), "lease")
        self._spawn(self.status.run_status(), "status")
        if self.own_informer:
            self.ctx.services = ServiceCache(self.client)
            self._spawn(self.ctx.services.run(), "service informer")
            self.informer = Informer(self.client, PODS, field_selector=f"spec.nodeName={self.name}")
            self.informer.add_handler(
                self.pod_event, lambda _old, new: self.pod_event(new), self.pod_deleted
            )
            self._spawn(self.informer.run(), "pod informer")
            self._spawn(self._mark_synced(self.informer), "sync")
        if self.config.pleg_period:
            self._spawn(self._pleg(), "pleg")
        self.sampler = resource_metrics.ResourceSampler(
            self.runtime,
            self.name,
            period=self.config.metrics_period,
            host=None if self.runtime_name == "tugboat-fake" else resource_metrics.HostStats(),
        )
        self._spawn(self.sampler.run(), "resource metrics")
        if self.runtime_name != "tugboat-fake":
            self._spawn(self._rotate_logs(), "log rotation")
            evict = eviction.run(self.workers.values, self.config.eviction_period)
            self._spawn(evict, "eviction")

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _spawn(self, coro: Any, what: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{self.name}: {what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %s", task.get_name(), task.exception())

    async def _detect_runtime_name(self) -> str:
        delay = 0.2
        while True:
            try:
                return (await self.runtime.version()).runtime_name or "containerd"
            except Exception as err:
                log.warning("node %s: runtime not answering (%s)", self.name, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _mark_synced(self, informer: Informer) -> None:
        await informer.wait_synced()
        self.mark_synced()

    def mark_synced(self) -> None:
        """The pod source has delivered every existing pod: orphans can be told apart."""
        self.synced.set()
        self._spawn(self.cleanup_orphans(), "orphans")

    # -- pod events (only hand over, never block) --------------------------------------------

    def pod_event(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName") != self.name or self.ctx is None:
            return
        uid = specs.pod_uid(pod)
        self.pods[uid] = pod
        worker = self.workers.get(uid)
        if worker is None:
            # A pod the last relist did not show has nothing in the runtime: only its own
            # worker (there is none) could have made something since.
            fresh = self._relisted and all(u != uid for u, _ in self._pleg_seen.values())
            self._start_worker(pod, fresh=fresh)
        else:
            worker.update(pod)

    def pod_deleted(self, pod: Obj) -> None:
        uid = specs.pod_uid(pod)
        self.pods.pop(uid, None)
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(None)

    def _start_worker(self, pod: Obj, gone: bool = False, fresh: bool = False) -> PodWorker:
        assert self.ctx is not None
        uid = specs.pod_uid(pod)
        worker = PodWorker(self.ctx, pod, fresh=fresh)
        if gone:
            worker.update(None)
        self.workers[uid] = worker
        task = self._spawn(worker.run(), f"pod {specs.pod_key(pod)}")

        def finished(_: asyncio.Task[Any]) -> None:
            if self.workers.get(uid) is worker:
                del self.workers[uid]
                pod = self.pods.get(uid)
                if pod is not None and not specs.meta(pod).get("deletionTimestamp"):
                    self._start_worker(pod)  # should not happen; keep the pod served

        task.add_done_callback(finished)
        return worker

    def pod_store(self) -> Store | None:
        return self.informer.store if self.informer is not None else None

    def find_pod(self, namespace: str, name: str) -> Obj | None:
        for pod in self.pods.values():
            m = specs.meta(pod)
            if m.get("namespace") == namespace and m.get("name") == name:
                return pod
        return None

    # -- runtime poller and orphans ----------------------------------------------------------

    async def cleanup_orphans(self) -> list[str]:
        """Tear down runtime pods the API server does not have here; returns their uids."""
        found = await adopt.runtime_pods(self.runtime, self.name)
        stale = adopt.orphans(found, set(self.pods))
        for p in stale:
            if p.uid not in self.workers:
                log.info("node %s: removing orphaned pod %s/%s", self.name, p.namespace, p.name)
                self._start_worker(adopt.stub_pod(p), gone=True)
        return [p.uid for p in stale]

    async def relist(self) -> set[str]:
        """One poll: tell the workers of pods whose runtime state changed what it is now
        (:meth:`PodWorker.runtime_changed`); returns their uids."""
        selector = {L.NODE: self.name}
        seen: dict[str, tuple[str, str]] = {}
        listed_at = time.monotonic()
        for s in await self.runtime.list_pod_sandbox(labels=selector):
            seen["s" + s.id] = (
                s.labels.get(L.POD_UID, ""),
                sandbox_state(s.state == pb.SANDBOX_READY),
            )
        for c in await self.runtime.list_containers(labels=selector):
            seen["c" + c.id] = (c.labels.get(L.POD_UID, ""), container_state(c.state))
        changed = {
            uid for key, (uid, state) in seen.items() if self._pleg_seen.get(key) != (uid, state)
        }
        changed |= {uid for key, (uid, _) in self._pleg_seen.items() if key not in seen}
        self._pleg_seen = seen
        self._relisted = True
        views: dict[str, RuntimeView] = {uid: {} for uid in changed}
        for key, (uid, state) in seen.items():
            if uid in views:
                views[uid][key] = state
        for uid in changed:
            worker = self.workers.get(uid)
            if worker is not None:
                worker.runtime_changed(views[uid], listed_at)
            elif self.synced.is_set() and uid and uid not in self.pods:
                await self.cleanup_orphans()
        return changed

    async def _rotate_logs(self) -> None:
        c = self.config
        while True:
            try:
                await logs.rotate_logs(
                    self.runtime,
                    {L.NODE: self.name},
                    max_size=c.container_log_max_size,
                    max_files=c.container_log_max_files,
                )
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("node %s: log rotation failed: %s", self.name, err)
            await asyncio.sleep(c.log_rotate_period)

    async def _pleg(self) -> None:
        while True:
            try:
                await self.relist()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("node %s: runtime relist failed: %s", self.name, err)
            await asyncio.sleep(self.config.pleg_period)
