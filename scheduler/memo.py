"""Per-node results remembered across cycles, valid while the node's generation is unchanged.

A score that depends only on one node's content and on a few numbers of the pod (its *shape*,
e.g. its non-zero cpu and memory requests) is the same for the next pod of the same shape on
every node that did not change in between: with one pod placed per cycle, that is all nodes
but one. :class:`NodeMemo` keeps such results for a bounded number of shapes; an entry counts
only when the node's :attr:`~scheduler.cache.NodeInfo.generation` still matches (generations
are unique per process, so a replaced or re-added node never matches an old entry).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

from scheduler.cache import NodeInfo

MAX_SHAPES = 16


class NodeMemo:
    """Results of ``compute(nodes) -> list[int]`` per (pod shape, node, node generation)."""

    def __init__(self, max_shapes: int = MAX_SHAPES) -> None:
        self.max_shapes = max_shapes
        self._shapes: OrderedDict[Hashable, dict[str, tuple[int, int]]] = OrderedDict()

    def results(
        self,
        shape: Hashable,
        nodes: Sequence[NodeInfo],
        compute: Callable[[Sequence[NodeInfo]], list[int]],
    ) -> list[int]:
        """``compute(nodes)``, calling it only for the nodes not remembered for ``shape``."""
        memo = self._shapes.get(shape)
        if memo is None:
            memo = self._shapes[shape] = {}
            if len(self._shapes) > self.max_shapes:
                self._shapes.popitem(last=False)
        else:
            self._shapes.move_to_end(shape)
        out: list[int] = []
        missing: list[int] = []  # positions in ``out`` still to compute
        get = memo.get
        for i, node in enumerate(nodes):
            hit = get(node.name)
            if hit is not None and hit[0] == node.generation:
                out.append(hit[1])
            else:
                out.append(0)
                missing.append(i)
        if missing:
            stale = [nodes[i] for i in missing]
            for i, node, value in zip(missing, stale, compute(stale), strict=True):
                out[i] = value
                memo[node.name] = (node.generation, value)
        return out

    def clear(self) -> None:
        self._shapes.clear()
