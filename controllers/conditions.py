"""Status conditions with Kubernetes' update rules.

A condition is ``{type, status, reason, message, lastTransitionTime[, lastUpdateTime]}``.
:func:`set_condition` is Kubernetes' ``SetDeploymentCondition``: setting a condition that already
has the same status and reason changes nothing; a same-status change keeps the old
``lastTransitionTime``.
"""

from __future__ import annotations

from typing import Any

from controllers.objects import format_time

Condition = dict[str, Any]


def new_condition(
    ctype: str, status: str, reason: str, message: str, now: float, *, with_update_time: bool = True
) -> Condition:
    ts = format_time(now)
    cond: Condition = {"type": ctype, "status": status}
    if with_update_time:
        cond["lastUpdateTime"] = ts
    cond.update({"lastTransitionTime": ts, "reason": reason, "message": message})
    return cond


def get_condition(status: dict[str, Any] | None, ctype: str) -> Condition | None:
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def set_condition(status: dict[str, Any], cond: Condition) -> None:
    """Put ``cond`` into ``status.conditions`` (mutates ``status``)."""
    current = get_condition(status, cond["type"])
    if (
        current
        and current.get("status") == cond["status"]
        and current.get("reason") == cond.get("reason")
    ):
        return
    cond = dict(cond)
    if current and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime")
    others = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    status["conditions"] = [*others, cond]


def remove_condition(status: dict[str, Any], ctype: str) -> None:
    """Drop the condition of ``ctype`` (mutates ``status``; removes an emptied list)."""
    kept = [c for c in status.get("conditions") or [] if c.get("type") != ctype]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)
