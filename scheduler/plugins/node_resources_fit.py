"""NodeResourcesFit: the pod's requests must fit in the node's allocatable minus what is placed
there (assumed pods included); scores with LeastAllocated (emptier nodes score higher)."""

from __future__ import annotations

from collections.abc import Mapping

from scheduler.cache import NodeInfo, Snapshot
from scheduler.framework import (
    MAX_NODE_SCORE,
    NODE_ADD,
    NODE_UPDATE,
    OK,
    POD_DELETE,
    CycleState,
    FilterPlugin,
    PreFilterPlugin,
    ScorePlugin,
    Status,
    unschedulable,
)
from scheduler.resources import CPU, MEMORY, PODS, Resources, pod_nonzero_requests, pod_requests

TOO_MANY_PODS = "Too many pods"
SCORED_RESOURCES: dict[str, int] = {CPU: 1, MEMORY: 1}


def insufficient(resource: str) -> str:
    """The rejection reason for one resource: ``"Insufficient cpu"``."""
    return f"Insufficient {resource}"


def fits(requests: Mapping[str, int], node: NodeInfo) -> list[str]:
    """Every reason ``requests`` do not fit on ``node`` (empty when they fit)."""
    reasons = []
    if len(node.pods) + 1 > node.allocatable.get(PODS, 0):
        reasons.append(TOO_MANY_PODS)
    for resource, amount in requests.items():
        if amount <= 0 or resource == PODS:
            continue
        free = node.allocatable.get(resource, 0) - node.requested.get(resource, 0)
        if amount > free:
            reasons.append(insufficient(resource))
    return reasons


def least_allocated(requested: Mapping[str, int], allocatable: Mapping[str, int]) -> int:
    """Weighted mean over SCORED_RESOURCES of the free share left after placing the pod."""
    total = weights = 0
    for resource, weight in SCORED_RESOURCES.items():
        alloc = allocatable.get(resource, 0)
        used = requested.get(resource, 0)
        score = 0 if alloc <= 0 or used > alloc else (alloc - used) * MAX_NODE_SCORE // alloc
        total += score * weight
        weights += weight
    return total // weights if weights else 0


def requested_with(node: NodeInfo, pod_nonzero: Resources) -> Resources:
    return {r: node.nonzero_requested.get(r, 0) + pod_nonzero.get(r, 0) for r in SCORED_RESOURCES}


class NodeResourcesFit(PreFilterPlugin, FilterPlugin, ScorePlugin):
    name = "NodeResourcesFit"
    events = (NODE_ADD, NODE_UPDATE, POD_DELETE)

    def pre_filter(self, state: CycleState, pod: dict, snapshot: Snapshot) -> Status:
        state[self.name] = pod_requests(pod)
        state[self.name + "/nonzero"] = pod_nonzero_requests(pod)
        return OK

    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        requests = state.get(self.name)
        if requests is None:
            requests = pod_requests(pod)
        reasons = fits(requests, node)
        return unschedulable(*reasons) if reasons else OK

    def score(self, state: CycleState, pod: dict, node: NodeInfo) -> int:
        nonzero = state.get(self.name + "/nonzero") or pod_nonzero_requests(pod)
        return least_allocated(requested_with(node, nonzero), node.allocatable)
