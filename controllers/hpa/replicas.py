"""The replica calculator: from pods, their metrics and a target to a replica count. Pure.

Follows Kubernetes' ``podautoscaler/replica_calculator.go``:

* pods being deleted or Failed are ignored; Pending pods are unready; for ``cpu``, a pod
  still in its CPU initialisation period counts as unready when it is not Ready or its newest
  sample predates its readiness, and a pod past it when it never became Ready within
  ``initial_readiness_delay`` of its start. Pods without a sample are "missing".
* The usage ratio is computed over the ready pods that have a sample. Within the tolerance
  (default 0.1 either way) nothing changes. Otherwise, with no missing and no unready pods
  in play, ``desired = ceil(ratio × ready pods)``.
* Missing pods are assumed at 100 % of their request (or the target, whichever is higher)
  when scaling down and at 0 when scaling up; unready pods at 0 when scaling up. The ratio is
  recomputed, and a recomputed ratio that is within tolerance or flips direction keeps the
  current count; so does a result that would move against the direction of the ratio.

Values are integers in milli-units (millicores, millibytes), as Kubernetes' ``MilliValue``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controllers.objects import is_deleting, meta, parse_time, pod_condition
from machinery.quantity import parse_quantity

Obj = dict[str, Any]

DEFAULT_TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0


class MetricsError(Exception):
    """The metric cannot be computed; the message is the Kubernetes one."""


@dataclass(frozen=True)
class PodSample:
    """One pod's measured value (milli-units) and when and over what window it was taken."""

    value: int
    timestamp: float
    window: float


@dataclass(frozen=True)
class Tolerance:
    """Ratio change ignored when scaling up (ratio > 1) and down (ratio < 1)."""

    up: float = DEFAULT_TOLERANCE
    down: float = DEFAULT_TOLERANCE

    def within(self, ratio: float) -> bool:
        return (1.0 - self.down) <= ratio <= (1.0 + self.up)


@dataclass(frozen=True)
class Readiness:
    """Knobs of pod grouping (Kubernetes controller-manager flags)."""

    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD
    initial_readiness_delay: float = INITIAL_READINESS_DELAY


@dataclass(frozen=True)
class PodGroups:
    """The pods split as the calculator sees them."""

    ready: int
    unready: frozenset[str] = field(default_factory=frozenset)
    missing: frozenset[str] = field(default_factory=frozenset)
    ignored: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Recommendation:
    """A replica count and the metric that produced it.

    ``utilization`` is the average percentage of requests (Utilization targets only);
    ``average`` is the average raw value per pod in milli-units.
    """

    replicas: int
    utilization: int | None
    average: int


def _name(pod: Obj) -> str:
    return str(meta(pod).get("name", ""))


