"""Node-lifecycle controller: notices nodes that stopped reporting, taints them, evicts pods.

Wiring: informers on Nodes, on Leases in ``kube-node-lease`` and on Pods (indexed by
``spec.nodeName``). A node, a change of its Lease or a pod bound to it enqueues the node name.

``reconcile(name)``:

1. **Health.** The node's heartbeat is its Lease's ``renewTime`` together with its Ready
   condition's ``lastHeartbeatTime``. The controller remembers, on its own clock, when it last
   saw that pair change (so clocks of other machines never matter, and a freshly started
   controller gives every node a full grace period, as Kubernetes does). Once nothing changed
   for ``grace_period`` (``--node-monitor-grace-period``, 40 s) every node condition becomes
   ``Unknown`` with reason ``NodeStatusUnknown`` ("Kubelet stopped posting node status.").
2. **Pods not ready.** While the node is not Ready, its pods' ``Ready`` condition is False.
3. **Taints.** Ready Unknown → ``node.kubernetes.io/unreachable`` with effects NoSchedule and
   NoExecute; Ready False → ``node.kubernetes.io/not-ready`` likewise; Ready True → neither.
   Other taints are kept; ``timeAdded`` of a kept taint never moves.
4. **Eviction** (the taint manager). A pod on the node that does not tolerate a NoExecute
   taint is deleted at once; one that tolerates them all is deleted ``tolerationSeconds`` (the
   smallest of the matching tolerations; none means forever) after the taint's ``timeAdded``.
   The API server defaults 300 s tolerations for both taints onto every pod (Kubernetes'
   DefaultTolerationSeconds admission).

Every pass requeues the node for the moment its answer may change without an event (the
grace period running out, the next eviction), at most ``monitor_period`` (5 s) later.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controllers.objects import format_time, meta, name_of, namespace_of, parse_time, uid_of
from machinery import errors
from machinery.controller import Result
from machinery.informer import InformerFactory, Store
from machinery.kinds import builtin, lookup
from machinery.workqueue import WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NODES, PODS = lookup("nodes"), lookup("pods")
LEASES = builtin("coordination.k8s.io/v1", "Lease")
LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
NO_EXECUTE, NO_SCHEDULE = "NoExecute", "NoSchedule"
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
DEFAULT_GRACE = 40.0
DEFAULT_MONITOR_PERIOD = 5.0
BY_NODE = "spec.nodeName"
PRESSURES = ("MemoryPressure", "DiskPressure", "PIDPressure")


# -- decide (pure) --------------------------------------------------------------------------


def ready_status(node: Obj) -> str:
    """The status of the node's Ready condition ("Unknown" when it has none)."""
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status") or "Unknown")
    return "Unknown"


