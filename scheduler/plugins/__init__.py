"""The in-tree plugins, by name, and the default profile (kube-scheduler's default weights)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from scheduler.framework import Framework, NominatedNodes, NominatedPods, Plugin, no_nominated
from scheduler.plugins.balanced_allocation import BalancedAllocation
from scheduler.plugins.default_preemption import DefaultPreemption
from scheduler.plugins.image_locality import ImageLocality
from scheduler.plugins.inter_pod_affinity import InterPodAffinity
from scheduler.plugins.node_affinity import NodeAffinity
from scheduler.plugins.node_name import NodeName
from scheduler.plugins.node_resources_fit import NodeResourcesFit
from scheduler.plugins.node_unschedulable import NodeUnschedulable
from scheduler.plugins.pod_topology_spread import PodTopologySpread
from scheduler.plugins.taint_toleration import TaintToleration
from scheduler.plugins.volume_binding import VolumeBinding

#: Plugin name → factory. Order here is the order plugins run in (cheap filters first).
REGISTRY: dict[str, Callable[[], Plugin]] = {
    cls.name: cls
    for cls in (
        NodeUnschedulable,
        NodeName,
        TaintToleration,
        NodeAffinity,
        NodeResourcesFit,
        VolumeBinding,
        PodTopologySpread,
        InterPodAffinity,
        BalancedAllocation,
        ImageLocality,
        DefaultPreemption,
    )
}

DEFAULT_WEIGHTS: dict[str, int] = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "NodeResourcesFit": 1,
    "NodeResourcesBalancedAllocation": 1,
    "ImageLocality": 1,
}


def build_framework(
    names: Sequence[str] | None = None,
    weights: Mapping[str, int] | None = None,
    *,
    percentage_of_nodes_to_score: int = 0,
    rng: random.Random | None = None,
    nominated_pods: NominatedPods = no_nominated,
    nominated_nodes: NominatedNodes | None = None,
) -> Framework:
    """A framework with the named plugins (default: all of :data:`REGISTRY`)."""
    plugins = [REGISTRY[n]() for n in (names or REGISTRY)]
    return Framework(
        plugins,
        {**DEFAULT_WEIGHTS, **(weights or {})},
        percentage_of_nodes_to_score=percentage_of_nodes_to_score,
        rng=rng,
        nominated_pods=nominated_pods,
        nominated_nodes=nominated_nodes,
    )


__all__ = ["DEFAULT_WEIGHTS", "REGISTRY", "build_framework"]
