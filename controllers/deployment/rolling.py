"""RollingUpdate arithmetic (pure): how far the new ReplicaSet may grow and the old ones shrink.

Guarantee, given ReplicaSets whose ``status.availableReplicas`` is truthful: applying the plans of
:func:`plan_rolling_step` one after another never makes the sum of ``spec.replicas`` exceed
``replicas + maxSurge`` and never scales a ReplicaSet down while that would leave fewer than
``replicas - maxUnavailable`` available pods. maxSurge rounds up, maxUnavailable rounds down, and
if both resolve to 0 maxUnavailable becomes 1 (Kubernetes ``ResolveFenceposts``).
"""

from __future__ import annotations

import math
from typing import Any

from controllers.deployment.plans import Scale, ScalePlan
from controllers.objects import created_at, name_of, spec_replicas, status_int

Obj = dict[str, Any]

DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"


def scaled_value(
    value: int | str | None, total: int, *, round_up: bool, default: int | str = 0
) -> int:
    """An IntOrString resolved against ``total``: ints as is, ``"N%"`` of ``total`` rounded."""
    if value is None:
        value = default
    if isinstance(value, bool):
        raise ValueError(f"invalid int-or-percent value {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: {value!r} is not a percentage")
    percent = int(text[:-1])
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def is_rolling(d: Obj) -> bool:
    strategy = (d.get("spec") or {}).get("strategy") or {}
    return strategy.get("type", "RollingUpdate") == "RollingUpdate"


def _rolling_params(d: Obj) -> Obj:
    strategy = (d.get("spec") or {}).get("strategy") or {}
    return strategy.get("rollingUpdate") or {}


def resolve_fenceposts(
    max_surge: int | str | None, max_unavailable: int | str | None, desired: int
) -> tuple[int, int]:
    """(surge, unavailable) as absolute numbers for ``desired`` replicas."""
    surge = scaled_value(max_surge, desired, round_up=True, default=DEFAULT_MAX_SURGE)
    unavailable = scaled_value(
        max_unavailable, desired, round_up=False, default=DEFAULT_MAX_UNAVAILABLE
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    p = _rolling_params(d)
    return resolve_fenceposts(p.get("maxSurge"), p.get("maxUnavailable"), spec_replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    replicas = spec_replicas(d)
    if not is_rolling(d) or replicas == 0:
        return 0
    p = _rolling_params(d)
    unavailable = resolve_fenceposts(p.get("maxSurge"), p.get("maxUnavailable"), replicas)[1]
    return min(unavailable, replicas)


def total_spec(rss: list[Obj]) -> int:
    return sum(spec_replicas(rs, 0) for rs in rss)


def capped_available(rs: Obj) -> int:
    """Available pods ``rs`` will still have once it reaches ``spec.replicas``.

    A ReplicaSet just scaled down reports the pods it is about to delete as available until its
    controller writes a fresh status; counting them would let a second scale-down step take the
    availability below ``replicas - maxUnavailable``."""
    return min(status_int(rs, "availableReplicas"), spec_replicas(rs, 0))


def total_available(rss: list[Obj]) -> int:
    return sum(capped_available(rs) for rs in rss)


def new_rs_new_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """How many replicas the new ReplicaSet may have now (Kubernetes ``NewRSNewReplicas``)."""
    desired = spec_replicas(d)
    current_new = spec_replicas(new_rs, 0)
    if not is_rolling(d):
        return desired
    max_total = desired + max_surge(d)
    # Kubernetes sums spec.replicas only; counting pods an old ReplicaSet still reports keeps
    # the surge bound true of actual pods while the ReplicaSet controller catches up.
    current_total = sum(max(spec_replicas(rs, 0), status_int(rs, "replicas")) for rs in all_rss)
    if current_total >= max_total:
        return current_new
    scale_up = min(max_total - current_total, desired - current_new)
    return current_new + scale_up


def _by_creation(rss: list[Obj]) -> list[Obj]:
    return sorted(rss, key=lambda rs: (created_at(rs), name_of(rs)))


def plan_new_rs(d: Obj, all_rss: list[Obj], new_rs: Obj) -> ScalePlan:
    """Resize the new ReplicaSet toward ``spec.replicas`` within the surge budget."""
    desired = spec_replicas(d)
    current = spec_replicas(new_rs, 0)
    if current == desired:
        return ScalePlan()
    if current > desired:
        return ScalePlan((Scale(name_of(new_rs), desired),))
    target = new_rs_new_replicas(d, all_rss, new_rs)
    return ScalePlan((Scale(name_of(new_rs), target),)) if target != current else ScalePlan()


def plan_old_rss(d: Obj, all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj | None) -> ScalePlan:
    """Shrink old ReplicaSets: first their unavailable pods, then available ones down to the
    availability floor, oldest ReplicaSet first (Kubernetes ``reconcileOldReplicaSets``)."""
    active_old = [rs for rs in old_rss if spec_replicas(rs, 0) > 0]
    if not active_old:
        return ScalePlan()
    desired = spec_replicas(d)
    min_available = desired - max_unavailable(d)
    new_unavailable = 0
    if new_rs is not None:
        new_unavailable = spec_replicas(new_rs, 0) - status_int(new_rs, "availableReplicas")
    max_scaled_down = total_spec(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return ScalePlan()

    sizes = {name_of(rs): spec_replicas(rs, 0) for rs in active_old}
    ordered = _by_creation(active_old)
    # 1. unhealthy replicas cost no availability: remove them first.
    cleaned = 0
    for rs in ordered:
        if cleaned >= max_scaled_down:
            break
        size = sizes[name_of(rs)]
        unhealthy = size - capped_available(rs)
        if size == 0 or unhealthy <= 0:
            continue
        step = min(max_scaled_down - cleaned, unhealthy)
        sizes[name_of(rs)] = size - step
        cleaned += step
    # 2. available replicas, as far as the availability floor allows.
    available = total_available(all_rss)
    if available > min_available:
        budget = available - min_available
        taken = 0
        for rs in ordered:
            if taken >= budget:
                break
            size = sizes[name_of(rs)]
            if size == 0:
                continue
            step = min(size, budget - taken)
            sizes[name_of(rs)] = size - step
            taken += step
    return ScalePlan(
        tuple(
            Scale(name_of(rs), sizes[name_of(rs)])
            for rs in ordered
            if sizes[name_of(rs)] != spec_replicas(rs, 0)
        )
    )


def plan_rolling_step(d: Obj, new_rs: Obj, old_rss: list[Obj]) -> ScalePlan:
    """One step of a rolling update: grow the new ReplicaSet if it may, else shrink old ones.

    An empty plan means the rollout has nothing to do until pods change state.
    """
    all_rss = [*old_rss, new_rs]
    grow = plan_new_rs(d, all_rss, new_rs)
    if grow:
        return grow
    return plan_old_rss(d, all_rss, old_rss, new_rs)
