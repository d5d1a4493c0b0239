"""NodeAffinity: ``spec.nodeSelector`` and required node affinity filter; preferred node affinity
terms add their weights to the score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from machinery.nodeselector import term_matches
from scheduler.cache import NodeInfo, Snapshot
from scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    OK,
    SKIP,
    Code,
    CycleState,
    FilterPlugin,
    PreFilterPlugin,
    PreScorePlugin,
    ScorePlugin,
    Status,
    default_normalize,
)

ERR_REASON = "node(s) didn't match Pod's node affinity/selector"


def required_node_terms(pod: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    node_aff = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    required = node_aff.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    return list(required.get("nodeSelectorTerms") or [])


@dataclass(frozen=True, slots=True)
class RequiredNodeAffinity:
    """A pod's nodeSelector and required node affinity terms, read once per cycle."""

    selector: tuple[tuple[str, str], ...]
    terms: tuple[dict[str, Any], ...] | None  # None: no required node affinity

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> RequiredNodeAffinity:
        selector = (pod.get("spec") or {}).get("nodeSelector") or {}
        terms = required_node_terms(pod)
        return cls(tuple(selector.items()), None if terms is None else tuple(terms))

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        """nodeSelector AND (any required term) — Kubernetes' RequiredNodeAffinity.Match."""
        for k, v in self.selector:
            if labels.get(k) != v:
                return False
        if self.terms is None:
            return True
        return any(term_matches(t, labels, node_name) for t in self.terms)


def pod_matches_node(pod: Mapping[str, Any], labels: Mapping[str, str], node_name: str) -> bool:
    """nodeSelector AND (any required term) — Kubernetes' RequiredNodeAffinity.Match."""
    return RequiredNodeAffinity.of(pod).matches(labels, node_name)


class NodeAffinity(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin):
    name = "NodeAffinity"
    events = (NODE_ADD, NODE_UPDATE)
    REJECT = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (ERR_REASON,), name)

    @staticmethod
    def fits(pod: dict, node: NodeInfo) -> bool:
        return pod_matches_node(pod, node.labels, node.name)

    def pre_filter(self, state: CycleState, pod: dict, snapshot: Snapshot) -> Status:
        required = RequiredNodeAffinity.of(pod)
        if not required.selector and required.terms is None:
            return SKIP
        state[self.name] = required
        return OK

    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        required = state.get(self.name) or RequiredNodeAffinity.of(pod)
        return OK if required.matches(node.labels, node.name) else self.REJECT

    def filter_nodes(self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo]) -> list[Status]:
        required = state.get(self.name) or RequiredNodeAffinity.of(pod)
        reject = self.REJECT
        if required.terms is None and len(required.selector) == 1:
            ((key, value),) = required.selector
            return [OK if n.labels.get(key) == value else reject for n in nodes]
        matches = required.matches
        return [OK if matches(n.labels, n.name) else reject for n in nodes]

    def pre_score(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status:
        node_aff = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
        preferred = node_aff.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        if not preferred:
            return SKIP
        state[self.name] = preferred
        return OK

    def score(self, state: CycleState, pod: dict, node: NodeInfo) -> int:
        return sum(
            int(p.get("weight") or 0)
            for p in state[self.name]
            if term_matches(p.get("preference") or {}, node.labels, node.name)
        )

    def normalize_score(self, state: CycleState, pod: dict, scores: dict[str, int]) -> None:
        default_normalize(scores)
