"""HorizontalPodAutoscaler controller (autoscaling/v2; v1 objects are the same objects, converted
by the API server).

Wiring: informers on HorizontalPodAutoscalers and Pods. An autoscaler event enqueues its key;
each reconcile asks to be seen again after ``sync_period`` (15 s), so every autoscaler is
evaluated once per period whatever happens.

``reconcile(key)`` reads the autoscaler from the cache, GETs the target's ``scale``
subresource (any kind that has one: Deployment, ReplicaSet, StatefulSet, custom resources),
lists the pods of ``scale.status.selector`` from the cache and their ``PodMetrics`` from the
metrics API, then decides with pure steps (:mod:`.metrics`, :mod:`.replicas`,
:mod:`.behavior`) and applies: PUT ``scale`` when the count changes (event
``SuccessfulRescale``), then PUT ``status`` when it changed (``currentReplicas``,
``desiredReplicas``, ``currentMetrics``, ``lastScaleTime``, conditions ``AbleToScale``,
``ScalingActive``, ``ScalingLimited``). A target that cannot be scaled is a condition and an
event, never a crash; a failed write is retried with backoff.

Recommendation and scale-event history is kept in memory per autoscaler, as in Kubernetes.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from controllers.hpa import behavior
from controllers.hpa.metrics import Proposal, combine, propose
from controllers.hpa.replicas import Readiness, Tolerance
from controllers.objects import format_time, key_of, split_key
from machinery import errors
from machinery.controller import Result
from machinery.informer import InformerFactory, Store
from machinery.kinds import ResourceType, builtin, lookup
from machinery.selectors import parse_label_selector
from machinery.workqueue import WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
HPAS = builtin("autoscaling/v2", "HorizontalPodAutoscaler")
PODS = lookup("pods")
METRICS_BASE = "/apis/metrics.k8s.io/v1beta1"


class Recorder(Protocol):
    def event(self, obj: Obj, type: str, reason: str, message: str) -> None: ...


class MetricsSource(Protocol):
    async def pod_metrics(self, namespace: str, selector: str) -> list[Obj]: ...


class ApiMetricsSource:
    """PodMetrics from the API server's ``metrics.k8s.io/v1beta1``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def pod_metrics(self, namespace: str, selector: str) -> list[Obj]:
        resp = await self.client.request(
            "GET",
            f"{METRICS_BASE}/namespaces/{namespace}/pods",
            params={"labelSelector": selector} if selector else {},
        )
        return list(resp.json().get("items") or [])


@dataclass(frozen=True)
class Config:
    """Controller-manager flags of the Kubernetes HPA controller."""

    sync_period: float = 15.0
    downscale_window: float = behavior.DEFAULT_DOWNSCALE_WINDOW
    tolerance: float = 0.1
    readiness: Readiness = field(default_factory=Readiness)


def set_condition(
    status: Obj, ctype: str, cstatus: str, reason: str, message: str, now: float
) -> None:
    """Kubernetes' HPA ``setCondition``: reason and message always replaced, the transition
    time kept while the status stays."""
    conds = status.setdefault("conditions", [])
    for c in conds:
        if c.get("type") == ctype:
            if c.get("status") != cstatus:
                c["lastTransitionTime"] = format_time(now)
            c.update(status=cstatus, reason=reason, message=message)
            return
    conds.append(
        {
            "type": ctype,
            "status": cstatus,
            "lastTransitionTime": format_time(now),
            "reason": reason,
            "message": message,
        }
    )


