"""NodeUnschedulable: a cordoned node (``spec.unschedulable``) takes only pods that tolerate the
``node.kubernetes.io/unschedulable:NoSchedule`` taint."""

from __future__ import annotations

from scheduler.cache import NodeInfo
from scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    OK,
    CycleState,
    FilterPlugin,
    Status,
    unresolvable,
)
from scheduler.plugins.taint_toleration import tolerates, tolerations_of

ERR_REASON = "node(s) were unschedulable"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable(FilterPlugin):
    name = "NodeUnschedulable"
    events = (NODE_ADD, NODE_UPDATE)

    @staticmethod
    def fits(pod: dict, node: NodeInfo) -> bool:
        if not node.unschedulable:
            return True
        return any(tolerates(t, UNSCHEDULABLE_TAINT) for t in tolerations_of(pod))

    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        return OK if self.fits(pod, node) else unresolvable(ERR_REASON)
