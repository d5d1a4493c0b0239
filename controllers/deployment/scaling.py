"""Scaling a Deployment outside a rollout (pure), including proportional scaling.

When ``spec.replicas`` changes while several ReplicaSets have pods (a rollout in progress, or a
paused one), the difference is shared among them in proportion to their size, measured against
the size they were given for (their ``max-replicas`` annotation). Larger ReplicaSets go first;
the newer one wins a tie when adding, the older one when removing; any rounding leftover goes to
the first. Kubernetes ``DeploymentController.scale``.
"""

from __future__ import annotations

from typing import Any

from controllers.deployment.plans import Scale, ScalePlan
from controllers.deployment.revisions import desired_replicas_annotation, max_replicas_annotation
from controllers.deployment.rolling import is_rolling, max_surge
from controllers.objects import created_at, name_of, spec_replicas, status_int

Obj = dict[str, Any]


def round_half_away(x: float) -> int:
    """Go's ``math.Round``."""
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def active(rss: list[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and spec_replicas(rs, 0) > 0]


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    """The only ReplicaSet with replicas, or the latest one when none has any; None if several
    have replicas (or there are none at all)."""
    if new_rs is None and not old_rss:
        return None
    olds = sorted(old_rss, key=lambda rs: (created_at(rs), name_of(rs)), reverse=True)
    live = active([*olds, new_rs])
    if not live:
        return new_rs if new_rs is not None else olds[0]
    return live[0] if len(live) == 1 else None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    """The ReplicaSet alone provides the Deployment's full, available size."""
    if rs is None:
        return False
    desired = spec_replicas(d)
    return (
        desired_replicas_annotation(rs) == desired
        and spec_replicas(rs, 0) == desired
        and status_int(rs, "availableReplicas") == desired
    )


def is_scaling_event(d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
    """Some active ReplicaSet was sized for a different ``spec.replicas``."""
    desired = spec_replicas(d)
    for rs in active([*old_rss, new_rs]):
        annotated = desired_replicas_annotation(rs)
        if annotated is not None and annotated != desired:
            return True
    return False


def _fraction(rs: Obj, d: Obj) -> int:
    desired = spec_replicas(d)
    if desired == 0:
        return -spec_replicas(rs, 0)
    deployment_max = desired + max_surge(d)
    annotated = max_replicas_annotation(rs)
    if annotated is None:
        annotated = status_int(d, "replicas")
    if annotated == 0:
        return 0
    return round_half_away(spec_replicas(rs, 0) * deployment_max / annotated) - spec_replicas(rs, 0)


def _proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if spec_replicas(rs, 0) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def plan_scale(d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> ScalePlan:
    """The resizes that bring the ReplicaSets to the Deployment's current ``spec.replicas``.

    Also (re)writes the replicas annotations: every ReplicaSet in the plan is meant to be
    written with desired-replicas/max-replicas for the current spec, even at unchanged size.
    """
    desired = spec_replicas(d)
    target = find_active_or_latest(new_rs, old_rss)
    if target is not None:
        return ScalePlan((Scale(name_of(target), desired),))
    if is_saturated(d, new_rs):
        return ScalePlan(tuple(Scale(name_of(rs), 0) for rs in active(old_rss)))
    if not is_rolling(d):
        return ScalePlan()
    live = active([*old_rss, new_rs])
    allowed = desired + max_surge(d) if desired > 0 else 0
    to_add = allowed - sum(spec_replicas(rs, 0) for rs in live)
    if to_add > 0:  # larger first, newer first on a tie
        live.sort(key=lambda rs: (-spec_replicas(rs, 0), -created_at(rs), name_of(rs)))
    elif to_add < 0:  # larger first, older first on a tie
        live.sort(key=lambda rs: (-spec_replicas(rs, 0), created_at(rs), name_of(rs)))
    sizes: dict[str, int] = {}
    added = 0
    for rs in live:
        step = _proportion(rs, d, to_add, added) if to_add else 0
        sizes[name_of(rs)] = spec_replicas(rs, 0) + step
        added += step
    if to_add and live:
        first = name_of(live[0])
        sizes[first] = max(0, sizes[first] + to_add - added)
    return ScalePlan(tuple(Scale(name_of(rs), sizes[name_of(rs)]) for rs in live))
