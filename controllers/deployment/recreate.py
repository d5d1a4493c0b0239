"""The Recreate strategy (pure): every old pod is gone before a new one is made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controllers.deployment.plans import Scale, ScalePlan
from controllers.objects import name_of, spec_replicas, status_int, uid_of

Obj = dict[str, Any]


@dataclass(frozen=True)
class RecreateStep:
    """``scale_down`` old ReplicaSets first; when that is empty and no old pod runs,
    ``scale_up`` the new ReplicaSet (creating it first when ``create_new``)."""

    scale_down: ScalePlan
    wait_for_old_pods: bool
    create_new: bool
    scale_up: ScalePlan


def old_pods_running(
    new_rs: Obj | None, old_rss: list[Obj], pods_by_rs_uid: dict[str, list[Obj]]
) -> bool:
    """Kubernetes ``oldPodsRunning``: any old ReplicaSet reports pods, or any pod not owned by the
    new ReplicaSet is not yet terminal."""
    if sum(status_int(rs, "replicas") for rs in old_rss) > 0:
        return True
    new_uid = uid_of(new_rs) if new_rs else None
    for rs_uid, pods in pods_by_rs_uid.items():
        if rs_uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False


def plan_recreate_step(
    d: Obj, new_rs: Obj | None, old_rss: list[Obj], pods_by_rs_uid: dict[str, list[Obj]]
) -> RecreateStep:
    down = ScalePlan(tuple(Scale(name_of(rs), 0) for rs in old_rss if spec_replicas(rs, 0) > 0))
    if down:
        return RecreateStep(down, False, False, ScalePlan())
    if old_pods_running(new_rs, old_rss, pods_by_rs_uid):
        return RecreateStep(ScalePlan(), True, False, ScalePlan())
    desired = spec_replicas(d)
    if new_rs is None:
        return RecreateStep(ScalePlan(), False, True, ScalePlan())
    up = (
        ScalePlan((Scale(name_of(new_rs), desired),))
        if spec_replicas(new_rs, 0) != desired
        else ScalePlan()
    )
    return RecreateStep(ScalePlan(), False, False, up)
