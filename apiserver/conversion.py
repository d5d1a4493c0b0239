"""Conversion between versions of a resource that share one storage.

Objects are stored in the storage version (:data:`STORAGE_VERSION`); a request through
another version is converted on the way in (:func:`to_storage`) and every object on the way
out (:func:`from_storage`, :func:`from_storage_raw`). Today: HorizontalPodAutoscaler, stored
as ``autoscaling/v2`` and also served as ``autoscaling/v1``.

autoscaling/v1 ↔ v2 follows Kubernetes: ``targetCPUUtilizationPercentage`` is a ``Resource``
``cpu`` ``Utilization`` metric and ``currentCPUUtilizationPercentage`` its current value; what
v1 cannot express (other metrics, ``behavior``, conditions, other current metrics) travels in
the annotations ``autoscaling.alpha.kubernetes.io/{metrics,behavior,conditions,
current-metrics}`` so a v1 read-modify-write keeps it. Functions never mutate their input.
"""

from __future__ import annotations

from typing import Any

import orjson

from machinery.jsoncopy import json_copy
from machinery.kinds import ResourceType

Obj = dict[str, Any]

HPA_STORAGE = "autoscaling/horizontalpodautoscalers"
STORAGE_VERSION = {HPA_STORAGE: "autoscaling/v2"}

A_METRICS = "autoscaling.alpha.kubernetes.io/metrics"
A_BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
A_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
A_CURRENT = "autoscaling.alpha.kubernetes.io/current-metrics"
_ALPHA = (A_METRICS, A_BEHAVIOR, A_CONDITIONS, A_CURRENT)


def needs_conversion(rt: ResourceType) -> bool:
    """Whether requests through ``rt`` are in a version other than the stored one."""
    stored = STORAGE_VERSION.get(rt.storage_key)
    return stored is not None and stored != rt.api_version


def storage_type(rt: ResourceType, kinds: Any) -> ResourceType:
    """The type of the storage version of ``rt`` (``rt`` itself when it is stored as is)."""
    stored = STORAGE_VERSION.get(rt.storage_key)
    if stored is None or stored == rt.api_version:
        return rt
    found = kinds.by_kind(stored, rt.kind)
    return found if found is not None else rt


def to_storage(rt: ResourceType, obj: Obj) -> Obj:
    """A request body of ``rt``'s version → the storage version."""
    if rt.storage_key == HPA_STORAGE and obj.get("apiVersion", rt.api_version) == "autoscaling/v1":
        return hpa_v1_to_v2(obj)
    return obj


def from_storage(rt: ResourceType, obj: Obj) -> Obj:
    """A stored object → ``rt``'s version (objects stored before conversion existed, in v1
    shape, are accepted too)."""
    if rt.storage_key != HPA_STORAGE:
        return obj
    stored_v1 = obj.get("apiVersion") == "autoscaling/v1"
    if rt.api_version == "autoscaling/v1":
        return obj if stored_v1 else hpa_v2_to_v1(obj)
    return hpa_v1_to_v2(obj) if stored_v1 else obj


def from_storage_raw(rt: ResourceType, raw: bytes) -> bytes:
    """:func:`from_storage` for the stored JSON bytes (returned unchanged when no conversion
    applies, so the fast path stays a byte copy)."""
    if not needs_conversion(rt) and b'"autoscaling/v1"' not in raw:
        return raw
    return orjson.dumps(from_storage(rt, orjson.loads(raw)))


def convert_list_items(rt: ResourceType, raws: list[bytes]) -> list[bytes]:
    return [from_storage_raw(rt, r) for r in raws]


# -- HorizontalPodAutoscaler --------------------------------------------------------------------


def _cpu_utilization_metric(percent: int) -> Obj:
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": percent},
        },
    }


def _is_cpu_utilization(metric: Obj) -> bool:
    res = metric.get("resource") or {}
    return (
        metric.get("type") == "Resource"
        and res.get("name") == "cpu"
        and (res.get("target") or {}).get("type") == "Utilization"
    )


def _load(annotations: dict[str, str], key: str) -> Any:
    raw = annotations.pop(key, None)
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def hpa_v1_to_v2(obj: Obj) -> Obj:
    """An autoscaling/v1 HorizontalPodAutoscaler as autoscaling/v2."""
    out = json_copy(obj)
    out["apiVersion"] = "autoscaling/v2"
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    extra_metrics = _load(annotations, A_METRICS) or []
    behavior = _load(annotations, A_BEHAVIOR)
    conditions = _load(annotations, A_CONDITIONS)
    current_extra = _load(annotations, A_CURRENT) or []
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    spec = out.get("spec")
    if isinstance(spec, dict):
        target = spec.pop("targetCPUUtilizationPercentage", None)
        metrics = [m for m in extra_metrics if not _is_cpu_utilization(m)]
        if target is not None:
            metrics.insert(0, _cpu_utilization_metric(target))
        if metrics:
            spec["metrics"] = metrics
        if behavior is not None:
            spec["behavior"] = behavior
    status = out.get("status")
    if isinstance(status, dict):
        current = status.pop("currentCPUUtilizationPercentage", None)
        metrics_now = [m for m in current_extra if not _is_cpu_current(m)]
        if current is not None:
            metrics_now.insert(
                0,
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "current": {"averageUtilization": current}},
                },
            )
        if metrics_now:
            status["currentMetrics"] = metrics_now
        if conditions is not None:
            status["conditions"] = conditions
    return out


def _is_cpu_current(metric: Obj) -> bool:
    res = metric.get("resource") or {}
    return (
        metric.get("type") == "Resource"
        and res.get("name") == "cpu"
        and (res.get("current") or {}).get("averageUtilization") is not None
    )


def hpa_v2_to_v1(obj: Obj) -> Obj:
    """An autoscaling/v2 HorizontalPodAutoscaler as autoscaling/v1."""
    out = json_copy(obj)
    out["apiVersion"] = "autoscaling/v1"
    meta = out.setdefault("metadata", {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _ALPHA}
    spec = out.get("spec")
    if isinstance(spec, dict):
        metrics = spec.pop("metrics", None) or []
        cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
        others = [m for m in metrics if m is not cpu]
        if cpu is not None:
            spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"].get(
                "averageUtilization"
            )
        if others:
            annotations[A_METRICS] = orjson.dumps(others).decode()
        behavior = spec.pop("behavior", None)
        if behavior is not None:
            annotations[A_BEHAVIOR] = orjson.dumps(behavior).decode()
    status = out.get("status")
    if isinstance(status, dict):
        current = status.pop("currentMetrics", None) or []
        cpu_now = next((m for m in current if _is_cpu_current(m)), None)
        others_now = [m for m in current if m is not cpu_now]
        if cpu_now is not None:
            status["currentCPUUtilizationPercentage"] = cpu_now["resource"]["current"][
                "averageUtilization"
            ]
        if others_now:
            annotations[A_CURRENT] = orjson.dumps(others_now).decode()
        conditions = status.pop("conditions", None)
        if conditions:
            annotations[A_CONDITIONS] = orjson.dumps(conditions).decode()
        status.setdefault("currentReplicas", 0)
        status.setdefault("desiredReplicas", 0)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return out
