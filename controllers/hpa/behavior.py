"""Stabilisation windows and scaling policies: from a raw recommendation to the replica count
the controller may set now. Pure functions over an explicit per-autoscaler history.

Follows Kubernetes' ``podautoscaler/horizontal.go`` (``normalizeDesiredReplicas`` without
``spec.behavior``, ``normalizeDesiredReplicasWithBehaviors`` with it):

* every recommendation is recorded with its time; a scale-down uses the highest
  recommendation of the down window, a scale-up the lowest of the up window (defaults 300 s
  and 0 s); the first look at an autoscaler records the current replica count, so nothing
  scales down within one window of the controller starting;
* with ``behavior``, the replicas changed in each policy's ``periodSeconds`` (from the
  recorded scale events) bound the next step: ``Pods`` adds/removes ``value`` pods, ``Percent``
  ``value`` % of the count at the start of the period; ``selectPolicy`` Max picks the policy
  allowing the largest change, Min the smallest, Disabled forbids the direction;
* without ``behavior``, a step up is at most ``max(2 × current, 4)``.

The result carries the ``AbleToScale`` and ``ScalingLimited`` reasons Kubernetes sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

DEFAULT_DOWNSCALE_WINDOW = 300.0
SCALE_UP_LIMIT_FACTOR = 2
SCALE_UP_LIMIT_MINIMUM = 4


@dataclass(frozen=True)
class Policy:
    type: str  # Pods | Percent
    value: int
    period_seconds: int


@dataclass(frozen=True)
class Rules:
    """One direction's ``HPAScalingRules`` with Kubernetes' defaults filled in."""

    stabilization_window: float
    select_policy: str = "Max"
    policies: tuple[Policy, ...] = ()


@dataclass(frozen=True)
class ScaleEvent:
    change: int
    timestamp: float


@dataclass
class History:
    """What the controller remembers of one autoscaler between syncs (in memory only, as in
    Kubernetes: a restarted controller starts over)."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_up_events: list[ScaleEvent] = field(default_factory=list)
    scale_down_events: list[ScaleEvent] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    """The replica count allowed now, and the conditions explaining it."""

    replicas: int
    able_reason: str
    able_message: str
    limited: bool
    limited_reason: str
    limited_message: str


def default_rules(spec_behavior: Obj | None, downscale_window: float) -> tuple[Rules, Rules]:
    """(scale-up, scale-down) rules from ``spec.behavior`` (absent fields get the defaults)."""
    b = spec_behavior or {}

    def rules(raw: Obj | None, up: bool) -> Rules:
        raw = raw or {}
        window = raw.get("stabilizationWindowSeconds")
        if window is None:
            window = 0 if up else downscale_window
        policies = raw.get("policies")
        if policies is None:
            policies = (
                [
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15},
                ]
                if up
                else [{"type": "Percent", "value": 100, "periodSeconds": 15}]
            )
        return Rules(
            float(window),
            raw.get("selectPolicy") or "Max",
            tuple(Policy(p["type"], int(p["value"]), int(p["periodSeconds"])) for p in policies),
        )

    return rules(b.get("scaleUp"), True), rules(b.get("scaleDown"), False)


def record_initial(history: History, current: int, now: float) -> None:
    """The first look at an autoscaler counts the current size as a recommendation."""
    if not history.recommendations:
        history.recommendations.append((now, current))


# -- without spec.behavior --------------------------------------------------------------------