def group_pods(
    pods: Iterable[Obj],
    samples: Mapping[str, PodSample],
    resource: str,
    now: float,
    readiness: Readiness = Readiness(),
) -> PodGroups:
    """Split ``pods`` into ready (counted), unready, missing (no sample) and ignored."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        name = _name(pod)
        phase = (pod.get("status") or {}).get("phase")
        if is_deleting(pod) or phase == "Failed":
            ignored.add(name)
            continue
        if phase == "Pending":
            unready.add(name)
            continue
        sample = samples.get(name)
        if sample is None:
            missing.add(name)
            continue
        if resource == "cpu" and _cpu_unready(pod, sample, now, readiness):
            unready.add(name)
            continue
        ready += 1
    return PodGroups(ready, frozenset(unready), frozenset(missing), frozenset(ignored))


def _cpu_unready(pod: Obj, sample: PodSample, now: float, readiness: Readiness) -> bool:
    cond = pod_condition(pod, "Ready")
    if cond is None:
        return True
    started = parse_time((pod.get("status") or {}).get("startTime"))
    transition = parse_time(cond.get("lastTransitionTime"))
    if started is None or transition is None:
        return cond.get("status") != "True"
    if started + readiness.cpu_initialization_period > now:
        return cond.get("status") == "False" or sample.timestamp < transition + sample.window
    return (
        cond.get("status") == "False" and started + readiness.initial_readiness_delay > transition
    )


def pod_requests(
    pods: Iterable[Obj], resource: str, container: str | None = None
) -> dict[str, int]:
    """Sum of the containers' requests of ``resource`` per pod name, in milli-units.

    Raises :class:`MetricsError` ("missing request for cpu in container x of Pod y") when a
    counted container has none, as Kubernetes does.
    """
    out: dict[str, int] = {}
    for pod in pods:
        total = 0
        found = False
        for c in (pod.get("spec") or {}).get("containers") or []:
            if container is not None and c.get("name") != container:
                continue
            req = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if req is None:
                raise MetricsError(
                    f"missing request for {resource} in container {c.get('name')} "
                    f"of Pod {_name(pod)}"
                )
            total += int(parse_quantity(req) * 1000)
            found = True
        if container is not None and not found:
            raise MetricsError(f"container {container} not present in pod {_name(pod)}")
        out[_name(pod)] = total
    return out


def utilization_ratio(
    values: Mapping[str, int], requests: Mapping[str, int], target_utilization: int
) -> tuple[float, int, int]:
    """(usage ratio, utilization %, average raw value) over the pods of ``values``."""
    total_value = total_request = 0
    for name, value in values.items():
        if name not in requests:
            continue
        total_value += value
        total_request += requests[name]
    if total_request == 0:
        raise MetricsError("no metrics returned matched known pods")
    utilization = int(total_value * 100 / total_request)
    average = total_value // max(len(values), 1)
    return utilization / target_utilization, utilization, average


def average_ratio(values: Mapping[str, int], target: int) -> tuple[float, int]:
    """(usage ratio, average value) for an AverageValue target."""
    average = sum(values.values()) // len(values)
    return sum(values.values()) / (target * len(values)), average


def _settle(current: int, ratio: float, new_ratio: float, count: int, tolerance: Tolerance) -> int:
    """Kubernetes' second look once missing/unready pods were filled in."""
    if tolerance.within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    replicas = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def resource_utilization_replicas(
    current: int,
    target_utilization: int,
    resource: str,
    pods: list[Obj],
    samples: Mapping[str, PodSample],
    now: float,
    *,
    container: str | None = None,
    tolerance: Tolerance = Tolerance(),
    readiness: Readiness = Readiness(),
) -> Recommendation:
    """Replicas for a ``Utilization`` target (``GetResourceReplicas``)."""
    if not pods:
        raise MetricsError("no pods returned by selector while calculating replica count")
    groups = group_pods(pods, samples, resource, now, readiness)
    values = {
        n: s.value
        for n, s in samples.items()
        if n not in groups.ignored and n not in groups.unready
    }
    values = {n: v for n, v in values.items() if n in {_name(p) for p in pods}}
    if not values:
        raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")
    requests = pod_requests(pods, resource, container)
    ratio, utilization, average = utilization_ratio(values, requests, target_utilization)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerance.within(ratio):
            return Recommendation(current, utilization, average)
        return Recommendation(math.ceil(ratio * groups.ready), utilization, average)
    filled = dict(values)
    if groups.missing:
        fallback = max(100, target_utilization)
        for name in groups.missing:
            filled[name] = requests[name] * fallback // 100 if ratio < 1.0 else 0
    if scale_up_with_unready:
        for name in groups.unready:
            filled[name] = 0
    new_ratio, _, _ = utilization_ratio(filled, requests, target_utilization)
    replicas = _settle(current, ratio, new_ratio, len(filled), tolerance)
    return Recommendation(replicas, utilization, average)


def resource_average_replicas(
    current: int,
    target_average: int,
    resource: str,
    pods: list[Obj],
    samples: Mapping[str, PodSample],
    now: float,
    *,
    tolerance: Tolerance = Tolerance(),
    readiness: Readiness = Readiness(),
) -> Recommendation:
    """Replicas for an ``AverageValue`` target in milli-units (``calcPlainMetricReplicas``)."""
    if not pods:
        raise MetricsError("no pods returned by selector while calculating replica count")
    if target_average <= 0:
        raise MetricsError("the target average value must be positive")
    groups = group_pods(pods, samples, resource, now, readiness)
    names = {_name(p) for p in pods}
    values = {
        n: s.value
        for n, s in samples.items()
        if n in names and n not in groups.ignored and n not in groups.unready
    }
    if not values:
        raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, average = average_ratio(values, target_average)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerance.within(ratio):
            return Recommendation(current, None, average)
        return Recommendation(math.ceil(ratio * groups.ready), None, average)
    filled = dict(values)
    for name in groups.missing:
        filled[name] = target_average if ratio < 1.0 else 0
    if scale_up_with_unready:
        for name in groups.unready:
            filled[name] = 0
    new_ratio, _ = average_ratio(filled, target_average)
    return Recommendation(_settle(current, ratio, new_ratio, len(filled), tolerance), None, average)
