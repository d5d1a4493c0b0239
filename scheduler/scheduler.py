"""The scheduler process: informers feed the cache and the queue; one loop decides; binders act.

Guarantees:

* Only pods with no ``spec.nodeName``, naming this scheduler (``spec.schedulerName``, default
  ``default-scheduler``) and not being deleted are scheduled.
* A scheduling cycle (:meth:`Scheduler.schedule_one`) is synchronous: it reads the cache, picks
  a node, *assumes* the pod there and returns; the ``pods/binding`` POST runs as its own task,
  so the next pod is placed without waiting for the round trip. At most ``max_binds_in_flight``
  binding POSTs are on the wire at once (over the one client's connection pool); the others
  wait their turn in decision order. A failed bind forgets the assumption, frees the room for
  others, and retries the pod after backoff.
* A pod that fits nowhere gets a ``FailedScheduling`` Warning Event and a ``PodScheduled=False``
  condition (reason ``Unschedulable``) carrying the kube-scheduler-style summary, and waits in
  the queue for a cluster event that could help. A successful bind gets a ``Scheduled`` Event;
  the API server sets ``PodScheduled=True``.
* Preemption: when a pod with priority fits nowhere, the victims chosen by the PostFilter are
  deleted (``Preempted`` Events) and the pod's ``status.nominatedNodeName`` is set; their
  deletion requeues the pod.
* Priority comes from ``spec.priority``; when the API server left it unset, it is resolved here
  from the pod's ``priorityClassName`` (or the ``globalDefault`` class) on a copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from machinery import errors
from machinery.client import AsyncClient
from machinery.events import EventRecorder
from machinery.informer import Informer, InformerFactory
from machinery.kinds import lookup
from machinery.volumes import CLASSES, PVCS, PVS
from scheduler import metrics as m
from scheduler.cache import Cache
from scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    POD_ADD,
    POD_DELETE,
    POD_UPDATE,
    FitError,
    Framework,
    PostFilterResult,
)
from scheduler.plugins import build_framework
from scheduler.plugins import volume_binding as vb
from scheduler.pods import (
    DEFAULT_SCHEDULER_NAME,
    is_finished,
    is_terminating,
    labels_of,
    name_of,
    namespace_of,
    node_name_of,
    pod_key,
    responsible_for,
)
from scheduler.queue import Clock, QueuedPodInfo, SchedulingQueue

log = logging.getLogger(__name__)

PODS = lookup("pods")
NODES = lookup("nodes")
PRIORITY_CLASSES = lookup("priorityclasses")
MAX_BINDS_IN_FLIGHT = 32


class Scheduler:
    """Wires cache + queue + framework to the API. Call :meth:`run` (or drive it in tests with
    the handlers and :meth:`schedule_one`)."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        name: str = DEFAULT_SCHEDULER_NAME,
        framework: Framework | None = None,
        clock: Clock | None = None,
        recorder: EventRecorder | None = None,
        metrics: m.SchedulerMetrics | None = None,
        percentage_of_nodes_to_score: int = 0,
        max_binds_in_flight: int = MAX_BINDS_IN_FLIGHT,
    ) -> None:
        self.client = client
        self.name = name
        self.cache = Cache()
        self.queue = SchedulingQueue(clock=clock, events_for=self._events_for)
        self.framework = framework or build_framework(
            percentage_of_nodes_to_score=percentage_of_nodes_to_score,
            nominated_pods=self.queue.nominated_pods_for_node,
            nominated_nodes=self.queue.nominated_nodes,
        )
        self.recorder = recorder or EventRecorder(client, name)
        self.metrics = metrics or m.SchedulerMetrics()
        self.metrics.watch_queue(self.queue.sizes)
        self._priority_classes: Informer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bind_slots = asyncio.Semaphore(max_binds_in_flight)
        self.scheduled = 0

    # ---- wiring --------------------------------------------------------------------------
    def attach(self, factory: InformerFactory) -> None:
        """Register this scheduler's handlers on the factory's pod and node informers."""
        self._priority_classes = factory.informer(PRIORITY_CLASSES)
        factory.informer(NODES).add_handler(
            self.on_node_add, self.on_node_update, self.on_node_delete
        )
        factory.informer(PODS).add_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)
        binding = next((p for p in self.framework.plugins if isinstance(p, vb.VolumeBinding)), None)
        if binding is not None:
            binding.use(self._volume_listers(factory), self.client)

    def _volume_listers(self, factory: InformerFactory) -> vb.VolumeListers:
        """Informers on claims, volumes and classes for VolumeBinding; their changes move the
        pods it rejected."""
        informers = []
        for rt, add, update in (
            (PVCS, vb.CLAIM_ADD, vb.CLAIM_UPDATE),
            (PVS, vb.VOLUME_ADD, vb.VOLUME_UPDATE),
            (CLASSES, vb.CLASS_ADD, vb.CLASS_ADD),
        ):
            informer = factory.informer(rt)
            informer.add_handler(
                lambda _obj, e=add: self.queue.move_on(e),
                lambda _old, _new, e=update: self.queue.move_on(e),
            )
            informers.append(informer.store)
        claims, volumes, classes = informers
        return vb.VolumeListers(claims.get, volumes.get, classes.get, classes.list, volumes.list)

    async def run(self, factory: InformerFactory | None = None) -> None:
        """Start informers, wait for their caches, then schedule until cancelled."""
        own = factory is None
        factory = factory or InformerFactory(self.client)
        # Priority classes first, so pods arrive with their priority resolved.
        self._priority_classes = factory.informer(PRIORITY_CLASSES)
        await factory.start()
        await factory.wait_synced(10)
        self.attach(factory)
        await factory.start()
        if not await factory.wait_synced(60):
            log.warning("informer caches not synced after 60 s; scheduling anyway")
        flusher = asyncio.create_task(self.queue.run(), name="scheduler-queue-flush")
        try:
            while True:
                info = await self.queue.pop()
                if info is None:
                    return
                self.schedule_one(info)
                await asyncio.sleep(0)  # let informer events and binders run between cycles
        finally:
            self.queue.close()
            flusher.cancel()
            await self.drain()
            if own:
                await factory.stop()

    async def drain(self) -> None:
        """Wait for in-flight binds, preemptions and status writes."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ---- event handlers: keep the cache and queue current (no I/O) ---------------------
    def on_node_add(self, node: dict[str, Any]) -> None:
        self.cache.add_node(node)
        self.queue.move_on(NODE_ADD)

    def on_node_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.cache.update_node(new)
        if _node_changed_for_scheduling(old, new):
            self.queue.move_on(NODE_UPDATE)

    def on_node_delete(self, node: dict[str, Any]) -> None:
        self.cache.remove_node(name_of(node))

    def on_pod_add(self, pod: dict[str, Any]) -> None:
        pod = self._with_priority(pod)
        if node_name_of(pod):
            self.cache.add_pod(pod)
            self.queue.delete(pod)
            self.queue.move_on(POD_ADD)
        elif self._wants(pod) and not self.cache.is_assumed(pod_key(pod)):
            self.queue.add(pod)

    def on_pod_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        new = self._with_priority(new)
        if node_name_of(new):
            self.cache.update_pod(old, new)
            self.queue.delete(new)
            if not node_name_of(old):
                self.queue.move_on(POD_ADD)
            elif is_finished(new) and not is_finished(old):
                self.queue.move_on(POD_DELETE)
            elif labels_of(old) != labels_of(new):
                self.queue.move_on(POD_UPDATE)
        elif not self._wants(new):
            self.queue.delete(new)
        elif not self.cache.is_assumed(pod_key(new)):
            self.queue.update(old, new)

    def on_pod_delete(self, pod: dict[str, Any]) -> None:
        self.queue.delete(pod)
        if self.cache.has_pod(pod_key(pod)):
            self.cache.remove_pod(pod)
            self.queue.move_on(POD_DELETE)

    # ---- one scheduling cycle -----------------------------------------------------------
    def schedule_one(self, info: QueuedPodInfo) -> str | None:
        """Decide for one popped pod; returns the node chosen (binding continues async)."""
        pod, key = info.pod, info.key
        if is_terminating(pod) or node_name_of(pod) or self.cache.has_pod(key):
            self.queue.done(key)
            return None
        started = time.perf_counter()
        snapshot = self.cache.snapshot()
        try:
            result = self.framework.schedule_pod(pod, snapshot)
        except FitError as err:
            self._handle_fit_error(info, err, snapshot)
            self.metrics.observe(m.UNSCHEDULABLE, time.perf_counter() - started)
            return None
        except Exception as exc:  # a plugin bug: retry later, tell the user
            log.exception("scheduling %s failed", key)
            self.queue.add_backoff(info)
            self.metrics.observe(m.ERROR, time.perf_counter() - started)
            self._spawn(self._record_failure(pod, "SchedulerError", str(exc)))
            return None
        node = result.node_name
        assumed = self.cache.assume_pod(pod, node)
        st = self.framework.run_reserve(result.state, pod, node)
        if not st.ok:
            self.cache.forget_pod(key)
            self.queue.add_backoff(info)
            self.metrics.observe(m.ERROR, time.perf_counter() - started)
            self._spawn(self._record_failure(pod, "Unschedulable", st.message))
            return None
        self.queue.done(key)
        self.queue.remove_nominated(key)
        self.metrics.observe(m.SCHEDULED, time.perf_counter() - started)
        self._spawn(self._bind(info, assumed, node, result.state))
        return node

    def _handle_fit_error(self, info: QueuedPodInfo, err: FitError, snapshot: Any) -> None:
        pod = info.pod
        diagnosis = err.diagnosis
        if self.framework.post_filter_plugins and len(snapshot):
            self.metrics.preemption_attempts.inc()
            result, st = self.framework.run_post_filter(err.state, pod, snapshot, diagnosis)
            if st.ok and result is not None and result.nominated_node:
                nominated = {
                    **pod,
                    "status": {
                        **(pod.get("status") or {}),
                        "nominatedNodeName": result.nominated_node,
                    },
                }
                self.queue.add_nominated(nominated, result.nominated_node)
                info.pod = nominated
                self._spawn(self._preempt(pod, result))
            elif st.message:
                diagnosis.post_filter_msg = st.message
        self.queue.add_unschedulable(info, diagnosis.unschedulable_plugins)
        self._spawn(self._record_failure(pod, "Unschedulable", err.message()))

    # ---- acting on decisions (async) ----------------------------------------------------
    async def _bind(
        self, info: QueuedPodInfo, assumed: dict[str, Any], node: str, state: Any
    ) -> None:
        pod, key = info.pod, info.key
        meta = pod.get("metadata") or {}
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {
                "name": meta.get("name"),
                "namespace": namespace_of(pod),
                **({"uid": meta["uid"]} if meta.get("uid") else {}),
            },
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            st = await self.framework.run_pre_bind(state, assumed, node)
            if not st.ok:
                raise RuntimeError(f'running PreBind plugin "{st.plugin}": {st.message}')
            async with self._bind_slots:
                started = time.perf_counter()
                await self.client.create(
                    PODS, binding, namespace_of(pod), subresource="binding", name=meta.get("name")
                )
                self.metrics.binding_duration.observe(time.perf_counter() - started)
        except errors.NotFound:
            self.cache.forget_pod(key)  # the pod is gone; nothing to retry
            self.framework.run_unreserve(state, assumed, node)
            return
        except Exception as exc:
            log.info("binding %s to %s failed: %s", key, node, exc)
            self.cache.forget_pod(key)
            self.framework.run_unreserve(state, assumed, node)
            self.queue.add_backoff(info)
            self.queue.move_on(POD_DELETE)  # the room it held is free again
            await self._record_failure(pod, "SchedulerError", f"Binding rejected: {exc}")
            return
        self.cache.finish_binding(key)
        self.scheduled += 1
        if info.initial_attempt is not None:
            self.metrics.e2e_duration.observe(
                max(0.0, self.queue.clock.now() - info.initial_attempt)
            )
        self.recorder.event(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {namespace_of(pod)}/{name_of(pod)} to {node}",
        )

    async def _record_failure(self, pod: dict[str, Any], reason: str, message: str) -> None:
        self.recorder.event(pod, "Warning", "FailedScheduling", message)
        current: dict[str, Any] = next(
            (
                c
                for c in (pod.get("status") or {}).get("conditions") or ()
                if c.get("type") == "PodScheduled"
            ),
            {},
        )
        if (current.get("status"), current.get("reason"), current.get("message")) == (
            "False",
            reason,
            message,
        ):
            return
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": current.get("lastTransitionTime")
            if current.get("status") == "False"
            else _now(),
        }
        await self._patch_condition(pod, condition)

    async def _patch_condition(self, pod: dict[str, Any], condition: dict[str, Any]) -> None:
        name, ns = name_of(pod), namespace_of(pod)
        try:
            await self.client.patch(
                PODS,
                name,
                {"status": {"conditions": [condition]}},
                ns,
                patch_type="strategic",
                subresource="status",
            )
        except errors.NotFound:
            return
        except errors.ApiError as exc:
            if exc.code not in (400, 415):
                log.info("updating PodScheduled of %s/%s failed: %s", ns, name, exc)
                return
            # No strategic merge: replace the list, keeping the other conditions.
            others = [
                c
                for c in (pod.get("status") or {}).get("conditions") or ()
                if c.get("type") != "PodScheduled"
            ]
            with contextlib.suppress(errors.ApiError):
                await self.client.patch(
                    PODS,
                    name,
                    {"status": {"conditions": [*others, condition]}},
                    ns,
                    subresource="status",
                )

    async def _preempt(self, pod: dict[str, Any], result: PostFilterResult) -> None:
        node = result.nominated_node
        for victim in result.victims:
            self.metrics.preemption_victims.inc()
            self.recorder.event(
                victim,
                "Normal",
                "Preempted",
                f"Preempted by pod {(pod.get('metadata') or {}).get('uid', pod_key(pod))} "
                f"on node {node}",
            )
            with contextlib.suppress(errors.NotFound):
                await self.client.delete(PODS, name_of(victim), namespace_of(victim))
        with contextlib.suppress(errors.NotFound):
            await self.client.patch(
                PODS,
                name_of(pod),
                {"status": {"nominatedNodeName": node}},
                namespace_of(pod),
                subresource="status",
            )

    # ---- helpers ------------------------------------------------------------------------
    def _wants(self, pod: Mapping[str, Any]) -> bool:
        return responsible_for(pod, self.name) and not is_terminating(pod) and not is_finished(pod)

    def _events_for(self, plugins: Any) -> set[str]:
        return self.framework.events_for(plugins)

    def _with_priority(self, pod: dict[str, Any]) -> dict[str, Any]:
        spec = pod.get("spec") or {}
        if spec.get("priority") is not None or self._priority_classes is None:
            return pod
        value = self._class_priority(spec.get("priorityClassName"))
        if value is None:
            return pod
        return {**pod, "spec": {**spec, "priority": value}}

    def _class_priority(self, class_name: str | None) -> int | None:
        store = self._priority_classes.store if self._priority_classes else None
        if store is None:
            return None
        if class_name:
            pc = store.get(class_name)
            return int(pc.get("value") or 0) if pc else None
        for pc in store.list():
            if pc.get("globalDefault"):
                return int(pc.get("value") or 0)
        return None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduler task failed", exc_info=task.exception())


def _node_changed_for_scheduling(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether an update could make a pod fit (not a heartbeat-only status change)."""
    o_status, n_status = old.get("status") or {}, new.get("status") or {}
    return (
        old.get("spec") != new.get("spec")
        or labels_of(old) != labels_of(new)
        or o_status.get("allocatable") != n_status.get("allocatable")
        or o_status.get("images") != n_status.get("images")
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