def heartbeat(node: Obj, lease: Obj | None) -> tuple[str, str]:
    """What changes while the node agent is alive: (lease renewTime, Ready heartbeat)."""
    renew = str(((lease or {}).get("spec") or {}).get("renewTime") or "")
    ready = next(
        (c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        {},
    )
    return renew, str(ready.get("lastHeartbeatTime") or "")


def unknown_conditions(node: Obj, now: float) -> list[Obj]:
    """The node's conditions with every status Unknown (Kubernetes' four if it has none)."""
    old = (node.get("status") or {}).get("conditions") or []
    types = [c.get("type") for c in old] or [
        "Ready",
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
    ]
    by_type = {c.get("type"): c for c in old}
    out = []
    for t in types:
        prior = by_type.get(t) or {}
        cond = {
            "type": t,
            "status": "Unknown",
            "reason": UNKNOWN_REASON,
            "message": UNKNOWN_MESSAGE,
            "lastHeartbeatTime": prior.get("lastHeartbeatTime") or format_time(now),
            "lastTransitionTime": format_time(now),
        }
        if prior.get("status") == "Unknown" and prior.get("lastTransitionTime"):
            cond["lastTransitionTime"] = prior["lastTransitionTime"]
        out.append(cond)
    return out


def wanted_taints(taints: list[Obj], ready: str, now: float) -> list[Obj]:
    """``taints`` with the not-ready/unreachable ones matching ``ready`` (see the module)."""
    key = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(ready)
    managed = (UNREACHABLE, NOT_READY)
    out = [t for t in taints if t.get("key") not in managed or t.get("key") == key]
    if key is not None:
        for effect in (NO_SCHEDULE, NO_EXECUTE):
            if not any(t.get("key") == key and t.get("effect") == effect for t in out):
                taint = {"key": key, "effect": effect}
                if effect == NO_EXECUTE:
                    taint["timeAdded"] = format_time(now)
                out.append(taint)
    return out


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes' ``Toleration.ToleratesTaint``."""
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def eviction_time(pod: Obj, taints: list[Obj]) -> float | None:
    """When the NoExecute ``taints`` evict ``pod`` (epoch seconds; None: never; -inf: now)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    when: float | None = None
    for taint in taints:
        if taint.get("effect") != NO_EXECUTE:
            continue
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return float("-inf")
        bounded = [
            t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None
        ]
        if not bounded:
            continue  # tolerated forever
        added = parse_time(taint.get("timeAdded")) or 0.0
        at = added + max(0, min(int(s) for s in bounded))
        when = at if when is None else min(when, at)
    return when


@dataclass
class EvictionPlan:
    evict: list[Obj] = field(default_factory=list)
    next_at: float | None = None  # the earliest future eviction


def plan_evictions(pods: list[Obj], taints: list[Obj], now: float) -> EvictionPlan:
    plan = EvictionPlan()
    for pod in pods:
        if meta(pod).get("deletionTimestamp"):
            continue
        at = eviction_time(pod, taints)
        if at is None:
            continue
        if at <= now:
            plan.evict.append(pod)
        elif plan.next_at is None or at < plan.next_at:
            plan.next_at = at
    return plan


def _taint_signature(taints: list[Obj]) -> list[tuple[str, str, str]]:
    return sorted((t.get("key", ""), t.get("value", ""), t.get("effect", "")) for t in taints)


# -- the controller ---------------------------------------------------------------------------


class NodeLifecycleController:
    name = "nodelifecycle"

    def __init__(
        self,
        client: Any,
        *,
        nodes: Store,
        leases: Store,
        pods: Store,
        queue: WorkQueue | None = None,
        recorder: Any = None,
        grace_period: float = DEFAULT_GRACE,
        monitor_period: float = DEFAULT_MONITOR_PERIOD,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.leases = leases
        self.pods = pods
        self.queue = queue or WorkQueue(name=self.name)
        self.recorder = recorder
        self.grace_period = grace_period
        self.monitor_period = monitor_period
        self.now = now
        self._seen: dict[str, tuple[tuple[str, str], float]] = {}  # node → (heartbeat, at)

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Any = None, **kw: Any
    ) -> NodeLifecycleController:
        nodes = factory.informer(NODES)
        leases = factory.informer(LEASES, namespace=LEASE_NAMESPACE)
        pods = factory.informer(PODS, indexers={BY_NODE: _pod_node})
        ctl = cls(
            factory.client,
            nodes=nodes.store,
            leases=leases.store,
            pods=pods.store,
            recorder=recorder,
            **kw,
        )
        nodes.add_handler(ctl._enqueue_named, lambda _o, n: ctl._enqueue_named(n))
        leases.add_handler(ctl._enqueue_named, lambda _o, n: ctl._enqueue_named(n))
        pods.add_handler(ctl._enqueue_pod_node, lambda _o, n: ctl._enqueue_pod_node(n))
        return ctl

    # -- event handlers ----------------------------------------------------------------------

    def _enqueue_named(self, obj: Obj) -> None:
        self.queue.add(name_of(obj))

    def _enqueue_pod_node(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self.queue.add(node)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        cached = self.nodes.get(key)
        if cached is None:
            self._seen.pop(key, None)
            return None
        now = self.now()
        node = copy.deepcopy(cached)
        beat = heartbeat(node, self.leases.get(f"{LEASE_NAMESPACE}/{key}"))
        seen = self._seen.get(key)
        if seen is None or seen[0] != beat:
            seen = self._seen[key] = (beat, now)
        stale_at = seen[1] + self.grace_period
        if now >= stale_at and ready_status(node) != "Unknown":
            node = await self._mark_unknown(node, now)
        ready = ready_status(node)
        node = await self._sync_taints(node, ready, now)
        pods = self.pods.by_index(BY_NODE, key)
        if ready != "True":
            await self._mark_pods_not_ready(pods, now)
        taints = (node.get("spec") or {}).get("taints") or []
        plan = plan_evictions(pods, taints, now)
        for pod in plan.evict:
            await self._evict(pod, key)
        wake = [self.monitor_period]
        if now < stale_at:
            wake.append(stale_at - now)
        if plan.next_at is not None:
            wake.append(plan.next_at - now)
        return Result(requeue_after=max(0.05, min(wake)))

    # -- acting ------------------------------------------------------------------------------

    async def _mark_unknown(self, node: Obj, now: float) -> Obj:
        name = name_of(node)
        conditions = unknown_conditions(node, now)
        log.info("node %s: no heartbeat for %.0f s; Ready=Unknown", name, self.grace_period)
        try:
            updated = await self.client.patch(
                NODES, name, {"status": {"conditions": conditions}}, subresource="status"
            )
        except errors.NotFound:
            return node
        if self.recorder is not None:
            self.recorder.event(
                node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady"
            )
        return updated

    async def _sync_taints(self, node: Obj, ready: str, now: float) -> Obj:
        current = (node.get("spec") or {}).get("taints") or []
        wanted = wanted_taints(current, ready, now)
        if _taint_signature(wanted) == _taint_signature(current):
            return node
        body = {"metadata": {"resourceVersion": meta(node).get("resourceVersion")}}
        body["spec"] = {"taints": wanted or None}
        try:
            return await self.client.patch(NODES, name_of(node), body)
        except errors.NotFound:
            return node

    async def _mark_pods_not_ready(self, pods: list[Obj], now: float) -> None:
        for pod in pods:
            conditions = copy.deepcopy((pod.get("status") or {}).get("conditions") or [])
            ready = next((c for c in conditions if c.get("type") == "Ready"), None)
            if ready is None or ready.get("status") == "False":
                continue
            ready["status"] = "False"
            ready["lastTransitionTime"] = format_time(now)
            try:
                await self.client.patch(
                    PODS,
                    name_of(pod),
                    {"status": {"conditions": conditions}},
                    namespace_of(pod),
                    subresource="status",
                )
            except errors.NotFound:
                continue

    async def _evict(self, pod: Obj, node: str) -> None:
        ns, name = namespace_of(pod), name_of(pod)
        log.info("node %s: evicting pod %s/%s", node, ns, name)
        if self.recorder is not None:
            self.recorder.event(
                pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}"
            )
        try:
            await self.client.delete(PODS, name, ns, preconditions={"uid": uid_of(pod)})
        except (errors.NotFound, errors.Conflict):
            pass


def _pod_node(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []
