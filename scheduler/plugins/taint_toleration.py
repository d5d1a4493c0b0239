"""TaintToleration: NoSchedule / NoExecute taints must be tolerated; PreferNoSchedule ones lower
the score (fewer untolerated PreferNoSchedule taints is better)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from scheduler.cache import NodeInfo, Snapshot
from scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    OK,
    SKIP,
    CycleState,
    FilterPlugin,
    PreFilterPlugin,
    PreScorePlugin,
    ScorePlugin,
    Status,
    default_normalize,
    unresolvable,
)

HARD_EFFECTS = ("NoSchedule", "NoExecute")


def untolerated_reason(taint: Mapping[str, Any]) -> str:
    """The rejection reason naming the first untolerated taint, as kube-scheduler words it."""
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Kubernetes ``Toleration.ToleratesTaint``: effect (empty = all), key (empty + Exists =
    all keys), operator Equal (default) compares values, Exists ignores them."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return bool(key) and (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def first_untolerated(
    taints: Iterable[Mapping[str, Any]],
    tolerations: Sequence[Mapping[str, Any]],
    effects: tuple[str, ...] = HARD_EFFECTS,
) -> Mapping[str, Any] | None:
    for taint in taints:
        if taint.get("effect") not in effects:
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def tolerations_of(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((pod.get("spec") or {}).get("tolerations") or ())


class TaintToleration(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin):
    name = "TaintToleration"
    events = (NODE_ADD, NODE_UPDATE)

    def pre_filter(self, state: CycleState, pod: dict, snapshot: Snapshot) -> Status:
        """Skip when no node has a NoSchedule / NoExecute taint."""
        return OK if snapshot.any_hard_taints else SKIP

    @staticmethod
    def fits(pod: dict, node: NodeInfo) -> Mapping[str, Any] | None:
        """The first taint the pod does not tolerate, or None when it fits."""
        return first_untolerated(node.taints, tolerations_of(pod))

    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        if not node.taints:
            return OK
        taint = self.fits(pod, node)
        return OK if taint is None else unresolvable(untolerated_reason(taint))

    def pre_score(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status:
        if not snapshot.any_prefer_taints or not any(n.has_prefer_taints for n in nodes):
            return SKIP
        state[self.name] = [
            t
            for t in tolerations_of(pod)
            if (t.get("effect") or "PreferNoSchedule") == "PreferNoSchedule"
        ]
        return OK

    def score(self, state: CycleState, pod: dict, node: NodeInfo) -> int:
        tolerations = state[self.name]
        return sum(
            1
            for taint in node.taints
            if taint.get("effect") == "PreferNoSchedule"
            and not any(tolerates(t, taint) for t in tolerations)
        )

    def normalize_score(self, state: CycleState, pod: dict, scores: dict[str, int]) -> None:
        default_normalize(scores, reverse=True)
