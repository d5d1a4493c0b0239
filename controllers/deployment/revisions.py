"""Revision bookkeeping (pure): which ReplicaSet is new, revision numbers, annotations, history.

Kubernetes rules kept here:

* the new ReplicaSet is the oldest one whose template equals the Deployment's (ignoring
  ``pod-template-hash``); every other owned ReplicaSet is old;
* the new ReplicaSet's revision is ``max(old revisions) + 1``; when an existing ReplicaSet becomes
  new again (a rollback), its previous revision is appended to ``revision-history``
  (comma separated, at most 2000 characters, oldest entries dropped first);
* the Deployment's ``deployment.kubernetes.io/revision`` mirrors its new ReplicaSet's;
* Deployment annotations are copied to its ReplicaSets, except the bookkeeping ones;
* history cleanup deletes the oldest-revision old ReplicaSets beyond ``revisionHistoryLimit``
  that have no pods, no replicas and an observed generation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from controllers.deployment.hashing import POD_TEMPLATE_HASH, compute_hash, equal_ignore_hash
from controllers.deployment.rolling import max_surge
from controllers.objects import (
    created_at,
    is_deleting,
    meta,
    name_of,
    owner_reference,
    spec_replicas,
    status_int,
    uid_of,
)

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
MAX_REV_HISTORY_CHARS = 2000
DEFAULT_REVISION_HISTORY_LIMIT = 10

_NOT_COPIED = frozenset(
    {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
)


def revision_of(obj: Obj) -> int:
    """The revision annotation as an int (0 when absent or unparsable)."""
    text = (meta(obj).get("annotations") or {}).get(REVISION, "")
    try:
        return int(text)
    except ValueError:
        return 0


def max_revision(rss: list[Obj]) -> int:
    return max((revision_of(rs) for rs in rss), default=0)


def find_new_rs(d: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template matches the Deployment's."""
    template = (d.get("spec") or {}).get("template")
    for rs in sorted(rss, key=lambda r: (created_at(r), name_of(r))):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def split_new_old(d: Obj, rss: list[Obj]) -> tuple[Obj | None, list[Obj]]:
    """(new ReplicaSet or None, every other ReplicaSet)."""
    new = find_new_rs(d, rss)
    new_uid = uid_of(new) if new else None
    return new, [rs for rs in rss if new is None or uid_of(rs) != new_uid]


def copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    """Copy the Deployment's user annotations onto ``rs`` (mutates ``rs``); True if changed."""
    annotations = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for k, v in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if k in _NOT_COPIED or annotations.get(k) == v:
            continue
        annotations[k] = v
        changed = True
    return changed


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    """Write desired-replicas/max-replicas onto ``rs`` (mutates); True if changed."""
    annotations = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for k, v in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if annotations.get(k) != v:
            annotations[k] = v
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, max_replicas: int) -> bool:
    annotations = (rs.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DESIRED_REPLICAS) != str(desired) or annotations.get(
        MAX_REPLICAS
    ) != str(max_replicas)


def desired_replicas_annotation(rs: Obj) -> int | None:
    text = (meta(rs).get("annotations") or {}).get(DESIRED_REPLICAS)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def max_replicas_annotation(rs: Obj) -> int | None:
    text = (meta(rs).get("annotations") or {}).get(MAX_REPLICAS)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def set_new_rs_annotations(
    d: Obj,
    rs: Obj,
    new_revision: int,
    *,
    exists: bool,
    history_limit_chars: int = MAX_REV_HISTORY_CHARS,
) -> bool:
    """Kubernetes ``SetNewReplicaSetAnnotations`` (mutates ``rs``); True if anything changed."""
    changed = copy_deployment_annotations(d, rs)
    annotations = rs["metadata"]["annotations"]
    old_text = annotations.get(REVISION)
    try:
        old = int(old_text) if old_text else 0
    except ValueError:
        return False
    if old < new_revision:
        annotations[REVISION] = str(new_revision)
        changed = True
        if old_text:
            history = annotations.get(REVISION_HISTORY, "")
            entries = history.split(",") if history else []
            total = len(history) + len(old_text) + 1 if entries else len(old_text)
            start = 0
            while entries and total > history_limit_chars and start < len(entries):
                total -= len(entries[start]) + 1
                start += 1
            if total <= history_limit_chars:
                annotations[REVISION_HISTORY] = ",".join([*entries[start:], old_text])
    if not exists:
        desired = spec_replicas(d)
        changed = set_replicas_annotations(rs, desired, desired + max_surge(d)) or changed
    return changed


def build_new_rs(d: Obj, collision_count: int | None) -> Obj:
    """The ReplicaSet a Deployment's current template gets (replicas 0, no revision yet)."""
    spec = d.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    pod_hash = compute_hash(template, collision_count)
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels[POD_TEMPLATE_HASH] = pod_hash
    template.setdefault("metadata", {})["labels"] = labels
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = pod_hash
    rs_spec: Obj = {"replicas": 0, "selector": selector, "template": template}
    if spec.get("minReadySeconds"):
        rs_spec["minReadySeconds"] = spec["minReadySeconds"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name_of(d)}-{pod_hash}",
            "namespace": meta(d).get("namespace"),
            "labels": dict(labels),
            "annotations": {},
            "ownerReferences": [owner_reference(d)],
        },
        "spec": rs_spec,
    }


@dataclass(frozen=True)
class CleanupPlan:
    """Old ReplicaSets to delete (names, oldest revision first)."""

    delete: tuple[str, ...] = ()


def plan_history_cleanup(d: Obj, old_rss: list[Obj]) -> CleanupPlan:
    limit = (d.get("spec") or {}).get("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT)
    if limit is None:
        return CleanupPlan()
    alive = [rs for rs in old_rss if not is_deleting(rs)]
    excess = len(alive) - int(limit)
    if excess <= 0:
        return CleanupPlan()
    ordered = sorted(alive, key=lambda rs: (revision_of(rs), created_at(rs), name_of(rs)))
    doomed = []
    for rs in ordered[:excess]:
        if status_int(rs, "replicas") or spec_replicas(rs, 0):
            continue
        if int(meta(rs).get("generation") or 0) > status_int(rs, "observedGeneration"):
            continue
        doomed.append(name_of(rs))
    return CleanupPlan(tuple(doomed))
