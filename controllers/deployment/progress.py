"""Deployment status and conditions (pure): counts, Available, Progressing, ReplicaFailure.

Condition names, reasons and messages are Kubernetes': ``Available`` (MinimumReplicasAvailable /
MinimumReplicasUnavailable), ``Progressing`` (NewReplicaSetCreated, FoundNewReplicaSet,
ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused,
DeploymentResumed, ReplicaSetCreateError) and ``ReplicaFailure`` copied from the ReplicaSets.
A deadline is measured from the Progressing condition's ``lastUpdateTime``, which moves only when
the rollout makes progress.
"""

from __future__ import annotations

import copy
from typing import Any

from controllers.conditions import get_condition, new_condition, remove_condition, set_condition
from controllers.deployment.rolling import max_unavailable
from controllers.objects import meta, name_of, parse_time, spec_replicas, status_int

Obj = dict[str, Any]

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"

MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"

DEFAULT_PROGRESS_DEADLINE = 600
_NO_DEADLINE = 2**31 - 1


def progress_deadline(d: Obj) -> int | None:
    """``progressDeadlineSeconds`` (default 600); None when unset to MaxInt32 (no deadline)."""
    value = (d.get("spec") or {}).get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)
    if value is None or int(value) == _NO_DEADLINE:
        return None
    return int(value)


def calculate_status(d: Obj, all_rss: list[Obj], new_rs: Obj | None, now: float) -> Obj:
    """The counts and the Available condition (a new status dict; conditions copied)."""
    available = sum(status_int(rs, "availableReplicas") for rs in all_rss)
    total_spec = sum(spec_replicas(rs, 0) for rs in all_rss)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": int(meta(d).get("generation") or 0),
        "replicas": sum(status_int(rs, "replicas") for rs in all_rss),
        "updatedReplicas": status_int(new_rs, "replicas") if new_rs else 0,
        "readyReplicas": sum(status_int(rs, "readyReplicas") for rs in all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total_spec - available),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= spec_replicas(d) - max_unavailable(d):
        cond = new_condition(
            AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.", now
        )
    else:
        cond = new_condition(
            AVAILABLE,
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    set_condition(status, cond)
    return status


def is_complete(d: Obj, status: Obj) -> bool:
    """Kubernetes ``DeploymentComplete``: every replica updated and available, spec observed."""
    desired = spec_replicas(d)
    return (
        status.get("updatedReplicas", 0) == desired
        and status.get("replicas", 0) == desired
        and status.get("availableReplicas", 0) == desired
        and status.get("observedGeneration", 0) >= int(meta(d).get("generation") or 0)
    )


def is_progressing(d: Obj, status: Obj) -> bool:
    """Some count moved the right way since the status the Deployment carries."""
    old = d.get("status") or {}
    old_olds = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_olds = status.get("replicas", 0) - status.get("updatedReplicas", 0)
    return (
        status.get("updatedReplicas", 0) > old.get("updatedReplicas", 0)
        or new_olds < old_olds
        or status.get("readyReplicas", 0) > old.get("readyReplicas", 0)
        or status.get("availableReplicas", 0) > old.get("availableReplicas", 0)
    )


def is_timed_out(d: Obj, status: Obj, now: float) -> bool:
    deadline = progress_deadline(d)
    cond = get_condition(status, PROGRESSING)
    if deadline is None or cond is None:
        return False
    if cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + deadline < now


def rollout_status(d: Obj, all_rss: list[Obj], new_rs: Obj | None, now: float) -> Obj:
    """The full status after a rollout step (Kubernetes ``syncRolloutStatus``)."""
    status = calculate_status(d, all_rss, new_rs, now)
    deadline = progress_deadline(d)
    if deadline is None:
        remove_condition(status, PROGRESSING)
    current = get_condition(d.get("status"), PROGRESSING)
    complete_already = (
        status["replicas"] == status["updatedReplicas"]
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE
    )
    if deadline is not None and not complete_already:
        if is_complete(d, status):
            msg = (
                f'ReplicaSet "{name_of(new_rs)}" has successfully progressed.'
                if new_rs
                else "Deployment has successfully progressed."
            )
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now))
        elif is_progressing(d, status):
            msg = (
                f'ReplicaSet "{name_of(new_rs)}" is progressing.'
                if new_rs
                else "Deployment is progressing."
            )
            cond = new_condition(PROGRESSING, "True", RS_UPDATED, msg, now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif is_timed_out(d, status, now):
            msg = (
                f'ReplicaSet "{name_of(new_rs)}" has timed out progressing.'
                if new_rs
                else f'Deployment "{name_of(d)}" has timed out progressing.'
            )
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, msg, now))
    failures = [get_condition(rs.get("status"), REPLICA_FAILURE) for rs in all_rss]
    failure = next((c for c in failures if c and c.get("status") == "True"), None)
    if failure:
        set_condition(
            status,
            new_condition(
                REPLICA_FAILURE,
                failure["status"],
                failure.get("reason", ""),
                failure.get("message", ""),
                now,
            ),
        )
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def requeue_for_deadline(d: Obj, status: Obj, now: float) -> float | None:
    """Seconds until the progress deadline should be checked again, or None."""
    deadline = progress_deadline(d)
    cond = get_condition(d.get("status"), PROGRESSING)
    if deadline is None or cond is None:
        return None
    if is_complete(d, status) or cond.get("reason") == TIMED_OUT:
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    after = since + deadline - now
    return max(after, 0.0) + 1.0


def paused_condition(d: Obj, now: float) -> Obj | None:
    """The status with DeploymentPaused/DeploymentResumed applied, or None when unchanged."""
    if progress_deadline(d) is None:
        return None
    cond = get_condition(d.get("status"), PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT:
        return None
    paused_now = cond is not None and cond.get("reason") == PAUSED
    paused = bool((d.get("spec") or {}).get("paused"))
    if paused == paused_now:
        return None
    status = copy.deepcopy(d.get("status") or {})
    if paused:
        set_condition(
            status, new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now)
        )
    else:
        set_condition(
            status, new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now)
        )
    return status
