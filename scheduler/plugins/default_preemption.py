"""DefaultPreemption (PostFilter): when a pod fits nowhere, find one node where evicting pods of
lower priority would let it fit, evicting as few and as unimportant pods as possible.

Per node: remove every lower-priority pod; if the pod still does not fit, the node is no
candidate; otherwise add the removed pods back, most important first, keeping each one the pod
still fits beside (a "reprieve"); the rest are the victims. Between candidates, Kubernetes'
order: lowest highest-victim priority, then lowest sum of priorities, then fewest victims, then
the first found. PodDisruptionBudgets are not consulted. The evictions and the nomination are
the caller's to carry out; this plugin only decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.cache import NodeInfo, Snapshot
from scheduler.framework import (
    Code,
    CycleState,
    Diagnosis,
    Framework,
    PostFilterPlugin,
    PostFilterResult,
    Status,
    summarize,
    unresolvable,
    unschedulable,
)
from scheduler.pods import is_terminating, pod_key, priority_of

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_ELIGIBLE_POLICY = "not eligible due to preemptionPolicy=Never"
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node"
MIN_CANDIDATE_NODES_PERCENTAGE = 10
MIN_CANDIDATE_NODES_ABSOLUTE = 100
_PRIORITY_OFFSET = 2**31  # keeps sums of negative priorities ordered like Kubernetes


@dataclass
class Candidate:
    node_name: str
    victims: list[dict]

    def rank(self) -> tuple[int, int, int]:
        prios = [priority_of(v) for v in self.victims]
        return (
            max(prios, default=-_PRIORITY_OFFSET),
            sum(p + _PRIORITY_OFFSET for p in prios),
            len(prios),
        )


def eligible(pod: dict, snapshot: Snapshot) -> str:
    """Why the pod may not preempt now ("" when it may)."""
    spec = pod.get("spec") or {}
    if spec.get("preemptionPolicy") == "Never":
        return NOT_ELIGIBLE_POLICY
    nominated = (pod.get("status") or {}).get("nominatedNodeName")
    node = snapshot.get(nominated) if nominated else None
    if node is not None:
        prio = priority_of(pod)
        if any(is_terminating(p) and priority_of(p) < prio for p in node.iter_pods()):
            return NOT_ELIGIBLE_TERMINATING
    return ""


def _fits(handle: Framework, pod: dict, snapshot: Snapshot, node: NodeInfo) -> Status:
    state = CycleState()
    st = handle.run_pre_filter(state, pod, snapshot.with_node(node))
    if not st.ok:
        return st
    return handle.run_filter_with_nominated(state, pod, node)


def select_victims(
    handle: Framework, pod: dict, snapshot: Snapshot, node: NodeInfo
) -> tuple[list[dict], Status]:
    """The fewest lower-priority pods to evict from ``node`` so ``pod`` fits, or a status why
    no eviction there helps."""
    prio = priority_of(pod)
    lower = [p for p in node.iter_pods() if priority_of(p) < prio]
    if not lower:
        return [], unresolvable(NO_VICTIMS)
    trial = node.clone()
    for p in lower:
        trial.remove_pod(pod_key(p))
    st = _fits(handle, pod, snapshot, trial)
    if not st.ok:
        return [], st
    victims = []
    for p in sorted(lower, key=lambda v: -priority_of(v)):
        trial.add_pod(p)
        if not _fits(handle, pod, snapshot, trial).ok:
            trial.remove_pod(pod_key(p))
            victims.append(p)
    return victims, Status()


class DefaultPreemption(PostFilterPlugin):
    name = "DefaultPreemption"

    def post_filter(
        self,
        state: CycleState,
        pod: dict,
        snapshot: Snapshot,
        diagnosis: Diagnosis,
        handle: Framework,
    ) -> tuple[PostFilterResult | None, Status]:
        why_not = eligible(pod, snapshot)
        if why_not:
            return None, unschedulable(f"preemption: {why_not}")
        statuses: dict[str, Status] = {}
        candidates: list[Candidate] = []
        limit = max(
            len(snapshot) * MIN_CANDIDATE_NODES_PERCENTAGE // 100, MIN_CANDIDATE_NODES_ABSOLUTE
        )
        for node in snapshot.nodes:
            st = diagnosis.node_statuses.get(node.name)
            if st is None or st.code != Code.UNSCHEDULABLE:
                statuses[node.name] = unresolvable(NOT_HELPFUL)
                continue
            if len(candidates) >= limit:
                continue
            victims, st = select_victims(handle, pod, snapshot, node)
            if st.ok and victims:
                candidates.append(Candidate(node.name, victims))
            else:
                statuses[node.name] = st if not st.ok else unresolvable(NO_VICTIMS)
        if not candidates:
            message = summarize(len(snapshot), Diagnosis(node_statuses=statuses))
            return None, unresolvable(f"preemption: {message.removesuffix('.')}")
        best = min(candidates, key=Candidate.rank)
        return PostFilterResult(best.node_name, best.victims), Status()
