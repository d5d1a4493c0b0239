"""NodeUnschedulable: a cordoned node (``spec.unschedulable``) takes only pods that tolerate the
``node.kubernetes.io/unschedulable:NoSchedule`` taint."""

from __future__ import annotations

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
    Status,
)
from scheduler.plugins.taint_toleration import tolerates, tolerations_of

ERR_REASON = "node(s) were unschedulable"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def tolerates_cordon(pod: dict) -> bool:
    return any(tolerates(t, UNSCHEDULABLE_TAINT) for t in tolerations_of(pod))


class NodeUnschedulable(PreFilterPlugin, FilterPlugin):
    name = "NodeUnschedulable"
    events = (NODE_ADD, NODE_UPDATE)
    REJECT = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (ERR_REASON,), name)

    @staticmethod
    def fits(pod: dict, node: NodeInfo) -> bool:
        return not node.unschedulable or tolerates_cordon(pod)

    def pre_filter(self, state: CycleState, pod: dict, snapshot: Snapshot) -> Status:
        """Skip when no node is cordoned or the pod tolerates cordons anyway."""
        if not snapshot.any_unschedulable or tolerates_cordon(pod):
            return SKIP
        return OK

    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        return OK if self.fits(pod, node) else self.REJECT
