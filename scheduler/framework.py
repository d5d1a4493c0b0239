"""The scheduling framework: extension points, statuses, and one scheduling cycle.

A cycle for one pod, all synchronous (it never awaits, so the cache view stays still)::

    PreFilter ─▶ Filter (each node, until enough feasible) ─▶ PreScore ─▶ Score ─▶ normalise
        │              │ none fit                                          ×weight, sum
        │              ▼                                                        │
        └────────▶ FitError ─▶ PostFilter (preemption)                     select host
                                                                                │
                                                                   Reserve ─▶ (async) Bind

Contracts:

* A plugin is a small class with a ``name`` and the mix-ins for the points it implements; its
  ``events`` name the cluster events that could make a pod it rejected schedulable (the queue
  parks the pod until one happens).
* ``filter`` returns :data:`OK` or a :class:`Status` whose reasons are the plugin's constant
  strings; UNSCHEDULABLE_AND_UNRESOLVABLE means preemption on that node cannot help.
* ``pre_filter``/``pre_score`` may return :data:`SKIP`: the plugin's filter/score is then not
  run for this pod (how plugins cost nothing for pods that do not use their feature).
* Scores are integers in ``[0, MAX_NODE_SCORE]`` after normalisation; the node total is the
  weighted sum; ties between the best nodes are broken at random.
* :meth:`FitError.message` is worded exactly like kube-scheduler's FailedScheduling message.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from scheduler.cache import NodeInfo, Snapshot
from scheduler.pods import pod_key, priority_of

MAX_NODE_SCORE = 100
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
NO_NODES_AVAILABLE = "no nodes available to schedule pods"

# Cluster events a rejected pod may wait for (``resource/action``).
NODE_ADD = "Node/Add"
NODE_UPDATE = "Node/Update"
POD_ADD = "Pod/Add"  # a pod was placed on a node (assigned pods only)
POD_UPDATE = "Pod/Update"
POD_DELETE = "Pod/Delete"
ALL_EVENTS = "*"


class Code(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    SKIP = 4


@dataclass(frozen=True, slots=True)
class Status:
    """The outcome of one plugin call: a code, the user-facing reasons, the plugin's name."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code == Code.SUCCESS

    @property
    def rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def with_plugin(self, plugin: str) -> Status:
        return Status(self.code, self.reasons, plugin)


OK = Status()
SKIP = Status(Code.SKIP)


def unschedulable(*reasons: str) -> Status:
    """Rejected here, but preemption on this node might help."""
    return Status(Code.UNSCHEDULABLE, reasons)


def unresolvable(*reasons: str) -> Status:
    """Rejected here, and removing pods from this node cannot change that."""
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons)


def error(message: str) -> Status:
    return Status(Code.ERROR, (message,))


class CycleState(dict[str, Any]):
    """Per-cycle scratch space: PreFilter/PreScore results read later by Filter/Score."""

    def clone(self) -> CycleState:
        return CycleState(self)


# ---- plugin interfaces ---------------------------------------------------------------------


class Plugin:
    name: ClassVar[str] = ""
    #: Cluster events that could make a pod this plugin rejected schedulable.
    events: ClassVar[tuple[str, ...]] = ()


class PreFilterPlugin(Plugin):
    def pre_filter(self, state: CycleState, pod: dict, snapshot: Snapshot) -> Status:
        raise NotImplementedError


class FilterPlugin(Plugin):
    def filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        raise NotImplementedError


@dataclass
class PostFilterResult:
    nominated_node: str = ""
    victims: list[dict] = field(default_factory=list)


class PostFilterPlugin(Plugin):
    def post_filter(
        self,
        state: CycleState,
        pod: dict,
        snapshot: Snapshot,
        diagnosis: Diagnosis,
        handle: Framework,
    ) -> tuple[PostFilterResult | None, Status]:
        raise NotImplementedError


