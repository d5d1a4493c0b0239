"""The scheduler's view of the cluster: nodes and the pods placed on them, assumed ones included.

Contract:

* Every pod with a ``spec.nodeName`` that the informer delivered is counted on its node, and so
  is every pod the scheduler *assumed* there (decided, binding in flight). The next pod is
  therefore placed against the post-decision state, without waiting for the bind round trip.
* :meth:`Cache.assume_pod` → :meth:`Cache.finish_binding` → the informer's add/update confirms
  the assumption (it becomes an ordinary pod). :meth:`Cache.forget_pod` undoes an assumption
  whose bind failed. An informer event for an assumed pod always wins over the assumption.
* A pod may arrive before its node: it is kept on a placeholder :class:`NodeInfo` that does not
  appear in snapshots until the Node itself is added.
* :meth:`Cache.snapshot` is a *view*, not a copy: it stays valid while the caller does not
  yield to the event loop. The scheduler runs a whole scheduling cycle without awaiting, which
  is what makes this safe and cheap; code that mutates (preemption dry runs) uses
  :meth:`NodeInfo.clone`. The view is kept, not rebuilt per cycle: only adding or removing a
  Node makes the next :meth:`Cache.snapshot` build a new node list (like kube-scheduler's
  incremental snapshot); pod and node changes reach it through the shared :class:`NodeInfo`
  objects, each of which empties its ``memo`` on every change.
* The snapshot's cluster-wide facts (which nodes carry taints, are cordoned, hold images or
  host pods with pod affinity) are kept current incrementally too, so a plugin can tell in
  O(1) that a pod needs none of its work (kube-scheduler's PreFilter/PreScore ``Skip``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from scheduler.pods import (
    has_pod_affinity,
    is_finished,
    name_of,
    node_name_of,
    pod_key,
    required_terms,
)
from scheduler.resources import (
    PODS,
    Resources,
    add_into,
    node_allocatable,
    pod_nonzero_requests,
    pod_requests,
)

HARD_TAINT_EFFECTS = ("NoSchedule", "NoExecute")
PREFER_NO_SCHEDULE = "PreferNoSchedule"


@dataclass(slots=True)
class PodEntry:
    """A pod placed on a node, with its requests computed once."""

    pod: dict[str, Any]
    requests: Resources
    nonzero: Resources


class NodeInfo:
    """One node and what is placed on it. Read-only to plugins; use :meth:`clone` to change."""

    __slots__ = (
        "_node",
        "affinity_pods",
        "allocatable",
        "images",
        "labels",
        "memo",
        "name",
        "nonzero_requested",
        "pods",
        "requested",
        "taints",
        "unschedulable",
    )

    def __init__(self, node: dict[str, Any] | None = None, name: str = "") -> None:
        self.name = name_of(node) if node else name
        self.pods: dict[str, PodEntry] = {}
        #: The subset of ``pods`` with pod (anti-)affinity (InterPodAffinity reads only these).
        self.affinity_pods: dict[str, dict[str, Any]] = {}
        self.requested: Resources = {}
        self.nonzero_requested: Resources = {}
        self._node: dict[str, Any] | None = None
        self.allocatable: Resources = {PODS: 0}
        self.images: dict[str, int] = {}
        self.labels: dict[str, str] = {}
        self.taints: list[dict[str, Any]] = []
        self.unschedulable = False
        #: Results derived from this node's content, kept by plugins across cycles (see
        #: :mod:`scheduler.memo`); emptied on every change to the node object or its pods.
        self.memo: dict[int, Any] = {}
        if node is not None:
            self.set_node(node)

    @property
    def node(self) -> dict[str, Any]:
        return self._node or {"metadata": {"name": self.name}}

    @property
    def has_node(self) -> bool:
        return self._node is not None

    def set_node(self, node: dict[str, Any]) -> None:
        self._node = node
        spec = node.get("spec") or {}
        self.labels = (node.get("metadata") or {}).get("labels") or {}
        self.taints = spec.get("taints") or []
        self.unschedulable = bool(spec.get("unschedulable"))
        self.allocatable = node_allocatable(node)
        images: dict[str, int] = {}
        for image in (node.get("status") or {}).get("images") or ():
            for n in image.get("names") or ():
                images[n] = int(image.get("sizeBytes") or 0)
        self.images = images
        self.memo = {}

    def clear_node(self) -> None:
        self._node = None
        self.memo = {}

    @property
    def has_hard_taints(self) -> bool:
        """Any NoSchedule / NoExecute taint (what TaintToleration's filter checks)."""
        return any(t.get("effect") in HARD_TAINT_EFFECTS for t in self.taints)

    @property
    def has_prefer_taints(self) -> bool:
        return any(t.get("effect") == PREFER_NO_SCHEDULE for t in self.taints)

    def add_pod(self, pod: dict[str, Any]) -> None:
        """Count ``pod`` here (replacing an entry with the same key)."""
        key = pod_key(pod)
        self.remove_pod(key)
        entry = PodEntry(pod, pod_requests(pod), pod_nonzero_requests(pod))
        self.pods[key] = entry
        if has_pod_affinity(pod):
            self.affinity_pods[key] = pod
        add_into(self.requested, entry.requests)
        add_into(self.nonzero_requested, entry.nonzero)
        self.memo = {}

    def replace_pod(self, pod: dict[str, Any]) -> None:
        """Swap in a newer object for a pod already counted here whose requests and affinity
        are unchanged (the informer confirming an assumed pod); cheaper than remove + add."""
        key = pod_key(pod)
        entry = self.pods.get(key)
        if entry is None or _requests_spec(entry.pod) != _requests_spec(pod):
            self.add_pod(pod)
            return
        if has_pod_affinity(pod) != (key in self.affinity_pods):
            self.add_pod(pod)
            return
        entry.pod = pod
        if key in self.affinity_pods:
            self.affinity_pods[key] = pod
        self.memo = {}

    def remove_pod(self, key: str) -> bool:
        entry = self.pods.pop(key, None)
        if entry is None:
            return False
        self.affinity_pods.pop(key, None)
        add_into(self.requested, entry.requests, -1)
        add_into(self.nonzero_requested, entry.nonzero, -1)
        self.memo = {}
        return True

    def iter_pods(self) -> Iterator[dict[str, Any]]:
        for entry in self.pods.values():
            yield entry.pod

    def clone(self) -> NodeInfo:
        """An independent copy (pods are shared, read-only dicts)."""
        other = NodeInfo.__new__(NodeInfo)
        other.name = self.name
        other._node = self._node
        other.labels = self.labels
        other.taints = self.taints
        other.unschedulable = self.unschedulable
        other.allocatable = self.allocatable
        other.images = self.images
        other.pods = dict(self.pods)
        other.affinity_pods = dict(self.affinity_pods)
        other.requested = dict(self.requested)
        other.nonzero_requested = dict(self.nonzero_requested)
        other.memo = {}
        return other

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self.pods)})"


