"""One worker per pod: observe the runtime, plan, act, report status.

A :class:`PodWorker` owns one pod uid. :meth:`PodWorker.update` hands it the newest pod from
the informer (``None`` once the API server forgot the pod), :meth:`PodWorker.runtime_changed`
what the agent's runtime poller now sees of the pod's sandboxes and containers, and
:meth:`PodWorker.wake` asks for a pass. Each pass of :meth:`PodWorker.sync` is level-triggered
and idempotent:

1. read the pod's sandboxes and containers from CRI (:func:`kubelet.observe.observe`), except
   in the first pass of a pod the agent knows the runtime holds nothing of (``fresh``: the
   runtime poller's last relist did not show it, and no worker of this process made any);
2. a pod being deleted (or gone) is torn down: preStop, SIGTERM, grace, SIGKILL, sandbox
   stop and removal, cgroup and log cleanup, then the deletion is finished with
   ``gracePeriodSeconds=0`` (uid precondition) — and the worker ends; a pod the agent evicted
   (:meth:`PodWorker.evict`, :mod:`kubelet.eviction`) is killed at once and reported Failed
   with reason Evicted, a ``DisruptionTarget`` condition and an ``Evicted`` event;
3. otherwise the due probes run (:class:`kubelet.probes.PodProbes`; a liveness/startup
   failure adds a kill), :func:`kubelet.plan.compute_plan` decides, volumes and the
   ConfigMaps/Secrets the pod uses are set up before anything starts (a FailedMount holds the
   pod in ContainerCreating and is retried; later passes refresh their files), and
   :meth:`PodWorker._execute` acts: images (ImageStatus first; a present image is pulled
   again only under ``Always`` from a registry reachable here, :mod:`kubelet.images.reachable`;
   pull failures back off as ErrImagePull → ImagePullBackOff; a new sandbox's images are
   checked while the sandbox is being set up), sandbox (its pod cgroup and limits first,
   :mod:`kubelet.cgroups`), containers, with events;
4. the status (:func:`kubelet.status.pod_status`) is written through ``pods/NAME/status`` as a
   merge patch of the changed top-level fields, only when it changed (``None`` members do not
   count: the API server drops them). A pass that only created things writes it right after
   StartContainer returns, from the snapshot it started with plus what it created (one
   ContainerStatus per new container, the new sandbox's PodSandboxStatus, asked while its
   containers are created: only a container whose environment names the pod IP waits for it);
   a pass that stopped or removed anything observes the pod again first.

Passes never overlap. The next pass comes when it is due (back-off, probes, resync), at once
after a pass that stopped or removed something or whose snapshot already calls for more (a
container that exited at once, probes to set up), and on news the worker has not seen: a pod
version other than the one it acted on or its own status write coming back, a runtime state
other than the one its last pass left (the poller reporting the containers the worker started
itself asks for nothing, nor does a poll listed before the pass took its last snapshot: the
pass saw newer). Errors are logged and retried with a capped exponential delay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from machinery import errors
from machinery.aio import wait_event
from machinery.kinds import lookup

from . import eviction, specs
from . import volumes as vol
from .backoff import Backoff
from .cgroups import CgroupManager, pod_cgroup
from .cri.client import AsyncRuntimeClient
from .cri.errors import CriError, CriNotFound
from .cri.names import normalize_image
from .env import ServiceCache, Sources, fetch_sources, uses_pod_ip
from .images.reachable import reachable
from .observe import (
    EXITED,
    PodRuntime,
    RuntimeView,
    assemble,
    container_record,
    observe,
    runtime_view,
    sandbox_record,
)
from .plan import Plan, Start, backoff_key, compute_plan, pod_ref
from .probes import HandlerRunner, PodProbes, ProbeReport, container_probes
from .satoken import TokenManager
from .status import TERMINAL, pod_status, rfc3339
from .termination import MIN_GRACE, kill_pod, remove_container, remove_pod, stop_container

log = logging.getLogger(__name__)

PODS = lookup("pods")
Obj = dict[str, Any]
KEEP_DEAD = 2  # instances per container name kept (the newest two: status and --previous)
RETRY_MIN, RETRY_MAX = 0.5, 30.0
DISRUPTION_TARGET = "DisruptionTarget"  # the condition of a pod the node agent evicts
MOUNT_RETRY_MAX = 30.0  # a failed volume set-up is retried at most this far apart


class Recorder(Protocol):
    def event(self, obj: Obj, type: str, reason: str, message: str) -> None: ...


class NullRecorder:
    def event(self, obj: Obj, type: str, reason: str, message: str) -> None:
        return None


@dataclass
class WorkerContext:
    """What every worker of one node agent shares."""

    client: Any  # machinery.client.AsyncClient
    runtime: AsyncRuntimeClient
    node: specs.NodeContext
    recorder: Recorder = field(default_factory=NullRecorder)
    runtime_name: str = "containerd"
    backoff: Backoff = field(default_factory=Backoff)
    image_backoff: Backoff = field(default_factory=Backoff)
    start_backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.time
    resync: float | None = 60.0  # a pass at least this often (None: only on events)
    mounter: vol.Mounter = field(default_factory=vol.Mounter)
    local_registries: frozenset[str] = frozenset()  # besides loopback: Always re-pulls there
    cgroups: CgroupManager | None = None  # pod-level cgroups (None: the runtime is fake)
    tokens: TokenManager = field(default_factory=TokenManager)  # projected SA tokens
    services: ServiceCache | None = None  # Services for env variables (None: GET them)


def pull_policy(c: Obj) -> str:
    policy = c.get("imagePullPolicy")
    if policy:
        return str(policy)
    image = normalize_image(str(c.get("image") or "-"))
    return "Always" if image.endswith(":latest") else "IfNotPresent"


def spec_volumes(pod: Obj) -> list[Obj]:
    return list((pod.get("spec") or {}).get("volumes") or [])


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _probed(report: ProbeReport) -> dict[str, tuple[bool, bool]]:
    return {name: (report.ready[name], report.started[name]) for name in report.ready}


def _pruned(value: Any) -> Any:
    """``value`` without ``None`` members, as the API server stores it (a condition's
    ``lastProbeTime: null`` comes back absent)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _status_patch(old: Obj, new: Obj) -> Obj:
    """A merge patch turning status ``old`` into ``new`` (top-level fields); fields equal up to
    ``None`` members are left out."""
    patch = {k: v for k, v in new.items() if _pruned(old.get(k)) != _pruned(v)}
    patch.update({k: None for k in old if k not in new})
    return patch


