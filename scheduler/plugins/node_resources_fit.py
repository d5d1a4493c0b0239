"""NodeResourcesFit: the pod's requests must fit in the node's allocatable minus what is placed
there (assumed pods included); scores with LeastAllocated (emptier nodes score higher).

The pod's requests are parsed once per cycle (:class:`PodRequests`, kept in the CycleState);
the per-node checks are integer comparisons against the node's running totals."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from scheduler.cache import NodeInfo, Snapshot
from scheduler.framework import (
    MAX_NODE_SCORE,
    NODE_ADD,
    NODE_UPDATE,
    OK,
    POD_DELETE,
    Code,
    CycleState,
    FilterPlugin,
    PreFilterPlugin,
    PreScorePlugin,
    ScorePlugin,
    Status,
)
from scheduler.memo import NodeMemo
from scheduler.resources import CPU, MEMORY, PODS, Resources, pod_nonzero_requests, pod_requests

TOO_MANY_PODS = "Too many pods"
SCORED_RESOURCES: dict[str, int] = {CPU: 1, MEMORY: 1}
STATE_KEY = "NodeResourcesFit"


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


@dataclass(frozen=True, slots=True)
class PodRequests:
    """One pod's requests in integers, computed once per cycle."""

    requests: Resources
    #: (resource, amount) pairs a node must have free: amount > 0, the pod count excluded
    checked: tuple[tuple[str, int], ...]
    #: (resource, weight, non-zero request) for each of SCORED_RESOURCES
    scored: tuple[tuple[str, int, int], ...]

    @classmethod
    def of(cls, pod: dict) -> PodRequests:
        requests = pod_requests(pod)
        nonzero = pod_nonzero_requests(pod)
        return cls(
            requests,
            tuple((r, a) for r, a in requests.items() if a > 0 and r != PODS),
            tuple((r, w, nonzero.get(r, 0)) for r, w in SCORED_RESOURCES.items()),
        )


def requests_of(state: CycleState, pod: dict) -> PodRequests:
    """The pod's :class:`PodRequests` from the cycle state (computed and kept on first use)."""
    found = state.get(STATE_KEY)
    if found is None:
        found = state[STATE_KEY] = PodRequests.of(pod)
    return found


class NodeResourcesFit(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin):
    name = "NodeResourcesFit"
    events = (NODE_ADD, NODE_UPDATE, POD_DELETE)

    def __init__(self) -> None:
        self._rejections: dict[tuple[str, ...], Status] = {}
        self._fit_memo = NodeMemo()

    def pre_filter(self, state: CycleState, pod: dict, snapshot: Snapshot) -> Status:
        state[STATE_KEY] = PodRequests.of(pod)
        return OK

    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        req = state.get(STATE_KEY) or requests_of(state, pod)
        alloc = node.allocatable
        if len(node.pods) < alloc.get(PODS, 0):
            used = node.requested
            for resource, amount in req.checked:
                if amount > alloc.get(resource, 0) - used.get(resource, 0):
                    break
            else:
                return OK
        return self._rejection(tuple(fits(req.requests, node)))

    def filter_nodes(self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo]) -> list[Status]:
        """:meth:`filter` of each node (remembered per node and the pod's checked requests:
        see :mod:`scheduler.memo`)."""
        req = requests_of(state, pod)
        return self._fit_memo.results(req.checked, nodes, lambda some: self._filter_all(req, some))

    def _filter_all(self, req: PodRequests, nodes: Sequence[NodeInfo]) -> list[Status]:
        checked = req.checked
        out: list[Status] = []
        append = out.append
        for node in nodes:
            alloc = node.allocatable
            if len(node.pods) < alloc.get(PODS, 0):
                used = node.requested
                for resource, amount in checked:
                    if amount > alloc.get(resource, 0) - used.get(resource, 0):
                        break
                else:
                    append(OK)
                    continue
            append(self._rejection(tuple(fits(req.requests, node))))
        return out

    def _rejection(self, reasons: tuple[str, ...]) -> Status:
        status = self._rejections.get(reasons)
        if status is None:
            status = self._rejections[reasons] = Status(Code.UNSCHEDULABLE, reasons, self.name)
        return status

    def pre_score(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status:
        requests_of(state, pod)
        return OK

    def score(self, state: CycleState, pod: dict, node: NodeInfo) -> int:
        return self.score_nodes(state, pod, (node,))[0]

    def score_nodes(self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo]) -> list[int]:
        """:func:`least_allocated` of each node with the pod's non-zero requests added."""
        return self._least_allocated(requests_of(state, pod).scored, nodes)

    def score_shape(self, state: CycleState, pod: dict) -> Hashable:
        return requests_of(state, pod).scored

    @staticmethod
    def _least_allocated(
        scored: tuple[tuple[str, int, int], ...], nodes: Sequence[NodeInfo]
    ) -> list[int]:
        weights = sum(w for _, w, _ in scored)
        if not weights:
            return [0] * len(nodes)
        if len(scored) == 2 and scored[0][1] == scored[1][1] == 1:
            return _least_allocated_2(scored, nodes)
        out = []
        for node in nodes:
            alloc, used = node.allocatable, node.nonzero_requested
            total = 0
            for resource, weight, amount in scored:
                a = alloc.get(resource, 0)
                u = used.get(resource, 0) + amount
                if a > 0 and u <= a:
                    total += (a - u) * MAX_NODE_SCORE // a * weight
            out.append(total // weights)
        return out


def _least_allocated_2(
    scored: tuple[tuple[str, int, int], ...], nodes: Sequence[NodeInfo]
) -> list[int]:
    """:func:`least_allocated` unrolled for two resources of weight 1 (the default)."""
    (r1, _, a1), (r2, _, a2) = scored
    out = []
    for node in nodes:
        alloc, used = node.allocatable, node.nonzero_requested
        c1, u1 = alloc.get(r1, 0), used.get(r1, 0) + a1
        c2, u2 = alloc.get(r2, 0), used.get(r2, 0) + a2
        s1 = (c1 - u1) * MAX_NODE_SCORE // c1 if 0 < c1 >= u1 else 0
        s2 = (c2 - u2) * MAX_NODE_SCORE // c2 if 0 < c2 >= u2 else 0
        out.append((s1 + s2) // 2)
    return out