class ClusterIndex:
    """Cluster-wide facts over a set of listed nodes, for O(1) "does any node ..." questions.

    The Cache updates its index on every node and pod change; a standalone :class:`Snapshot`
    builds one from its nodes."""

    __slots__ = ("affinity", "cordoned", "hard_tainted", "image_nodes", "soft_tainted")

    def __init__(self, nodes: Iterable[NodeInfo] = ()) -> None:
        self.hard_tainted: set[str] = set()
        self.soft_tainted: set[str] = set()
        self.cordoned: set[str] = set()
        #: image name → how many nodes hold it
        self.image_nodes: Counter[str] = Counter()
        #: nodes hosting at least one pod with pod (anti-)affinity
        self.affinity: dict[str, NodeInfo] = {}
        for info in nodes:
            self.add_node(info)

    def add_node(self, info: NodeInfo) -> None:
        name = info.name
        if info.has_hard_taints:
            self.hard_tainted.add(name)
        if info.has_prefer_taints:
            self.soft_tainted.add(name)
        if info.unschedulable:
            self.cordoned.add(name)
        self.image_nodes.update(info.images.keys())
        self.note_pods(info)

    def remove_node(self, info: NodeInfo) -> None:
        name = info.name
        self.hard_tainted.discard(name)
        self.soft_tainted.discard(name)
        self.cordoned.discard(name)
        self.image_nodes.subtract(info.images.keys())
        self.image_nodes += Counter()  # drop names no node holds any more
        self.affinity.pop(name, None)

    def note_pods(self, info: NodeInfo) -> None:
        """Re-read whether ``info`` hosts pods with affinity."""
        if info.affinity_pods:
            self.affinity[info.name] = info
        else:
            self.affinity.pop(info.name, None)

    def copy(self) -> ClusterIndex:
        other = ClusterIndex()
        other.hard_tainted = set(self.hard_tainted)
        other.soft_tainted = set(self.soft_tainted)
        other.cordoned = set(self.cordoned)
        other.image_nodes = Counter(self.image_nodes)
        other.affinity = dict(self.affinity)
        return other


class Snapshot:
    """The nodes a scheduling cycle sees, in a stable order, plus the cluster-wide facts
    plugins use to skip work (:class:`ClusterIndex`)."""

    def __init__(self, node_infos: list[NodeInfo], index: ClusterIndex | None = None) -> None:
        self.nodes = node_infos
        self._by_name = {ni.name: ni for ni in node_infos}
        self.index = index if index is not None else ClusterIndex(node_infos)

    def get(self, name: str) -> NodeInfo | None:
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self.nodes)

    def with_node(self, replacement: NodeInfo) -> Snapshot:
        """The same snapshot with one node replaced (for preemption dry runs)."""
        old = self._by_name.get(replacement.name)
        nodes = list(self.nodes)
        index = self.index.copy()
        if old is not None:
            nodes[nodes.index(old)] = replacement
            index.remove_node(old)
        index.add_node(replacement)
        return Snapshot(nodes, index)

    # -- cluster-wide facts (O(1)) --------------------------------------------------------
    @property
    def any_hard_taints(self) -> bool:
        return bool(self.index.hard_tainted)

    @property
    def any_prefer_taints(self) -> bool:
        return bool(self.index.soft_tainted)

    @property
    def any_unschedulable(self) -> bool:
        return bool(self.index.cordoned)

    @property
    def any_images(self) -> bool:
        return bool(self.index.image_nodes)

    def image_spread(self, image: str) -> float:
        """The share of nodes holding ``image``."""
        return self.index.image_nodes.get(image, 0) / len(self.nodes) if self.nodes else 0.0

    def pods_with_affinity(self) -> Iterator[tuple[NodeInfo, dict[str, Any]]]:
        for ni in list(self.index.affinity.values()):
            for pod in ni.affinity_pods.values():
                yield ni, pod

    def pods_with_required_anti_affinity(self) -> Iterator[tuple[NodeInfo, dict[str, Any]]]:
        for ni, pod in self.pods_with_affinity():
            if required_terms(pod, "podAntiAffinity"):
                yield ni, pod


