"""Which pods a ReplicaSet deletes first (Kubernetes ``ActivePodsWithRanks``), pure.

Least valuable first: unscheduled before scheduled; Pending before Unknown before Running; not
ready before ready; pods doubled up on a node (more related pods on the same node) before lone
ones; among ready pods, ready for less time first (unknown time first); more container restarts
first; newer first (unknown creation time first).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from controllers.objects import created_at, is_pod_ready, name_of, parse_time, pod_condition

Obj = dict[str, Any]

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def _deletion_key(pod: Obj, colocated: Counter[str]) -> tuple[Any, ...]:
    node = (pod.get("spec") or {}).get("nodeName") or ""
    ready = is_pod_ready(pod)
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    if ready:
        since = parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime"))
        ready_key = (0, 0.0) if since is None else (1, -since)
    else:
        ready_key = (0, 0.0)
    created = created_at(pod)
    created_key = (0, 0.0) if not created else (1, -created)
    return (
        1 if node else 0,
        _PHASE_RANK.get(phase, 3),
        1 if ready else 0,
        -colocated[node] if node else 0,
        ready_key,
        -_restarts(pod),
        created_key,
        name_of(pod),
    )


def rank_for_deletion(pods: list[Obj], related: list[Obj] | None = None) -> list[Obj]:
    """``pods`` ordered least valuable first. ``related`` (defaults to ``pods``) are the pods
    whose node placement counts for the doubled-up rule."""
    colocated = Counter(
        (p.get("spec") or {}).get("nodeName") or "" for p in (pods if related is None else related)
    )
    return sorted(pods, key=lambda p: _deletion_key(p, colocated))


def pods_to_delete(pods: list[Obj], count: int, related: list[Obj] | None = None) -> list[Obj]:
    return rank_for_deletion(pods, related)[: max(0, count)]