def _version(pod: Obj) -> str:
    return str(specs.meta(pod).get("resourceVersion") or "")


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark the outcome of a task nobody awaits as seen (no "never retrieved" warning)."""
    if not task.cancelled():
        task.exception()


class PodWorker:
    """See the module docstring. Create, :meth:`update`, then ``await run()`` (a task)."""

    def __init__(self, ctx: WorkerContext, pod: Obj, *, fresh: bool = False) -> None:
        self.ctx = ctx
        self.uid = specs.pod_uid(pod)
        self.pod: Obj | None = pod
        self.last_pod: Obj = pod
        self.errors: dict[str, tuple[str, str]] = {}  # container → waiting (reason, message)
        self.done = False
        self.syncs = 0  # passes finished (with or without an error)
        self.probes = PodProbes(HandlerRunner(ctx.runtime), ctx.clock)
        self.volumes = vol.PodVolumes(ctx.node.root_dir, self.uid, ctx.mounter)
        self.host_volumes: dict[str, vol.HostVolume] = {}
        self.sources = Sources()
        self.mount_failures = 0
        self.evicted: str | None = None  # the eviction message, once evicted
        self._event = asyncio.Event()
        self._event.set()
        # Why a pass is due (see _pass_due); reset when a pass starts.
        self._woken = False
        self._news: set[str] = set()  # resourceVersions not yet acted on
        self._known: set[str] = set()  # acted on: this pass's pod and its own status writes
        self._polled: RuntimeView | None = None  # what the runtime poller last reported
        self._polled_at = 0.0  # when (monotonic) the poller listed it
        self._seen: RuntimeView = {}  # the pod's runtime objects as the last pass left them
        self._snapshot_at = 0.0  # when the pass that left ``_seen`` began reading it
        self._fresh = fresh  # the runtime holds nothing of this pod yet: no first observe

    # -- inputs ------------------------------------------------------------------------------

    def update(self, pod: Obj | None) -> None:
        """The newest pod from the API server (``None``: it is gone). A version this worker
        already acted on (the echo of its own status write, a re-delivery) asks for no pass."""
        self.pod = pod
        if pod is None:
            self._woken = True
        else:
            self.last_pod = pod
            version = _version(pod)
            if not version or version not in self._known:
                self._news.add(version)
        self._event.set()

    def wake(self) -> None:
        """Ask for a pass."""
        self._woken = True
        self._event.set()

    def runtime_changed(self, view: RuntimeView, listed_at: float | None = None) -> None:
        """The runtime poller saw the pod's sandboxes and containers change to ``view`` (listed
        at ``listed_at``, monotonic; default now); a pass follows unless the worker's last pass
        left them exactly so (its own work) or read them after that listing."""
        self._polled = view
        self._polled_at = time.monotonic() if listed_at is None else listed_at
        self._event.set()

    def evict(self, message: str) -> None:
        """Evict the pod (:mod:`kubelet.eviction`): kill it, report Failed/Evicted."""
        if self.evicted is None:
            self.evicted = message
            self.wake()

    def empty_dir(self, name: str) -> Path:
        """Where the pod's ``emptyDir`` volume ``name`` lives on the host."""
        return self.volumes.emptydir_path(name)

    # -- loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        failures = 0
        while not self.done:
            self._event.clear()
            try:
                delay = await self.sync()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a worker must survive anything and retry
                failures += 1
                delay = min(RETRY_MAX, RETRY_MIN * 2 ** (failures - 1))
                log.warning("pod %s: sync failed (%s); retrying in %.1fs", self.name, err, delay)
            if self.done:
                break
            if delay is None:
                delay = self.ctx.resync
            await self._wait(delay)

    async def _wait(self, delay: float | None) -> None:
        """Until ``delay`` seconds passed (``None``: forever) or a pass is due."""
        deadline = None if delay is None else time.monotonic() + delay
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not await wait_event(self._event, timeout) or self._pass_due():
                return
            self._event.clear()

    def _pass_due(self) -> bool:
        """Whether something happened since the last pass started that it did not see."""
        polled = (
            self._polled is not None
            and self._polled != self._seen
            and self._polled_at >= self._snapshot_at
        )
        return self._woken or bool(self._news) or polled

    @property
    def name(self) -> str:
        return specs.pod_key(self.last_pod)

    async def sync(self) -> float | None:
        """One pass; returns seconds until the next wanted pass (``None``: only on events)."""
        try:
            return await self._pass()
        finally:
            self.syncs += 1

    async def _pass(self) -> float | None:
        self._woken, self._polled = False, None
        self._news.clear()
        self._known = {_version(self.pod)} if self.pod is not None else set()
        ctx, pod = self.ctx, self.pod
        self._snapshot_at = time.monotonic()
        if self._fresh and pod is not None:
            rt = assemble(self.uid, [], [])
        else:
            rt = await observe(ctx.runtime, self.uid, ctx.node.name)
        self._fresh = False
        if pod is None or specs.meta(pod).get("deletionTimestamp"):
            await self.terminate(pod, rt)
            return None
        if (pod.get("status") or {}).get("phase") in TERMINAL:
            if rt.running() or any(s.ready for s in rt.sandboxes):
                await kill_pod(ctx.runtime, rt)
            return None
        if self.evicted is not None:
            await self._evict(pod, rt, self.evicted)
            return None
        ip = rt.sandbox.ip if rt.sandbox is not None and rt.sandbox.ready else ""
        probes = await self.probes.sync(pod, rt, ip)
        for type_, reason, message in probes.events:
            self._event_for(pod, type_, reason, message)
        plan = compute_plan(pod, rt, ctx.backoff)
        self._backoff_events(pod, plan)
        killing = {record.id for record, _ in plan.kill}
        plan.kill += [(r, why) for r, why in probes.kill if r.id not in killing]
        wake = _earliest(plan.wake_after, probes.wake_after)
        if (plan.start or plan.create_sandbox) and not await self._prepare(pod, ip):
            plan.start, plan.create_sandbox = [], False
            wake = _earliest(wake, min(MOUNT_RETRY_MAX, 2.0**self.mount_failures))
        elif spec_volumes(pod) and rt.sandbox is not None:
            await self._prepare(pod, ip)  # keep configMap/secret/downward API files current
        refresh = ctx.tokens.next_refresh(pod)  # token files are refreshed in place
        if refresh is not None and (ctx.resync is None or refresh < ctx.resync):
            wake = _earliest(wake, refresh)
        again = False  # another pass at once
        if not plan.idle:
            again, exec_wake, after = await self._execute(pod, plan, rt)
            if exec_wake is not None:
                wake = exec_wake if wake is None else min(wake, exec_wake)
            if after is None:
                self._snapshot_at = time.monotonic()
                rt = await observe(ctx.runtime, self.uid, ctx.node.name)
            else:
                rt = after
                if again:
                    again, wake = self._follow_up(pod, rt, wake)
        waiting = {**self.errors, **plan.waiting}
        status = pod_status(
            pod,
            rt,
            waiting,
            host_ip=ctx.node.ip,
            now=ctx.clock(),
            runtime_name=ctx.runtime_name,
            probed=_probed(probes),
        )
        await self._write_status(pod, status)
        self._seen = runtime_view(rt)
        await self._collect_garbage(rt)
        if status.get("phase") in TERMINAL:
            return 0.0 if (rt.running() or any(s.ready for s in rt.sandboxes)) else None
        return 0.0 if again else wake

    def _follow_up(self, pod: Obj, rt: PodRuntime, wake: float | None) -> tuple[bool, float | None]:
        """After a pass that only created things, from its snapshot: whether the next pass is
        due at once (the snapshot already calls for more steps or another status, e.g. a
        container that exited at once, or containers have probes to set up), and when it is
        due otherwise."""
        plan = compute_plan(pod, rt, self.ctx.backoff)
        probed = any(container_probes(c) for c in specs.spec(pod).get("containers") or [])
        return not plan.idle or bool(plan.waiting) or probed, _earliest(wake, plan.wake_after)

    # -- acting ------------------------------------------------------------------------------

    def _event_for(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        ref = dict(pod)
        ref.setdefault("kind", "Pod")
        ref.setdefault("apiVersion", "v1")
        self.ctx.recorder.event(ref, type_, reason, message)

    async def _execute(
        self, pod: Obj, plan: Plan, rt: PodRuntime
    ) -> tuple[bool, float | None, PodRuntime | None]:
        """Carry out ``plan``; returns (whether anything changed, seconds until a retry, the
        runtime snapshot after it when only creations happened, else ``None``: observe)."""
        images = self._check_images(plan) if plan.create_sandbox else {}
        try:
            return await self._act(pod, plan, rt, images)
        finally:
            for task in images.values():  # not needed after all (the sandbox failed)
                task.cancel()
                task.add_done_callback(_retrieve)

    def _check_images(self, plan: Plan) -> dict[str, asyncio.Task[Any]]:
        """ImageStatus of the images ``plan`` starts, asked while the sandbox is being set up."""
        names = {str(step.container.get("image") or "") for step in plan.start}
        return {
            image: asyncio.ensure_future(self.ctx.runtime.image_status(image)) for image in names
        }

    async def _act(
        self, pod: Obj, plan: Plan, rt: PodRuntime, images: dict[str, asyncio.Task[Any]]
    ) -> tuple[bool, float | None, PodRuntime | None]:
        ctx = self.ctx
        changed = False
        if plan.kill_pod:
            for c in rt.running():
                self._event_for(pod, "Normal", "Killing", f"Stopping container {c.name}")
            await kill_pod(ctx.runtime, rt, specs.grace_period(pod))
            changed = True
        if plan.finished:
            return changed, None, None
        for record, why in plan.kill:
            self._event_for(pod, "Normal", "Killing", why)
            await stop_container(
                ctx.runtime,
                record.id,
                specs.grace_period(pod),
                pre_stop=record.pre_stop,
                pod_ip=rt.sandbox.ip if rt.sandbox else "",
            )
            changed = True
        for record in plan.remove:
            await remove_container(ctx.runtime, record.id, record.log_path)
            changed = True
        if not plan.create_sandbox:
            assert rt.sandbox is not None
            sandbox_config = specs.sandbox_config(pod, ctx.node, rt.sandbox.attempt)
            started, wake, after = await self._start_all(
                pod, plan, rt, (rt.sandbox.id, sandbox_config, rt.sandbox.ip), images
            )
            return changed or started, wake, after
        sandbox_id, sandbox_config = await self._create_sandbox(pod, plan)
        # Its IP is read while the containers are being created; only a container whose
        # environment names it waits for it.
        sandbox_status = asyncio.ensure_future(ctx.runtime.pod_sandbox_status(sandbox_id))
        try:
            _, wake, after = await self._start_all(
                pod, plan, rt, (sandbox_id, sandbox_config, ""), images, sandbox_status
            )
        finally:
            sandbox_status.cancel()
            sandbox_status.add_done_callback(_retrieve)
        return True, wake, after

    async def _create_sandbox(self, pod: Obj, plan: Plan) -> tuple[str, Any]:
        """The pod cgroup, then RunPodSandbox; returns (sandbox id, its config)."""
        ctx = self.ctx
        sandbox_config = specs.sandbox_config(pod, ctx.node, plan.sandbox_attempt)
        if ctx.cgroups is not None:
            cgroup = pod_cgroup(pod, ctx.node.cgroup_root, specs.qos_class(specs.spec(pod)))
            await asyncio.to_thread(ctx.cgroups.apply, cgroup)
        try:
            sandbox_id = await ctx.runtime.run_pod_sandbox(sandbox_config)
        except CriError as err:
            message = f"Failed to create pod sandbox: {err.details}"
            self._event_for(pod, "Warning", "FailedCreatePodSandBox", message)
            raise
        return sandbox_id, sandbox_config

    async def _start_all(
        self,
        pod: Obj,
        plan: Plan,
        rt: PodRuntime,
        sandbox: tuple[str, Any, str],
        images: dict[str, asyncio.Task[Any]],
        new_sandbox: asyncio.Future[Any] | None = None,
    ) -> tuple[bool, float | None, PodRuntime | None]:
        """Start ``plan.start`` in ``sandbox`` (id, config, IP); ``new_sandbox``: the
        PodSandboxStatus, under way, of a sandbox created in this pass (its IP is not known
        yet). Returns (whether a container started, seconds until a retry, the snapshot after
        it, see :meth:`_execute`)."""
        sandbox_id, sandbox_config, ip = sandbox
        created: list[str] = []
        any_started, wake = False, None
        for step in plan.start:
            if new_sandbox is not None and not ip and uses_pod_ip(step.container):
                ip = (await new_sandbox).network.ip
            started, retry = await self._start(
                pod, step, sandbox_id, sandbox_config, ip, created, images
            )
            any_started = any_started or started
            wake = _earliest(wake, retry)
            if not started and step.init:
                break
        if plan.kill_pod or plan.kill or plan.remove:
            return any_started, wake, None
        # Only creations: read back just what was created instead of the whole pod, so the
        # status is written right after StartContainer returns.
        self._snapshot_at = time.monotonic()
        statuses = await asyncio.gather(*(self._container_status(cid) for cid in created))
        sandboxes = list(rt.sandboxes)
        if new_sandbox is not None:
            status = await new_sandbox
            sandboxes.append(sandbox_record(status, status))
        records = rt.all_containers()
        records += [
            container_record(cid, st, sandbox_id)
            for cid, st in zip(created, statuses, strict=True)
            if st is not None
        ]
        return any_started, wake, assemble(self.uid, sandboxes, records)

    async def _container_status(self, container_id: str) -> Any:
        try:
            return await self.ctx.runtime.container_status(container_id)
        except CriNotFound:
            return None

    async def _start(
        self,
        pod: Obj,
        step: Start,
        sandbox_id: str,
        sandbox_config: Any,
        pod_ip: str,
        created: list[str],
        images: dict[str, asyncio.Task[Any]],
    ) -> tuple[bool, float | None]:
        """Image, create, start one container (its id is appended to ``created``); returns
        (started, seconds until a retry). ``images``: ImageStatus calls already under way."""
        ctx, c = self.ctx, step.container
        name = c["name"]
        retry = await self._ensure_image(pod, c, images.pop(str(c.get("image") or ""), None))
        if retry is not None:
            return False, retry
        key = backoff_key(pod, name)
        if ctx.start_backoff.in_backoff_since_update(key):
            return False, ctx.start_backoff.remaining_since_update(key)
        try:
            config = specs.container_config(
                pod,
                c,
                ctx.node,
                restart_count=step.restart_count,
                init=step.init,
                pod_ip=pod_ip,
                sources=self.sources,
                mounts=vol.container_mounts(c, self.host_volumes),
            )
        except ValueError as err:
            return self._failed(pod, key, name, "CreateContainerConfigError", str(err))
        if step.backoff_event is not None:
            ctx.backoff.next(key, step.backoff_event)
        try:
            container_id = await ctx.runtime.create_container(sandbox_id, config, sandbox_config)
        except CriError as err:
            return self._failed(pod, key, name, "CreateContainerError", err.details)
        created.append(container_id)
        self._event_for(pod, "Normal", "Created", f"Created container {name}")
        try:
            await ctx.runtime.start_container(container_id)
        except CriError as err:
            return self._failed(pod, key, name, "RunContainerError", err.details)
        self._event_for(pod, "Normal", "Started", f"Started container {name}")
        self.errors.pop(name, None)
        ctx.start_backoff.reset(key)
        return True, None

    def _failed(
        self, pod: Obj, key: str, name: str, reason: str, message: str
    ) -> tuple[bool, float | None]:
        self.errors[name] = (reason, message)
        self._event_for(pod, "Warning", "Failed", f"Error: {message}")
        self.ctx.start_backoff.next(key, self.ctx.clock())
        return False, self.ctx.start_backoff.remaining_since_update(key)

    def _backoff_events(self, pod: Obj, plan: Plan) -> None:
        for name, (reason, _) in plan.waiting.items():
            if reason == "CrashLoopBackOff":
                message = f"Back-off restarting failed container {name} in pod {pod_ref(pod)}"
                self._event_for(pod, "Warning", "BackOff", message)

    async def _prepare(self, pod: Obj, pod_ip: str) -> bool:
        """Fetch the ConfigMaps/Secrets the pod uses and set up its volumes; False (with a
        FailedMount event) when a volume cannot be set up yet."""
        ctx = self.ctx
        self.sources = await fetch_sources(ctx.client, pod, ctx.services)
        if not spec_volumes(pod):
            return True
        self.sources.tokens = await ctx.tokens.fetch(ctx.client, pod)
        claims = await vol.fetch_claims(ctx.client, pod, ctx.node.name)
        try:
            self.host_volumes = await asyncio.to_thread(
                self.volumes.setup,
                pod,
                self.sources,
                claims,
                pod_ip=pod_ip,
                host_ip=ctx.node.ip,
                cpu_millis=ctx.node.cpu_capacity_millis,
                memory=ctx.node.memory_capacity,
            )
        except (vol.VolumeError, OSError) as err:
            self.mount_failures += 1
            self._event_for(pod, "Warning", "FailedMount", str(err))
            return False
        self.mount_failures = 0
        return True

    async def _ensure_image(
        self, pod: Obj, c: Obj, checking: asyncio.Task[Any] | None = None
    ) -> float | None:
        """Make the image present per ``imagePullPolicy``; ``None`` when it is, else the
        seconds until the next attempt (the waiting reason is recorded). ``checking``: its
        ImageStatus call, already under way."""
        ctx, name, image = self.ctx, c["name"], str(c.get("image") or "")
        try:
            present = await (checking or ctx.runtime.image_status(image))
        except (CriError, ValueError) as err:
            self.errors[name] = ("InvalidImageName", str(err))
            return ctx.resync or 60.0
        policy = pull_policy(c)
        if present is not None and not (
            policy == "Always" and reachable(image, ctx.local_registries)
        ):
            self._event_for(
                pod, "Normal", "Pulled", f'Container image "{image}" already present on machine'
            )
            return None
        if policy == "Never":
            message = f'Container image "{image}" is not present with pull policy of Never'
            self.errors[name] = ("ErrImageNeverPull", message)
            self._event_for(pod, "Warning", "ErrImageNeverPull", message)
            return ctx.resync or 60.0
        key = f"{self.uid}/{image}"
        if ctx.image_backoff.in_backoff_since_update(key):
            message = f'Back-off pulling image "{image}"'
            self.errors[name] = ("ImagePullBackOff", message)
            self._event_for(pod, "Normal", "BackOff", message)
            return ctx.image_backoff.remaining_since_update(key)
        self._event_for(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        started = time.monotonic()
        try:
            await ctx.runtime.pull_image(image)
        except CriError as err:
            ctx.image_backoff.next(key, ctx.clock())
            message = f'Failed to pull image "{image}": {err.details}'
            self.errors[name] = ("ErrImagePull", message)
            self._event_for(pod, "Warning", "Failed", message)
            return ctx.image_backoff.remaining_since_update(key)
        ctx.image_backoff.reset(key)
        self._event_for(
            pod,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{image}" in {time.monotonic() - started:.3f}s',
        )
        return None

    async def _write_status(self, pod: Obj, status: Obj) -> None:
        patch = _status_patch(pod.get("status") or {}, status)
        if not patch:
            return
        m = specs.meta(pod)
        try:
            updated = await self.ctx.client.patch(
                PODS, m["name"], {"status": patch}, m["namespace"], subresource="status"
            )
        except errors.NotFound:
            return
        if self.pod is not None and specs.pod_uid(updated) == self.uid:
            # Do not wait for the watch: the next pass compares against what was written.
            newer = int(specs.meta(self.pod).get("resourceVersion") or 0)
            if int(specs.meta(updated).get("resourceVersion") or 0) >= newer:
                self.pod = updated
                self.last_pod = updated
            self._known.add(_version(updated))
            self._news.discard(_version(updated))

    async def _collect_garbage(self, rt: PodRuntime) -> None:
        """Remove exited instances beyond the newest :data:`KEEP_DEAD` per container name."""
        for instances in rt.containers.values():
            for c in instances[KEEP_DEAD:]:
                if c.state == EXITED:
                    await remove_container(self.ctx.runtime, c.id, c.log_path)

    async def _evict(self, pod: Obj, rt: PodRuntime, message: str) -> None:
        """Kill the pod at once and report it Failed with reason Evicted."""
        ctx = self.ctx
        self._event_for(pod, "Warning", eviction.REASON, message)
        for c in rt.running():
            self._event_for(pod, "Normal", "Killing", f"Stopping container {c.name}")
        await kill_pod(ctx.runtime, rt, 0)
        rt = await observe(ctx.runtime, self.uid, ctx.node.name)
        status = pod_status(
            pod, rt, {}, host_ip=ctx.node.ip, now=ctx.clock(), runtime_name=ctx.runtime_name
        )
        status.update(phase="Failed", reason=eviction.REASON, message=message)
        status["conditions"] = [
            *(c for c in status.get("conditions") or [] if c["type"] != DISRUPTION_TARGET),
            {
                "type": DISRUPTION_TARGET,
                "status": "True",
                "reason": "TerminationByKubelet",
                "message": message,
                "lastTransitionTime": rfc3339(ctx.clock()),
            },
        ]
        await self._write_status(pod, status)

    # -- termination -------------------------------------------------------------------------

    async def terminate(self, pod: Obj | None, rt: PodRuntime) -> None:
        """Tear everything down, then finish the API deletion. Ends the worker."""
        ctx = self.ctx
        grace = specs.grace_period(pod) if pod is not None else MIN_GRACE
        if rt.running():
            for c in rt.running():
                self._event_for(self.last_pod, "Normal", "Killing", f"Stopping container {c.name}")
            await kill_pod(ctx.runtime, rt, grace)
        if not rt.empty:
            rt = await observe(ctx.runtime, self.uid, ctx.node.name)
            await remove_pod(
                ctx.runtime,
                rt,
                log_dir=specs.log_directory(ctx.node, self.last_pod),
            )
        if ctx.cgroups is not None:
            busy = await asyncio.to_thread(ctx.cgroups.remove, self.uid)
            if busy:
                log.warning("pod %s: cgroups still busy: %s", self.name, busy[:3])
        await asyncio.to_thread(self.volumes.teardown)
        ctx.backoff.forget_prefix(f"{self.uid}/")
        ctx.image_backoff.forget_prefix(f"{self.uid}/")
        ctx.start_backoff.forget_prefix(f"{self.uid}/")
        if pod is not None:
            m = specs.meta(pod)
            try:
                await ctx.client.delete(
                    PODS,
                    m["name"],
                    m["namespace"],
                    grace_period_seconds=0,
                    preconditions={"uid": self.uid},
                )
            except (errors.NotFound, errors.Conflict):
                pass
        self.done = True