@dataclass(slots=True)
class _PodState:
    node_name: str
    assumed: bool
    binding_finished: bool = False


class Cache:
    """Nodes plus placed pods (see the module contract). Single-threaded: call from one loop."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._order: list[NodeInfo] = []
        self._pods: dict[str, _PodState] = {}
        self._index = ClusterIndex()
        self._snapshot: Snapshot | None = None  # None: the node set changed since the last one

    # nodes -------------------------------------------------------------------------------
    def add_node(self, node: dict[str, Any]) -> None:
        name = name_of(node)
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo(name=name)
        was_listed = info.has_node
        if was_listed:
            self._index.remove_node(info)
        info.set_node(node)
        self._index.add_node(info)
        if not was_listed:
            self._order.append(info)
            self._snapshot = None

    update_node = add_node

    def remove_node(self, name: str) -> None:
        info = self._nodes.get(name)
        if info is None:
            return
        if info.has_node:
            self._order.remove(info)
            self._index.remove_node(info)
            self._snapshot = None
        info.clear_node()
        if not info.pods:
            del self._nodes[name]

    def node_info(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    # pods --------------------------------------------------------------------------------
    def add_pod(self, pod: dict[str, Any]) -> None:
        """An informer add/update of a pod bound to a node (confirms an assumption)."""
        key = pod_key(pod)
        node_name = node_name_of(pod)
        state = self._pods.get(key)
        if state is not None and state.node_name != node_name:
            self._remove_from_node(key, state.node_name)
        if not node_name or is_finished(pod):
            self._pods.pop(key, None)
            if state is not None and state.node_name == node_name:
                self._remove_from_node(key, node_name)
            return
        info = self._node_for(node_name)
        if state is not None and state.node_name == node_name:
            info.replace_pod(pod)
        else:
            info.add_pod(pod)
        self._note_pods(info)
        self._pods[key] = _PodState(node_name, assumed=False)

    def update_pod(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        self.add_pod(new)

    def remove_pod(self, pod: Mapping[str, Any]) -> None:
        key = pod_key(pod)
        state = self._pods.pop(key, None)
        if state is not None:
            self._remove_from_node(key, state.node_name)

    def assume_pod(self, pod: dict[str, Any], node_name: str) -> dict[str, Any]:
        """Count ``pod`` on ``node_name`` now; returns the assumed copy (with ``nodeName``)."""
        key = pod_key(pod)
        if key in self._pods:
            raise ValueError(f"pod {key} is already in the cache")
        assumed = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node_name}}
        info = self._node_for(node_name)
        info.add_pod(assumed)
        self._note_pods(info)
        self._pods[key] = _PodState(node_name, assumed=True)
        return assumed

    def finish_binding(self, key: str) -> None:
        state = self._pods.get(key)
        if state is not None and state.assumed:
            state.binding_finished = True

    def forget_pod(self, key: str) -> None:
        """Undo an assumption (its bind failed). A confirmed pod is left alone."""
        state = self._pods.get(key)
        if state is not None and state.assumed:
            del self._pods[key]
            self._remove_from_node(key, state.node_name)

    def is_assumed(self, key: str) -> bool:
        state = self._pods.get(key)
        return state is not None and state.assumed

    def has_pod(self, key: str) -> bool:
        return key in self._pods

    # views -------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The current view (see the module contract); O(1) unless the node set changed."""
        if self._snapshot is None:
            self._snapshot = Snapshot(list(self._order), self._index)
        return self._snapshot

    @property
    def pod_count(self) -> int:
        return len(self._pods)

    def _node_for(self, name: str) -> NodeInfo:
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo(name=name)
        return info

    def _note_pods(self, info: NodeInfo) -> None:
        if info.has_node:
            self._index.note_pods(info)

    def _remove_from_node(self, key: str, node_name: str) -> None:
        info = self._nodes.get(node_name)
        if info is None:
            return
        info.remove_pod(key)
        self._note_pods(info)
        if not info.has_node and not info.pods:
            del self._nodes[node_name]


def _requests_spec(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """The parts of a pod that decide its requests."""
    spec = pod.get("spec") or {}
    return (spec.get("containers"), spec.get("initContainers"), spec.get("overhead"))
