"""NodeName: a pod that names its node (``spec.nodeName`` set before scheduling) fits only there."""

from __future__ import annotations

from scheduler.cache import NodeInfo
from scheduler.framework import NODE_ADD, OK, CycleState, FilterPlugin, Status, unresolvable

ERR_REASON = "node(s) didn't match the requested node name"


class NodeName(FilterPlugin):
    name = "NodeName"
    events = (NODE_ADD,)

    @staticmethod
    def fits(pod: dict, node: NodeInfo) -> bool:
        wanted = (pod.get("spec") or {}).get("nodeName")
        return not wanted or wanted == node.name

    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        return OK if self.fits(pod, node) else unresolvable(ERR_REASON)
