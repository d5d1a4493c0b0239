"""Per-node results remembered across cycles, valid while the node is unchanged.

A result that depends only on one node's content and on a few numbers of the pod (its *shape*,
e.g. its non-zero cpu and memory requests) is the same for the next pod of the same shape on
every node that did not change in between: with one pod placed per cycle, that is all nodes
but one. :class:`NodeMemo` keeps such results in each node's
:attr:`~scheduler.cache.NodeInfo.memo`, which the node empties on every change, so a
remembered result is never stale. A memo knows at most ``max_shapes`` shapes (the least
recently used is forgotten) and a node holds at most :data:`MAX_ENTRIES` results (then starts
afresh), so many shapes cannot make either grow without bound.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from scheduler.cache import NodeInfo

MAX_SHAPES = 16
MAX_ENTRIES = 64

# Memo keys are small ints, unique in the process: cheap to hash, and two NodeMemos (or a
# shape forgotten and seen again) never read each other's entries.
_keys = itertools.count()


class NodeMemo:
    """Results of ``compute(nodes) -> list`` per (pod shape, node); results are never None."""

    def __init__(self, max_shapes: int = MAX_SHAPES) -> None:
        self.max_shapes = max_shapes
        self._keys: OrderedDict[Hashable, int] = OrderedDict()

    def results(
        self,
        shape: Hashable,
        nodes: Sequence[NodeInfo],
        compute: Callable[[Sequence[NodeInfo]], list[Any]],
    ) -> list[Any]:
        """``compute(nodes)``, calling it only for the nodes not remembered for ``shape``."""
        key = self._key(shape)
        out = [n.memo.get(key) for n in nodes]
        missing = [i for i, value in enumerate(out) if value is None]
        if missing:
            stale = [nodes[i] for i in missing]
            for i, node, value in zip(missing, stale, compute(stale), strict=True):
                out[i] = value
                memo = node.memo
                if len(memo) >= MAX_ENTRIES:
                    memo.clear()
                memo[key] = value
        return out

    def _key(self, shape: Hashable) -> int:
        key = self._keys.get(shape)
        if key is not None:
            self._keys.move_to_end(shape)
            return key
        if len(self._keys) >= self.max_shapes:
            self._keys.popitem(last=False)  # its entries on nodes are never read again
        key = self._keys[shape] = next(_keys)
        return key