def normalize(
    history: History,
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    now: float,
    downscale_window: float = DEFAULT_DOWNSCALE_WINDOW,
) -> Decision:
    """``normalizeDesiredReplicas``: the down window's highest recommendation, then bounds."""
    cutoff = now - downscale_window
    stabilized = desired
    for ts, rec in history.recommendations:
        if ts >= cutoff and rec > stabilized:
            stabilized = rec
    _record(history, desired, now, cutoff)
    if stabilized != desired:
        able = (
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent "
            "recommendation",
        )
    else:
        able = ("ReadyForNewScale", "recommended size matches current size")
    scale_up_limit = max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM)
    if max_replicas > scale_up_limit:
        top, reason, message = (
            scale_up_limit,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate",
        )
    else:
        top, reason, message = (
            max_replicas,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    if stabilized < min_replicas:
        final, reason, message = (
            min_replicas,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    elif stabilized > top:
        final = top
    else:
        final, reason, message = (
            stabilized,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        )
    return Decision(final, *able, final != stabilized, reason, message)


def _record(history: History, desired: int, now: float, cutoff: float) -> None:
    history.recommendations = [(ts, r) for ts, r in history.recommendations if ts >= cutoff]
    history.recommendations.append((now, desired))


# -- with spec.behavior -----------------------------------------------------------------------


def normalize_with_behavior(
    history: History,
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    up: Rules,
    down: Rules,
    now: float,
) -> Decision:
    """``normalizeDesiredReplicasWithBehaviors``: stabilise in both directions, then apply
    the rate policies and the bounds."""
    stabilized, reason, message = stabilize(history, current, desired, up, down, now)
    if stabilized != desired:
        able = (reason, message)
    else:
        able = ("ReadyForNewScale", "recommended size matches current size")
    final, lreason, lmessage = limit_by_rate(
        history, current, stabilized, min_replicas, max_replicas, up, down, now
    )
    return Decision(final, *able, final != stabilized, lreason, lmessage)


def stabilize(
    history: History, current: int, desired: int, up: Rules, down: Rules, now: float
) -> tuple[int, str, str]:
    """Bring ``desired`` within [lowest of the up window, highest of the down window]."""
    up_cutoff, down_cutoff = now - up.stabilization_window, now - down.stabilization_window
    up_rec = down_rec = desired
    for ts, rec in history.recommendations:
        if ts > up_cutoff:
            up_rec = min(up_rec, rec)
        if ts > down_cutoff:
            down_rec = max(down_rec, rec)
    recommendation = max(current, up_rec)
    recommendation = min(recommendation, down_rec)
    keep = min(up_cutoff, down_cutoff)
    history.recommendations = [(ts, r) for ts, r in history.recommendations if ts >= keep]
    history.recommendations.append((now, desired))
    if desired >= current:
        return (
            recommendation,
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent "
            "recommendation",
        )
    return (
        recommendation,
        "ScaleDownStabilized",
        "recent recommendations were higher than current one, applying the highest recent "
        "recommendation",
    )


def _changed_in_period(events: list[ScaleEvent], period: float, now: float) -> int:
    cutoff = now - period
    return sum(e.change for e in events if e.timestamp > cutoff)


def scale_up_limit(current: int, events: list[ScaleEvent], rules: Rules, now: float) -> int:
    """The highest count the up policies allow now (``calculateScaleUpLimitWithScalingRules``)."""
    if rules.select_policy == "Disabled":
        return current
    pick = min if rules.select_policy == "Min" else max
    result: int | None = None
    for p in rules.policies:
        start = current - _changed_in_period(events, p.period_seconds, now)
        proposed = start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def scale_down_limit(current: int, events: list[ScaleEvent], rules: Rules, now: float) -> int:
    """The lowest count the down policies allow now (``calculateScaleDownLimitWithBehaviors``)."""
    if rules.select_policy == "Disabled":
        return current
    pick = max if rules.select_policy == "Min" else min
    result: int | None = None
    for p in rules.policies:
        start = current + _changed_in_period(events, p.period_seconds, now)
        proposed = start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def limit_by_rate(
    history: History,
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    up: Rules,
    down: Rules,
    now: float,
) -> tuple[int, str, str]:
    """``convertDesiredReplicasWithBehaviorRate``: the count, and the ScalingLimited reason."""
    if desired > current:
        limit = max(scale_up_limit(current, history.scale_up_events, up, now), current)
        if max_replicas > limit:
            top, reason, message = (
                limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        else:
            top, reason, message = (
                max_replicas,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        if desired > top:
            return top, reason, message
    elif desired < current:
        limit = min(scale_down_limit(current, history.scale_down_events, down, now), current)
        if min_replicas < limit:
            bottom, reason, message = (
                limit,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        else:
            bottom, reason, message = (
                min_replicas,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        if desired < bottom:
            return bottom, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def record_scale(
    history: History, previous: int, new: int, up: Rules, down: Rules, now: float
) -> None:
    """Remember a rescale for the rate policies (``storeScaleEvent``); events older than the
    longest policy period of their direction are dropped."""
    if new > previous:
        keep = max((p.period_seconds for p in up.policies), default=0)
        history.scale_up_events = [
            e for e in history.scale_up_events if e.timestamp > now - keep
        ] + [ScaleEvent(new - previous, now)]
    elif new < previous:
        keep = max((p.period_seconds for p in down.policies), default=0)
        history.scale_down_events = [
            e for e in history.scale_down_events if e.timestamp > now - keep
        ] + [ScaleEvent(previous - new, now)]
