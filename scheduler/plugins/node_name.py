"""NodeName: a pod that names its node (``spec.nodeName`` set before scheduling) fits only there."""

from __future__ import annotations

from scheduler.cache import NodeInfo, Snapshot
from scheduler.framework import (
    NODE_ADD,
    OK,
    SKIP,
    Code,
    CycleState,
    FilterPlugin,
    PreFilterPlugin,
    Status,
)

ERR_REASON = "node(s) didn't match the requested node name"


class NodeName(PreFilterPlugin, FilterPlugin):
    name = "NodeName"
    events = (NODE_ADD,)
    REJECT = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (ERR_REASON,), name)

    @staticmethod
    def fits(pod: dict, node: NodeInfo) -> bool:
        wanted = (pod.get("spec") or {}).get("nodeName")
        return not wanted or wanted == node.name

    def pre_filter(self, state: CycleState, pod: dict, snapshot: Snapshot) -> Status:
        return OK if (pod.get("spec") or {}).get("nodeName") else SKIP

    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        return OK if self.fits(pod, node) else self.REJECT
