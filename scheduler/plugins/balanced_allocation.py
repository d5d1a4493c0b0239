"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be used in similar
proportions after placing the pod (score = (1 - standard deviation of the shares) × 100)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from scheduler.cache import NodeInfo, Snapshot
from scheduler.framework import (
    MAX_NODE_SCORE,
    OK,
    CycleState,
    PreScorePlugin,
    ScorePlugin,
    Status,
)
from scheduler.plugins.node_resources_fit import SCORED_RESOURCES, requests_of


def balanced_score(requested: dict[str, int], allocatable: dict[str, int]) -> int:
    shares = []
    for resource in SCORED_RESOURCES:
        alloc = allocatable.get(resource, 0)
        if alloc > 0:
            shares.append(min(requested.get(resource, 0) / alloc, 1.0))
    if len(shares) < 2:
        return MAX_NODE_SCORE
    mean = sum(shares) / len(shares)
    std = (sum((s - mean) ** 2 for s in shares) / len(shares)) ** 0.5
    return int((1 - std) * MAX_NODE_SCORE)


class BalancedAllocation(PreScorePlugin, ScorePlugin):
    name = "NodeResourcesBalancedAllocation"

    def pre_score(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status:
        requests_of(state, pod)
        return OK

    def score(self, state: CycleState, pod: dict, node: NodeInfo) -> int:
        return self.score_nodes(state, pod, (node,))[0]

    def score_nodes(self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo]) -> list[int]:
        """:func:`balanced_score` of each node with the pod's non-zero requests added."""
        scored = tuple((r, amount) for r, _, amount in requests_of(state, pod).scored)
        return _balanced(scored, nodes)

    def score_shape(self, state: CycleState, pod: dict) -> Hashable:
        return requests_of(state, pod).scored


def _balanced(scored: tuple[tuple[str, int], ...], nodes: Sequence[NodeInfo]) -> list[int]:
    if len(scored) != 2:
        return [
            balanced_score(
                {r: n.nonzero_requested.get(r, 0) + amount for r, amount in scored},
                n.allocatable,
            )
            for n in nodes
        ]
    # The same arithmetic as balanced_score, unrolled for two resources.
    (r1, a1), (r2, a2) = scored
    out = []
    for node in nodes:
        alloc, used = node.allocatable, node.nonzero_requested
        c1, c2 = alloc.get(r1, 0), alloc.get(r2, 0)
        if c1 <= 0 or c2 <= 0:
            out.append(balanced_score({r1: used.get(r1, 0) + a1, r2: used.get(r2, 0) + a2}, alloc))
            continue
        s1 = min((used.get(r1, 0) + a1) / c1, 1.0)
        s2 = min((used.get(r2, 0) + a2) / c2, 1.0)
        mean = (s1 + s2) / 2
        std = (((s1 - mean) ** 2 + (s2 - mean) ** 2) / 2) ** 0.5
        out.append(int((1 - std) * MAX_NODE_SCORE))
    return out
