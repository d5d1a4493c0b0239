"""From an autoscaler's ``spec.metrics`` and measured pod metrics to a proposal per metric.
Pure.

Only resource metrics (``Resource`` and ``ContainerResource``: cpu, memory, with Utilization
or AverageValue targets) have a source in tugboat; ``Pods``, ``Object`` and ``External``
metrics fail with the reason Kubernetes uses when no custom/external metrics API is
registered. ``PodMetrics`` objects are those of ``metrics.k8s.io/v1beta1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from controllers.hpa.replicas import (
    MetricsError,
    PodSample,
    Readiness,
    Tolerance,
    resource_average_replicas,
    resource_utilization_replicas,
)
from controllers.objects import parse_time
from machinery.quantity import parse_quantity

Obj = dict[str, Any]

_FAILED_REASON = {
    "Resource": "FailedGetResourceMetric",
    "ContainerResource": "FailedGetContainerResourceMetric",
    "Pods": "FailedGetPodsMetric",
    "Object": "FailedGetObjectMetric",
    "External": "FailedGetExternalMetric",
}
_UNAVAILABLE_API = {
    "Pods": "custom.metrics.k8s.io",
    "Object": "custom.metrics.k8s.io",
    "External": "external.metrics.k8s.io",
}
_SI = ("", "k", "M", "G", "T", "P", "E")


@dataclass(frozen=True)
class Proposal:
    """One metric's outcome: a replica count and its ``currentMetrics`` entry, or an error
    (``reason`` for the ScalingActive condition, ``message`` for it and the event)."""

    replicas: int | None
    name: str
    status: Obj | None
    reason: str = ""
    message: str = ""


def format_milli(value: int) -> str:
    """A milli-unit integer as Kubernetes prints ``NewMilliQuantity(v, DecimalSI)``."""
    if value % 1000:
        return f"{value}m"
    n, i = value // 1000, 0
    while n and n % 1000 == 0 and i < len(_SI) - 1:
        n, i = n // 1000, i + 1
    return f"{n}{_SI[i]}"


def parse_window(value: Any) -> float:
    """``"15s"``, ``"1m0s"``, ``"10.5s"`` → seconds (0 when unset)."""
    if value in (None, ""):
        return 0.0
    total = 0.0
    for amount, unit in re.findall(r"([\d.]+)(ms|h|m|s)", str(value)):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def samples_of(
    pod_metrics: list[Obj], resource: str, container: str | None = None
) -> dict[str, PodSample]:
    """Per pod name, the sum over its containers (or the one ``container``) in milli-units."""
    out: dict[str, PodSample] = {}
    for pm in pod_metrics:
        total, found = 0, False
        for c in pm.get("containers") or []:
            if container is not None and c.get("name") != container:
                continue
            usage = (c.get("usage") or {}).get(resource)
            if usage is None:
                continue
            total += int(parse_quantity(usage) * 1000)
            found = True
        if not found:
            continue
        name = (pm.get("metadata") or {}).get("name", "")
        out[name] = PodSample(
            total, parse_time(pm.get("timestamp")) or 0.0, parse_window(pm.get("window"))
        )
    return out


def metric_name(spec: Obj) -> str:
    """How Kubernetes names a metric in ValidMetricFound messages and rescale reasons."""
    mtype = spec.get("type", "")
    if mtype in ("Resource", "ContainerResource"):
        src = spec.get("resource" if mtype == "Resource" else "containerResource") or {}
        prefix = "" if mtype == "Resource" else "container "
        if (src.get("target") or {}).get("type") == "Utilization":
            return f"{prefix}{src.get('name')} resource utilization (percentage of request)"
        return f"{prefix}{src.get('name')} resource"
    key = mtype[:1].lower() + mtype[1:]
    return f"{((spec.get(key) or {}).get('metric') or {}).get('name', '')} {key} metric"


def propose(
    spec: Obj,
    current: int,
    pods: list[Obj],
    pod_metrics: list[Obj] | None,
    now: float,
    *,
    tolerance: Tolerance = Tolerance(),
    readiness: Readiness = Readiness(),
) -> Proposal:
    """The replica count one metric asks for. ``pod_metrics`` None: the metrics API failed."""
    mtype = spec.get("type", "")
    name = metric_name(spec)
    reason = _FAILED_REASON.get(mtype, "InvalidMetricSourceType")
    if mtype in _UNAVAILABLE_API:
        return Proposal(
            None,
            name,
            None,
            reason,
            f"the HPA was unable to compute the replica count: unable to get metric {name}: "
            f"no {_UNAVAILABLE_API[mtype]} API registered",
        )
    if mtype not in ("Resource", "ContainerResource"):
        return Proposal(None, name, None, reason, f"invalid metric source type {mtype!r}")
    key = "resource" if mtype == "Resource" else "containerResource"
    src = spec.get(key) or {}
    resource, container = src.get("name", ""), src.get("container")
    target = src.get("target") or {}
    try:
        if pod_metrics is None:
            raise MetricsError(
                f"unable to get metrics for resource {resource}: no metrics returned from "
                "resource metrics API"
            )
        samples = samples_of(pod_metrics, resource, container)
        if not samples:
            raise MetricsError(
                f"unable to get metrics for resource {resource}: no metrics returned from "
                "resource metrics API"
            )
        if target.get("type") == "Utilization":
            utilization = target.get("averageUtilization")
            if utilization is None:
                raise MetricsError(
                    "invalid resource metric source: neither a utilization "
                    "target nor a value target was set"
                )
            rec = resource_utilization_replicas(
                current,
                int(utilization),
                resource,
                pods,
                samples,
                now,
                container=container,
                tolerance=tolerance,
                readiness=readiness,
            )
            current_value: Obj = {
                "averageUtilization": rec.utilization,
                "averageValue": format_milli(rec.average),
            }
        elif target.get("averageValue") is not None:
            rec = resource_average_replicas(
                current,
                int(parse_quantity(target["averageValue"]) * 1000),
                resource,
                pods,
                samples,
                now,
                tolerance=tolerance,
                readiness=readiness,
            )
            current_value = {"averageValue": format_milli(rec.average)}
        else:
            raise MetricsError(
                "invalid resource metric source: neither a utilization target "
                "nor a value target was set"
            )
    except MetricsError as err:
        what = "utilization" if target.get("type") == "Utilization" else "usage"
        return Proposal(
            None,
            name,
            None,
            reason,
            f"the HPA was unable to compute the replica count: failed to get {resource} "
            f"{what}: {err}",
        )
    entry: Obj = {"name": resource, "current": current_value}
    if container is not None:
        entry["container"] = container
    return Proposal(rec.replicas, name, {"type": mtype, key: entry})


def combine(
    proposals: list[Proposal], spec_replicas: int
) -> tuple[int | None, str, list[Obj], Proposal | None]:
    """Kubernetes' ``computeReplicasForMetrics``: the largest proposal wins; all invalid, or
    some invalid while the rest would scale down, is an error (returns None and the first
    invalid proposal)."""
    best, best_name = 0, ""
    statuses: list[Obj] = []
    invalid = [p for p in proposals if p.replicas is None]
    for p in proposals:
        if p.status is not None:
            statuses.append(p.status)
        if p.replicas is not None and (p.replicas > best or not best_name):
            best, best_name = p.replicas, p.name
    if invalid and (len(invalid) == len(proposals) or best < spec_replicas):
        return None, "", statuses, invalid[0]
    return best, best_name, statuses, None
