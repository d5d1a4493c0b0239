"""PodTopologySpread: keep matching pods evenly spread over topology domains.

``DoNotSchedule`` constraints filter: placing the pod on a node may not make
``count(domain) + self - min(count over eligible domains)`` exceed ``maxSkew``; a node without
the topology label cannot take the pod. ``ScheduleAnyway`` constraints score: fewer matching pods
in the node's domain is better. Eligible domains come from nodes that pass the pod's node
affinity (``nodeAffinityPolicy: Honor``, the default) and, when asked, its tolerations
(``nodeTaintsPolicy: Honor``). Only pods in the pod's namespace and not terminating count.
Cluster-default constraints are not applied.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from machinery.selectors import LabelSelector
from scheduler.cache import NodeInfo, Snapshot
from scheduler.framework import (
    MAX_NODE_SCORE,
    NODE_ADD,
    NODE_UPDATE,
    OK,
    POD_ADD,
    POD_DELETE,
    POD_UPDATE,
    SKIP,
    CycleState,
    FilterPlugin,
    PreFilterPlugin,
    PreScorePlugin,
    ScorePlugin,
    Status,
    unresolvable,
    unschedulable,
)
from scheduler.plugins.node_affinity import RequiredNodeAffinity
from scheduler.plugins.taint_toleration import first_untolerated, tolerations_of
from scheduler.pods import is_terminating, labels_of, namespace_of

ERR_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_NODE_LABEL_NOT_MATCH = ERR_CONSTRAINTS_NOT_MATCH + " (missing required label)"


@dataclass
class Constraint:
    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int
    honor_affinity: bool
    honor_taints: bool


@dataclass
class _Counts:
    constraints: list[Constraint]
    counts: list[dict[str, int]] = field(default_factory=list)
    minimum: list[int] = field(default_factory=list)
    self_match: list[int] = field(default_factory=list)


def constraints_of(pod: Mapping[str, Any], action: str) -> list[Constraint]:
    """The pod's constraints with ``whenUnsatisfiable == action``."""
    out = []
    own = labels_of(pod)
    for c in (pod.get("spec") or {}).get("topologySpreadConstraints") or ():
        if (c.get("whenUnsatisfiable") or "DoNotSchedule") != action:
            continue
        sel = dict(c.get("labelSelector") or {})
        keys = c.get("matchLabelKeys") or []
        if keys:
            extra = {k: own[k] for k in keys if k in own}
            sel["matchLabels"] = {**(sel.get("matchLabels") or {}), **extra}
        out.append(
            Constraint(
                max_skew=int(c.get("maxSkew") or 1),
                topology_key=c.get("topologyKey") or "",
                selector=LabelSelector.from_dict(
                    sel if c.get("labelSelector") is not None or keys else None
                ),
                min_domains=int(c.get("minDomains") or 1),
                honor_affinity=(c.get("nodeAffinityPolicy") or "Honor") == "Honor",
                honor_taints=(c.get("nodeTaintsPolicy") or "Ignore") == "Honor",
            )
        )
    return out


def _eligible(
    pod: dict,
    node: NodeInfo,
    constraints: Sequence[Constraint],
    required: RequiredNodeAffinity,
) -> bool:
    labels = node.labels
    if any(c.topology_key not in labels for c in constraints):
        return False
    if any(c.honor_affinity for c in constraints) and not required.matches(labels, node.name):
        return False
    return not (
        any(c.honor_taints for c in constraints)
        and first_untolerated(node.taints, tolerations_of(pod)) is not None
    )


def count_matching(node: NodeInfo, namespace: str, selector: LabelSelector) -> int:
    return sum(
        1
        for p in node.iter_pods()
        if namespace_of(p) == namespace and not is_terminating(p) and selector.matches(labels_of(p))
    )


def _count(pod: dict, snapshot: Snapshot, constraints: list[Constraint]) -> _Counts:
    result = _Counts(constraints)
    ns = namespace_of(pod)
    result.counts = [{} for _ in constraints]
    required = RequiredNodeAffinity.of(pod)
    for node in snapshot.nodes:
        if not _eligible(pod, node, constraints, required):
            continue
        for i, c in enumerate(constraints):
            value = node.labels[c.topology_key]
            result.counts[i][value] = result.counts[i].get(value, 0) + count_matching(
                node, ns, c.selector
            )
    own = labels_of(pod)
    for i, c in enumerate(constraints):
        counts = result.counts[i]
        low = min(counts.values()) if counts else 0
        if len(counts) < c.min_domains:
            low = 0
        result.minimum.append(low)
        result.self_match.append(1 if c.selector.matches(own) else 0)
    return result


class PodTopologySpread(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin):
    name = "PodTopologySpread"
    events = (POD_ADD, POD_UPDATE, POD_DELETE, NODE_ADD, NODE_UPDATE)

    def pre_filter(self, state: CycleState, pod: dict, snapshot: Snapshot) -> Status:
        constraints = constraints_of(pod, "DoNotSchedule")
        if not constraints:
            return SKIP
        state[self.name] = _count(pod, snapshot, constraints)
        return OK

    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        counts: _Counts = state[self.name]
        for i, c in enumerate(counts.constraints):
            value = node.labels.get(c.topology_key)
            if value is None:
                return unresolvable(ERR_NODE_LABEL_NOT_MATCH)
            skew = counts.counts[i].get(value, 0) + counts.self_match[i] - counts.minimum[i]
            if skew > c.max_skew:
                return unschedulable(ERR_CONSTRAINTS_NOT_MATCH)
        return OK

    def pre_score(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status:
        constraints = constraints_of(pod, "ScheduleAnyway")
        if not constraints:
            return SKIP
        counts = _count(pod, snapshot, constraints)
        weights = [math.log(len(c) + 2) for c in counts.counts]
        state[self.name + "/score"] = (counts, weights)
        return OK

    def score(self, state: CycleState, pod: dict, node: NodeInfo) -> int:
        counts, weights = state[self.name + "/score"]
        total = 0.0
        for i, c in enumerate(counts.constraints):
            value = node.labels.get(c.topology_key)
            if value is None:
                return -1  # ignored: scores 0 after normalisation
            total += counts.counts[i].get(value, 0) * weights[i] + (c.max_skew - 1)
        return round(total)

    def normalize_score(self, state: CycleState, pod: dict, scores: dict[str, int]) -> None:
        valid = [s for s in scores.values() if s >= 0]
        if not valid:
            return
        low, high = min(valid), max(valid)
        for name, s in scores.items():
            if s < 0:
                scores[name] = 0
            elif high == 0:
                scores[name] = MAX_NODE_SCORE
            else:
                scores[name] = MAX_NODE_SCORE * (high + low - s) // high