class PreScorePlugin(Plugin):
    def pre_score(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status:
        raise NotImplementedError


class ScorePlugin(Plugin):
    def score(self, state: CycleState, pod: dict, node: NodeInfo) -> int:
        raise NotImplementedError

    def normalize_score(self, state: CycleState, pod: dict, scores: dict[str, int]) -> None:
        """Bring raw scores into ``[0, MAX_NODE_SCORE]`` in place (default: already are)."""


class ReservePlugin(Plugin):
    def reserve(self, state: CycleState, pod: dict, node_name: str) -> Status:
        raise NotImplementedError

    def unreserve(self, state: CycleState, pod: dict, node_name: str) -> None:
        raise NotImplementedError


def default_normalize(scores: dict[str, int], *, reverse: bool = False) -> None:
    """Scale so the highest raw score becomes MAX_NODE_SCORE (``reverse``: the lowest does)."""
    if not scores:
        return
    top = max(scores.values())
    if top == 0:
        if reverse:
            for k in scores:
                scores[k] = MAX_NODE_SCORE
        return
    for k, v in scores.items():
        s = MAX_NODE_SCORE * v // top
        scores[k] = MAX_NODE_SCORE - s if reverse else s


# ---- outcome -------------------------------------------------------------------------------


@dataclass
class Diagnosis:
    """Why a pod fits nowhere: each rejected node's status plus PreFilter/PostFilter notes."""

    node_statuses: dict[str, Status] = field(default_factory=dict)
    unschedulable_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""


class FitError(Exception):
    """No node fits the pod; :meth:`message` is the user-facing summary."""

    def __init__(
        self, pod: dict, num_all_nodes: int, diagnosis: Diagnosis, state: CycleState | None = None
    ) -> None:
        self.pod = pod
        self.state = state if state is not None else CycleState()
        self.num_all_nodes = num_all_nodes
        self.diagnosis = diagnosis
        super().__init__(self.message())

    def message(self) -> str:
        if self.num_all_nodes == 0 and not self.diagnosis.pre_filter_msg:
            return NO_NODES_AVAILABLE
        return summarize(self.num_all_nodes, self.diagnosis)


def summarize(num_all_nodes: int, diagnosis: Diagnosis) -> str:
    """``"0/N nodes are available: <count reason, ...>. <postfilter msg>."``, reasons sorted as
    strings (so ``"1 node(s) had ..."`` precedes ``"2 Insufficient cpu"``)."""
    msg = f"0/{num_all_nodes} nodes are available:"
    if diagnosis.pre_filter_msg:
        msg += f" {diagnosis.pre_filter_msg}."
    else:
        counts: Counter[str] = Counter()
        for status in diagnosis.node_statuses.values():
            counts.update(status.reasons)
        histogram = sorted(f"{n} {reason}" for reason, n in counts.items())
        if histogram:
            msg += f" {', '.join(histogram)}."
    if diagnosis.post_filter_msg:
        msg += f" {diagnosis.post_filter_msg}."
    return msg


@dataclass
class ScheduleResult:
    node_name: str
    evaluated_nodes: int
    feasible_nodes: int
    state: CycleState


# ---- the framework -------------------------------------------------------------------------

NominatedPods = Callable[[str], Iterable[dict]]


def no_nominated(_: str) -> Iterable[dict]:
    return ()


class Framework:
    """Runs the plugins of one profile. Holds no cluster state except the round-robin start."""

    def __init__(
        self,
        plugins: Sequence[Plugin],
        weights: Mapping[str, int] | None = None,
        *,
        percentage_of_nodes_to_score: int = 0,
        rng: random.Random | None = None,
        nominated_pods: NominatedPods = no_nominated,
    ) -> None:
        self.plugins = list(plugins)
        self.weights = {p.name: (weights or {}).get(p.name, 1) for p in plugins}
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self.nominated_pods = nominated_pods
        self._next_start = 0

        def of(kind: type) -> list[Any]:
            return [p for p in self.plugins if isinstance(p, kind)]

        self.pre_filter_plugins: list[PreFilterPlugin] = of(PreFilterPlugin)
        self.filter_plugins: list[FilterPlugin] = of(FilterPlugin)
        self.post_filter_plugins: list[PostFilterPlugin] = of(PostFilterPlugin)
        self.pre_score_plugins: list[PreScorePlugin] = of(PreScorePlugin)
        self.score_plugins: list[ScorePlugin] = of(ScorePlugin)
        self.reserve_plugins: list[ReservePlugin] = of(ReservePlugin)

    def events_for(self, plugin_names: Iterable[str]) -> set[str]:
        """The cluster events any of ``plugin_names`` says may unblock a pod it rejected."""
        names = set(plugin_names)
        return {e for p in self.plugins if p.name in names for e in p.events}

    # -- extension points ----------------------------------------------------------------
    def run_pre_filter(self, state: CycleState, pod: dict, snapshot: Snapshot) -> Status:
        skipped: set[str] = set()
        for p in self.pre_filter_plugins:
            st = p.pre_filter(state, pod, snapshot)
            if st.code == Code.SKIP:
                skipped.add(p.name)
            elif not st.ok:
                return st.with_plugin(p.name)
        state["__skip_filter"] = skipped
        return OK

    def run_filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        skipped = state.get("__skip_filter", ())
        for p in self.filter_plugins:
            if p.name in skipped:
                continue
            st = p.filter(state, pod, node)
            if st is not OK and st.code != Code.SUCCESS:
                return st.with_plugin(p.name)
        return OK

    def run_filter_with_nominated(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        """Filter, counting pods nominated to this node with priority >= the pod's as placed."""
        nominated = self.nominated_pods(node.name)
        if nominated:
            prio, key = priority_of(pod), pod_key(pod)
            extra = [p for p in nominated if priority_of(p) >= prio and pod_key(p) != key]
            if extra:
                node = node.clone()
                for p in extra:
                    node.add_pod(p)
        return self.run_filter(state, pod, node)

    def run_post_filter(
        self, state: CycleState, pod: dict, snapshot: Snapshot, diagnosis: Diagnosis
    ) -> tuple[PostFilterResult | None, Status]:
        last: Status = unresolvable()
        for p in self.post_filter_plugins:
            result, st = p.post_filter(state, pod, snapshot, diagnosis, self)
            if st.ok:
                return result, st.with_plugin(p.name)
            last = st.with_plugin(p.name)
            if st.code != Code.UNSCHEDULABLE:
                break
        return None, last

    def run_score(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> dict[str, int]:
        """Weighted, normalised totals per node name."""
        skipped = set()
        for p in self.pre_score_plugins:
            st = p.pre_score(state, pod, nodes, snapshot)
            if st.code == Code.SKIP:
                skipped.add(p.name)
        totals = dict.fromkeys((n.name for n in nodes), 0)
        for p in self.score_plugins:
            if p.name in skipped:
                continue
            scores = {n.name: p.score(state, pod, n) for n in nodes}
            p.normalize_score(state, pod, scores)
            weight = self.weights[p.name]
            for name, s in scores.items():
                totals[name] += weight * s
        return totals

    def run_reserve(self, state: CycleState, pod: dict, node_name: str) -> Status:
        for i, p in enumerate(self.reserve_plugins):
            st = p.reserve(state, pod, node_name)
            if not st.ok:
                for q in reversed(self.reserve_plugins[: i + 1]):
                    q.unreserve(state, pod, node_name)
                return st.with_plugin(p.name)
        return OK

    def run_unreserve(self, state: CycleState, pod: dict, node_name: str) -> None:
        for p in reversed(self.reserve_plugins):
            p.unreserve(state, pod, node_name)

    # -- one cycle -----------------------------------------------------------------------
    def num_feasible_nodes_to_find(self, num_all_nodes: int) -> int:
        """How many feasible nodes are enough (kube-scheduler's percentageOfNodesToScore)."""
        pct = self.percentage_of_nodes_to_score
        if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND or pct >= 100:
            return num_all_nodes
        if pct <= 0:
            pct = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
        return max(num_all_nodes * pct // 100, MIN_FEASIBLE_NODES_TO_FIND)

    def find_feasible(
        self, state: CycleState, pod: dict, snapshot: Snapshot, diagnosis: Diagnosis
    ) -> tuple[list[NodeInfo], int]:
        """Feasible nodes (at most the sampling limit) and how many nodes were evaluated."""
        nodes = snapshot.nodes
        n = len(nodes)
        want = self.num_feasible_nodes_to_find(n)
        feasible: list[NodeInfo] = []
        start = self._next_start % n if n else 0
        evaluated = 0
        for i in range(n):
            node = nodes[(start + i) % n]
            evaluated += 1
            st = self.run_filter_with_nominated(state, pod, node)
            if st.ok:
                feasible.append(node)
                if len(feasible) >= want:
                    break
            else:
                diagnosis.node_statuses[node.name] = st
                if st.plugin:
                    diagnosis.unschedulable_plugins.add(st.plugin)
        if n:
            self._next_start = (start + evaluated) % n
        return feasible, evaluated

    def schedule_pod(self, pod: dict, snapshot: Snapshot) -> ScheduleResult:
        """Pick a node for ``pod`` or raise :class:`FitError` (with its state in ``.state``)."""
        state = CycleState()
        diagnosis = Diagnosis()
        if len(snapshot) == 0:
            raise FitError(pod, 0, diagnosis, state)
        st = self.run_pre_filter(state, pod, snapshot)
        if not st.ok:
            if st.code == Code.ERROR:
                raise RuntimeError(st.message)
            diagnosis.pre_filter_msg = st.message
            diagnosis.unschedulable_plugins.add(st.plugin)
            for ni in snapshot.nodes:
                diagnosis.node_statuses[ni.name] = st
            raise FitError(pod, len(snapshot), diagnosis, state)
        nominated = ((pod.get("status") or {}).get("nominatedNodeName")) or ""
        if nominated:
            ni = snapshot.get(nominated)
            if ni is not None and self.run_filter_with_nominated(state, pod, ni).ok:
                return ScheduleResult(nominated, 1, 1, state)
        feasible, evaluated = self.find_feasible(state, pod, snapshot, diagnosis)
        if not feasible:
            raise FitError(pod, len(snapshot), diagnosis, state)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, evaluated, 1, state)
        totals = self.run_score(state, pod, feasible, snapshot)
        return ScheduleResult(self.select_host(totals), evaluated, len(feasible), state)

    def select_host(self, totals: Mapping[str, int]) -> str:
        """The best-scoring node; equal best scores are chosen between uniformly."""
        best_name, best, ties = "", None, 0
        for name, score in totals.items():
            if best is None or score > best:
                best_name, best, ties = name, score, 1
            elif score == best:
                ties += 1
                if self.rng.randrange(ties) == 0:
                    best_name = name
        return best_name
