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
  :meth:`NodeInfo.clone`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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

    def clear_node(self) -> None:
        self._node = None

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

    def remove_pod(self, key: str) -> bool:
        entry = self.pods.pop(key, None)
        if entry is None:
            return False
        self.affinity_pods.pop(key, None)
        add_into(self.requested, entry.requests, -1)
        add_into(self.nonzero_requested, entry.nonzero, -1)
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
        return other

    def __repr__(self) -> str:
        return f"NodeInfo({self.name!r}, pods={len(self.pods)})"


class Snapshot:
    """The nodes a scheduling cycle sees, in a stable order."""

    def __init__(self, node_infos: list[NodeInfo]) -> None:
        self.nodes = node_infos
        self._by_name = {ni.name: ni for ni in node_infos}

    def get(self, name: str) -> NodeInfo | None:
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self.nodes)

    def with_node(self, replacement: NodeInfo) -> Snapshot:
        """The same snapshot with one node replaced (for preemption dry runs)."""
        return Snapshot([replacement if ni.name == replacement.name else ni for ni in self.nodes])

    def pods_with_affinity(self) -> Iterator[tuple[NodeInfo, dict[str, Any]]]:
        for ni in self.nodes:
            if ni.affinity_pods:
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

    # nodes -------------------------------------------------------------------------------
    def add_node(self, node: dict[str, Any]) -> None:
        name = name_of(node)
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo(name=name)
        was_listed = info.has_node
        info.set_node(node)
        if not was_listed:
            self._order.append(info)

    update_node = add_node

    def remove_node(self, name: str) -> None:
        info = self._nodes.get(name)
        if info is None:
            return
        if info.has_node:
            self._order.remove(info)
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
        self._node_for(node_name).add_pod(pod)
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
        self._node_for(node_name).add_pod(assumed)
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
        return Snapshot(list(self._order))

    @property
    def node_count(self) -> int:
        return len(self._order)

    @property
    def pod_count(self) -> int:
        return len(self._pods)

    def _node_for(self, name: str) -> NodeInfo:
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo(name=name)
        return info

    def _remove_from_node(self, key: str, node_name: str) -> None:
        info = self._nodes.get(node_name)
        if info is None:
            return
        info.remove_pod(key)
        if not info.has_node and not info.pods:
            del self._nodes[node_name]