class HorizontalPodAutoscalerController:
    name = "horizontalpodautoscaler"

    def __init__(
        self,
        client: Any,
        *,
        hpas: Store,
        pods: Store,
        recorder: Recorder,
        metrics: MetricsSource | None = None,
        config: Config | None = None,
        clock: Callable[[], float] = time.time,
        queue: WorkQueue | None = None,
    ) -> None:
        self.client = client
        self.hpas = hpas
        self.pods = pods
        self.recorder = recorder
        self.metrics = metrics or ApiMetricsSource(client)
        self.config = config or Config()
        self.clock = clock
        self.queue = queue or WorkQueue(name=self.name)
        self.history: dict[str, behavior.History] = {}
        self._targets: dict[tuple[str, str], ResourceType | None] = {}

    @classmethod
    def from_factory(
        cls,
        factory: InformerFactory,
        recorder: Recorder,
        *,
        sync_period: float = 15.0,
        downscale_window: float = behavior.DEFAULT_DOWNSCALE_WINDOW,
        tolerance: float = 0.1,
        **kw: Any,
    ) -> HorizontalPodAutoscalerController:
        hpa_inf = factory.informer(HPAS)
        pod_inf = factory.informer(PODS)
        ctl = cls(
            factory.client,
            hpas=hpa_inf.store,
            pods=pod_inf.store,
            recorder=recorder,
            config=Config(sync_period, downscale_window, tolerance),
            **kw,
        )
        hpa_inf.add_handler(ctl.enqueue, lambda _old, new: ctl.enqueue(new), ctl.on_delete)
        return ctl

    # -- event handlers (only enqueue) ---------------------------------------------------------

    def enqueue(self, hpa: Obj) -> None:
        self.queue.add(key_of(hpa))

    def on_delete(self, hpa: Obj) -> None:
        self.enqueue(hpa)

    # -- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        hpa = self.hpas.get(key)
        if hpa is None:
            self.history.pop(key, None)
            return None
        await self._sync(key, hpa)
        return Result(requeue_after=self.config.sync_period)

    async def _sync(self, key: str, cached: Obj) -> None:
        hpa = copy.deepcopy(cached)
        now = self.clock()
        spec = hpa.get("spec") or {}
        status = copy.deepcopy(hpa.get("status") or {})
        namespace, _ = split_key(key)
        ref = spec.get("scaleTargetRef") or {}
        history = self.history.setdefault(key, behavior.History())
        try:
            rt = await self._target_type(ref.get("apiVersion") or "", ref.get("kind") or "")
            scale = await self.client.get(rt, ref.get("name", ""), namespace, subresource="scale")
        except (errors.ApiError, LookupError) as err:
            message = f"the HPA controller was unable to get the target's current scale: {err}"
            self.recorder.event(hpa, "Warning", "FailedGetScale", str(err))
            set_condition(status, "AbleToScale", "False", "FailedGetScale", message, now)
            await self._write_status(hpa, status, int(status.get("currentReplicas") or 0), None)
            if isinstance(err, errors.NotFound | LookupError):
                return
            raise
        set_condition(
            status,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
            now,
        )
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        behavior.record_initial(history, current, now)
        min_replicas = int(spec.get("minReplicas") or 1)
        max_replicas = int(spec.get("maxReplicas") or 1)
        statuses: list[Obj] | None = None
        reason = ""
        desired = current
        if current == 0 and min_replicas != 0:
            set_condition(
                status,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
                now,
            )
            desired = 0
        elif current > max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", max_replicas
        elif current < min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", min_replicas
        else:
            proposal, name, statuses, failed = await self._propose(
                hpa, spec, scale, namespace, current, now
            )
            if failed is not None:
                set_condition(status, "ScalingActive", "False", failed.reason, failed.message, now)
                self.recorder.event(hpa, "Warning", failed.reason, failed.message)
                await self._write_status(hpa, status, current, statuses)
                return
            set_condition(
                status,
                "ScalingActive",
                "True",
                "ValidMetricFound",
                f"the HPA was able to successfully calculate a replica count from {name}",
                now,
            )
            assert proposal is not None
            if proposal > current:
                reason = f"{name} above target"
            elif proposal < current:
                reason = "All metrics below target"
            decision = self._normalize(spec, history, current, proposal, min_replicas, now)
            set_condition(
                status, "AbleToScale", "True", decision.able_reason, decision.able_message, now
            )
            set_condition(
                status,
                "ScalingLimited",
                "True" if decision.limited else "False",
                decision.limited_reason,
                decision.limited_message,
                now,
            )
            desired = decision.replicas
        scaled_at = None
        if desired != current:
            await self._rescale(hpa, spec, ref, scale, status, current, desired, reason, now)
            scaled_at = now
        await self._write_status(hpa, status, current, statuses, desired, scaled_at)

    async def _propose(
        self, hpa: Obj, spec: Obj, scale: Obj, namespace: str, current: int, now: float
    ) -> tuple[int | None, str, list[Obj], Proposal | None]:
        selector = (scale.get("status") or {}).get("selector") or ""
        if not selector:
            self.recorder.event(hpa, "Warning", "SelectorRequired", "selector is required")
            return (
                None,
                "",
                [],
                Proposal(
                    None,
                    "",
                    None,
                    "InvalidSelector",
                    "the HPA target's scale is missing a selector",
                ),
            )
        try:
            sel = parse_label_selector(selector)
        except ValueError as err:
            return (
                None,
                "",
                [],
                Proposal(
                    None,
                    "",
                    None,
                    "InvalidSelector",
                    f"the HPA target's scale has an invalid selector: {err}",
                ),
            )
        pods = self.pods.list(namespace, sel)
        try:
            pod_metrics: list[Obj] | None = await self.metrics.pod_metrics(namespace, selector)
        except Exception as err:  # Status errors and transport errors alike
            log.info("hpa %s: metrics API failed: %s", key_of(hpa), err)
            pod_metrics = None
        tol = self._tolerance(spec)
        proposals = [
            propose(
                m,
                current,
                pods,
                pod_metrics,
                now,
                tolerance=tol,
                readiness=self.config.readiness,
            )
            for m in spec.get("metrics") or _DEFAULT_METRICS
        ]
        for p in proposals:
            if p.replicas is None and len(proposals) > 1:
                self.recorder.event(hpa, "Warning", p.reason, p.message)
        return combine(proposals, current)

    def _tolerance(self, spec: Obj) -> Tolerance:
        b = spec.get("behavior") or {}
        default = self.config.tolerance
        up = (b.get("scaleUp") or {}).get("tolerance")
        down = (b.get("scaleDown") or {}).get("tolerance")
        return Tolerance(
            float(up) if up is not None else default, float(down) if down is not None else default
        )

    def _normalize(
        self,
        spec: Obj,
        history: behavior.History,
        current: int,
        proposal: int,
        min_replicas: int,
        now: float,
    ) -> behavior.Decision:
        max_replicas = int(spec.get("maxReplicas") or 1)
        if spec.get("behavior") is None:
            return behavior.normalize(
                history,
                current,
                proposal,
                min_replicas,
                max_replicas,
                now,
                self.config.downscale_window,
            )
        up, down = behavior.default_rules(spec["behavior"], self.config.downscale_window)
        return behavior.normalize_with_behavior(
            history, current, proposal, min_replicas, max_replicas, up, down, now
        )

    # -- acting --------------------------------------------------------------------------------

    async def _rescale(
        self,
        hpa: Obj,
        spec: Obj,
        ref: Obj,
        scale: Obj,
        status: Obj,
        current: int,
        desired: int,
        reason: str,
        now: float,
    ) -> None:
        new_scale = copy.deepcopy(scale)
        new_scale.setdefault("spec", {})["replicas"] = desired
        rt = await self._target_type(ref.get("apiVersion") or "", ref.get("kind") or "")
        try:
            await self.client.update(rt, new_scale, subresource="scale")
        except errors.ApiError as err:
            self.recorder.event(
                hpa,
                "Warning",
                "FailedRescale",
                f"New size: {desired}; reason: {reason}; error: {err}",
            )
            set_condition(
                status,
                "AbleToScale",
                "False",
                "FailedUpdateScale",
                f"the HPA controller was unable to update the target scale: {err}",
                now,
            )
            await self._write_status(hpa, status, current, None)
            raise
        set_condition(
            status,
            "AbleToScale",
            "True",
            "SucceededRescale",
            f"the HPA controller was able to update the target scale to {desired}",
            now,
        )
        self.recorder.event(
            hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}"
        )
        if spec.get("behavior") is not None:
            up, down = behavior.default_rules(spec["behavior"], self.config.downscale_window)
            behavior.record_scale(self.history[key_of(hpa)], current, desired, up, down, now)
        log.info("hpa %s: %d → %d (%s)", key_of(hpa), current, desired, reason)

    async def _write_status(
        self,
        hpa: Obj,
        status: Obj,
        current: int,
        metrics: list[Obj] | None,
        desired: int | None = None,
        scaled_at: float | None = None,
    ) -> None:
        """PUT ``status`` when it differs from the cached one (NotFound: the HPA is gone)."""
        status["currentReplicas"] = current
        if desired is not None:
            status["desiredReplicas"] = desired
        else:
            status.setdefault("desiredReplicas", current)
        if metrics is not None:
            if metrics:
                status["currentMetrics"] = metrics
            else:
                status.pop("currentMetrics", None)
        if scaled_at is not None:
            status["lastScaleTime"] = format_time(scaled_at)
        generation = (hpa.get("metadata") or {}).get("generation")
        if generation is not None:
            status["observedGeneration"] = generation
        if status == (hpa.get("status") or {}):
            return
        body = copy.deepcopy(hpa)
        body["status"] = status
        try:
            await self.client.update(HPAS, body, subresource="status")
        except errors.NotFound:
            return

    async def _target_type(self, api_version: str, kind: str) -> ResourceType:
        """The scalable resource for ``apiVersion``/``kind`` (built-in or from discovery).

        Raises LookupError when there is none or it has no ``scale`` subresource."""
        key = (api_version, kind)
        if key not in self._targets:
            self._targets[key] = await self._discover(api_version, kind)
        rt = self._targets[key]
        if rt is None:
            self._targets.pop(key, None)
            raise LookupError(f"no scalable resource of kind {kind} in {api_version or 'v1'}")
        if "scale" not in rt.subresources:
            raise LookupError(f"{kind} ({api_version}) has no scale subresource")
        return rt

    async def _discover(self, api_version: str, kind: str) -> ResourceType | None:
        try:
            return builtin(api_version, kind)
        except KeyError:
            pass
        if "/" not in api_version:
            return None
        try:
            resp = await self.client.request("GET", f"/apis/{api_version}")
        except errors.ApiError:
            return None
        resources = resp.json().get("resources") or []
        subs = {r["name"] for r in resources if "/" in r.get("name", "")}
        for r in resources:
            if r.get("kind") == kind and "/" not in r.get("name", ""):
                group, version = api_version.split("/", 1)
                plural = r["name"]
                return ResourceType(
                    group,
                    version,
                    kind,
                    plural,
                    r.get("singularName") or kind.lower(),
                    bool(r.get("namespaced")),
                    subresources=tuple(
                        s.split("/", 1)[1] for s in subs if s.startswith(plural + "/")
                    ),
                )
        return None


_DEFAULT_METRICS = [
    {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
    }
]
