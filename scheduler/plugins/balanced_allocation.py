"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be used in similar
proportions after placing the pod (score = (1 - standard deviation of the shares) × 100)."""

from __future__ import annotations

from scheduler.cache import NodeInfo
from scheduler.framework import MAX_NODE_SCORE, CycleState, ScorePlugin
from scheduler.plugins.node_resources_fit import SCORED_RESOURCES, requested_with
from scheduler.resources import pod_nonzero_requests


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


class BalancedAllocation(ScorePlugin):
    name = "NodeResourcesBalancedAllocation"

    def score(self, state: CycleState, pod: dict, node: NodeInfo) -> int:
        nonzero = state.get("NodeResourcesFit/nonzero") or pod_nonzero_requests(pod)
        return balanced_score(requested_with(node, nonzero), node.allocatable)
