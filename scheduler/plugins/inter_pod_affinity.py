"""InterPodAffinity: required pod affinity / anti-affinity filter (the pod's own terms and the
anti-affinity of pods already placed), preferred terms score.

Topology: a term is satisfied "in" the domain ``(topologyKey, node label value)``; a node
without the key is in no domain. A term selects pods in the namespaces it lists, or, when it
lists none, in its owner's namespace (``namespaceSelector: {}`` means every namespace; other
namespace selectors are not evaluated and select nothing). Like Kubernetes, the first pod of a
group whose required affinity matches only itself may go anywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from scheduler.pods import labels_of, namespace_of, preferred_terms, required_terms

ERR_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
ERR_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1

Domain = tuple[str, str]


@dataclass(frozen=True)
class Term:
    """A compiled ``PodAffinityTerm`` owned by a pod in ``owner_namespace``."""

    topology_key: str
    selector: LabelSelector
    namespaces: frozenset[str] | None  # None: every namespace

    @classmethod
    def compile(cls, term: Mapping[str, Any], owner: Mapping[str, Any]) -> Term:
        namespaces: frozenset[str] | None = frozenset(term.get("namespaces") or ())
        ns_selector = term.get("namespaceSelector")
        if (
            ns_selector is not None
            and not ns_selector.get("matchLabels")
            and not ns_selector.get("matchExpressions")
        ):
            namespaces = None
        elif not namespaces and ns_selector is None:
            namespaces = frozenset((namespace_of(owner),))
        sel = (
            dict(term.get("labelSelector") or {}) if term.get("labelSelector") is not None else None
        )
        own = labels_of(owner)
        keys = [k for k in term.get("matchLabelKeys") or () if k in own]
        if keys and sel is not None:
            sel["matchLabels"] = {**(sel.get("matchLabels") or {}), **{k: own[k] for k in keys}}
        return cls(term.get("topologyKey") or "", LabelSelector.from_dict(sel), namespaces)

    def matches(self, pod: Mapping[str, Any]) -> bool:
        if self.namespaces is not None and namespace_of(pod) not in self.namespaces:
            return False
        return self.selector.matches(labels_of(pod))

    def domain(self, node: NodeInfo) -> Domain | None:
        value = node.labels.get(self.topology_key)
        return None if value is None else (self.topology_key, value)


def compile_terms(pod: Mapping[str, Any], kind: str) -> list[Term]:
    return [Term.compile(t, pod) for t in required_terms(pod, kind)]


def compile_weighted(pod: Mapping[str, Any], kind: str) -> list[tuple[int, Term]]:
    return [
        (int(w.get("weight") or 0), Term.compile(w.get("podAffinityTerm") or {}, pod))
        for w in preferred_terms(pod, kind)
    ]


@dataclass
class _FilterState:
    affinity: list[Term]
    anti_affinity: list[Term]
    affinity_counts: Counter[Domain]
    anti_affinity_counts: Counter[Domain]
    existing_anti_counts: Counter[Domain]
    matches_own_affinity: bool


def _all_pods(snapshot: Snapshot):
    for node in snapshot.nodes:
        for pod in node.iter_pods():
            yield node, pod


class InterPodAffinity(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin):
    name = "InterPodAffinity"
    events = (POD_ADD, POD_UPDATE, POD_DELETE, NODE_ADD, NODE_UPDATE)

    def pre_filter(self, state: CycleState, pod: dict, snapshot: Snapshot) -> Status:
        affinity = compile_terms(pod, "podAffinity")
        anti = compile_terms(pod, "podAntiAffinity")
        existing_anti: Counter[Domain] = Counter()
        for node, other in snapshot.pods_with_required_anti_affinity():
            for term in compile_terms(other, "podAntiAffinity"):
                domain = term.domain(node)
                if domain is not None and term.matches(pod):
                    existing_anti[domain] += 1
        if not affinity and not anti and not existing_anti:
            return SKIP
        aff_counts: Counter[Domain] = Counter()
        anti_counts: Counter[Domain] = Counter()
        if affinity or anti:
            for node, other in _all_pods(snapshot):
                if affinity and all(t.matches(other) for t in affinity):
                    for t in affinity:
                        domain = t.domain(node)
                        if domain is not None:
                            aff_counts[domain] += 1
                for t in anti:
                    domain = t.domain(node)
                    if domain is not None and t.matches(other):
                        anti_counts[domain] += 1
        state[self.name] = _FilterState(
            affinity,
            anti,
            aff_counts,
            anti_counts,
            existing_anti,
            matches_own_affinity=all(t.matches(pod) for t in affinity),
        )
        return OK

    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        s: _FilterState = state[self.name]
        if s.affinity and not self._satisfies_affinity(s, node):
            return unresolvable(ERR_AFFINITY)
        for t in s.anti_affinity:
            domain = t.domain(node)
            if domain is not None and s.anti_affinity_counts[domain] > 0:
                return unschedulable(ERR_ANTI_AFFINITY)
        if s.existing_anti_counts:
            for key, value in node.labels.items():
                if s.existing_anti_counts.get((key, value), 0) > 0:
                    return unschedulable(ERR_EXISTING_ANTI_AFFINITY)
        return OK

    @staticmethod
    def _satisfies_affinity(s: _FilterState, node: NodeInfo) -> bool:
        domains = [t.domain(node) for t in s.affinity]
        if all(d is not None and s.affinity_counts[d] > 0 for d in domains):
            return True
        # No pod matches the terms anywhere yet: the group's first pod may go anywhere
        # that has the topology labels, as long as it matches its own terms.
        return not s.affinity_counts and s.matches_own_affinity and None not in domains

    def pre_score(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status:
        pref_aff = compile_weighted(pod, "podAffinity")
        pref_anti = compile_weighted(pod, "podAntiAffinity")
        scores: Counter[Domain] = Counter()
        pairs = _all_pods(snapshot) if pref_aff or pref_anti else snapshot.pods_with_affinity()
        any_pair = False
        for node, other in pairs:
            any_pair = True
            for weight, t in pref_aff:
                self._add(scores, t, node, other, weight)
            for weight, t in pref_anti:
                self._add(scores, t, node, other, -weight)
            for t in compile_terms(other, "podAffinity"):
                self._add(scores, t, node, pod, HARD_POD_AFFINITY_WEIGHT)
            for weight, t in compile_weighted(other, "podAffinity"):
                self._add(scores, t, node, pod, weight)
            for weight, t in compile_weighted(other, "podAntiAffinity"):
                self._add(scores, t, node, pod, -weight)
        if not any_pair or not scores:
            return SKIP
        state[self.name + "/score"] = scores
        return OK

    @staticmethod
    def _add(scores: Counter[Domain], term: Term, node: NodeInfo, target: dict, w: int) -> None:
        """Add ``w`` to the domain of ``node`` when ``term`` selects ``target``."""
        if w and term.matches(target):
            domain = term.domain(node)
            if domain is not None:
                scores[domain] += w

    def score(self, state: CycleState, pod: dict, node: NodeInfo) -> int:
        scores: Counter[Domain] = state[self.name + "/score"]
        return sum(scores.get((k, v), 0) for k, v in node.labels.items())

    def normalize_score(self, state: CycleState, pod: dict, scores: dict[str, int]) -> None:
        if not scores:
            return
        low, high = min(scores.values()), max(scores.values())
        for name, s in scores.items():
            scores[name] = MAX_NODE_SCORE * (s - low) // (high - low) if high > low else 0
