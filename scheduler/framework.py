"""The scheduling framework: extension points, statuses, and one scheduling cycle.

A cycle for one pod, all synchronous (it never awaits, so the cache view stays still)::

    PreFilter ─▶ Filter (each node, until enough feasible) ─▶ PreScore ─▶ Score ─▶ normalise
        │              │ none fit                                          ×weight, sum
        │              ▼                                                        │
        └────────▶ FitError ─▶ PostFilter (preemption)                     select host
                                                                                │
                                                     Reserve ─▶ (async) PreBind ─▶ Bind

Contracts:

* A plugin is a small class with a ``name`` and the mix-ins for the points it implements; its
  ``events`` name the cluster events that could make a pod it rejected schedulable (the queue
  parks the pod until one happens).
* ``filter`` returns :data:`OK` or a :class:`Status` whose reasons are the plugin's constant
  strings; UNSCHEDULABLE_AND_UNRESOLVABLE means preemption on that node cannot help.
* ``pre_filter``/``pre_score`` may return :data:`SKIP`: the plugin's filter/score is then not
  run for this pod (how plugins cost nothing for pods that do not use their feature).
* Filters that succeed return the :data:`OK` singleton; a ``Status`` that already names its
  plugin is passed through as is (plugins keep their rejections as constants).
* A plugin may override :meth:`FilterPlugin.filter_nodes` / :meth:`ScorePlugin.score_nodes` to
  judge a list of nodes in one call; it must return what ``filter``/``score`` returns for each.
  Filtering runs a chunk of nodes through one plugin after the other, then cuts the result
  where the sampling limit was reached: the same nodes are evaluated, and found feasible, as
  when each node went through every filter in turn.
* Scores are integers in ``[0, MAX_NODE_SCORE]`` after normalisation; the node total is the
  weighted sum; ties between the best nodes are broken at random.
* :meth:`FitError.message` is worded exactly like kube-scheduler's FailedScheduling message.
"""

from __future__ import annotations

import enum
import operator
import random
from collections import Counter
from collections.abc import Callable, Container, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from scheduler.cache import NodeInfo, Snapshot
from scheduler.memo import NodeMemo
from scheduler.pods import pod_key, priority_of

_T = TypeVar("_T")

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
        if self.plugin == plugin:
            return self
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

    def filter_nodes(self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo]) -> list[Status]:
        """:meth:`filter` of each node, in order (override to do it in one tight loop)."""
        f = self.filter
        return [f(state, pod, n) for n in nodes]


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

    def score_nodes(self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo]) -> list[int]:
        """Raw scores of ``nodes``, in order (default: :meth:`score` for each)."""
        score = self.score
        return [score(state, pod, n) for n in nodes]

    def normalize_score(self, state: CycleState, pod: dict, scores: dict[str, int]) -> None:
        """Bring raw scores into ``[0, MAX_NODE_SCORE]`` in place (default: already are)."""

    def score_shape(self, state: CycleState, pod: dict) -> Hashable | None:
        """What, besides the node's own content, this pod's raw scores depend on (e.g. its
        cpu/memory requests), or None (the default) when they depend on more. With a shape,
        the framework may reuse a node's score for the next pod of the same shape while the
        node is unchanged (see :mod:`scheduler.memo`)."""
        return None


class ReservePlugin(Plugin):
    def reserve(self, state: CycleState, pod: dict, node_name: str) -> Status:
        raise NotImplementedError

    def unreserve(self, state: CycleState, pod: dict, node_name: str) -> None:
        raise NotImplementedError


class PreBindPlugin(Plugin):
    """Runs after Reserve, before the ``pods/binding`` POST, off the scheduling cycle (it may do
    I/O); a status that is not OK fails the bind like a rejected POST."""

    async def pre_bind(self, state: CycleState, pod: dict, node_name: str) -> Status:
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
#: Which nodes have nominated pods now (a live container is fine); lets a cycle skip the
#: per-node lookup when there are none.
NominatedNodes = Callable[[], Container[str]]
FILTERS = "__filters"  # CycleState key: the filter plugins PreFilter did not skip
MIN_FILTER_CHUNK = 32


def _next_chunk(size: int, still: int, evaluated: int, passed: int) -> int:
    """How many nodes to filter next to find ``still`` more feasible ones, from the share that
    passed so far (plus an eighth, so that one more chunk usually suffices)."""
    if not passed:
        return 2 * size
    return max(MIN_FILTER_CHUNK, still * evaluated * 9 // (8 * passed))


def no_nominated(_: str) -> Iterable[dict]:
    return ()


def _no_nominated_nodes() -> Container[str]:
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
        nominated_nodes: NominatedNodes | None = None,
    ) -> None:
        self.plugins = list(plugins)
        self.weights = {p.name: (weights or {}).get(p.name, 1) for p in plugins}
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self.nominated_pods = nominated_pods
        if nominated_nodes is None and nominated_pods is no_nominated:
            nominated_nodes = _no_nominated_nodes
        self.nominated_nodes = nominated_nodes
        self._next_start = 0

        def of(kind: type) -> list[Any]:
            return [p for p in self.plugins if isinstance(p, kind)]

        self.pre_filter_plugins: list[PreFilterPlugin] = of(PreFilterPlugin)
        self.filter_plugins: list[FilterPlugin] = of(FilterPlugin)
        self.post_filter_plugins: list[PostFilterPlugin] = of(PostFilterPlugin)
        self.pre_score_plugins: list[PreScorePlugin] = of(PreScorePlugin)
        self.score_plugins: list[ScorePlugin] = of(ScorePlugin)
        self.reserve_plugins: list[ReservePlugin] = of(ReservePlugin)
        self.pre_bind_plugins: list[PreBindPlugin] = of(PreBindPlugin)
        self._all_filters: list[FilterPlugin] = list(self.filter_plugins)
        self._score_memo = NodeMemo()
        self._normalizes = {
            p.name: type(p).normalize_score is not ScorePlugin.normalize_score
            for p in self.score_plugins
        }

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
        state[FILTERS] = [p for p in self._all_filters if p.name not in skipped]
        return OK

    def run_filter(self, state: CycleState, pod: dict, node: NodeInfo) -> Status:
        for p in state.get(FILTERS, self._all_filters):
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
        totals = self._score_totals(state, pod, nodes, snapshot)
        return dict(zip([n.name for n in nodes], totals, strict=True))

    def _score_totals(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> list[int]:
        """:meth:`run_score`'s totals, in the order of ``nodes``. The weighted sum of the
        plugins that give a :meth:`~ScorePlugin.score_shape` (and do not normalise) is
        remembered per node and pod shape; the other plugins score every time."""
        skipped = set()
        for pre in self.pre_score_plugins:
            st = pre.pre_score(state, pod, nodes, snapshot)
            if st.code == Code.SKIP:
                skipped.add(pre.name)
        shaped: list[tuple[ScorePlugin, Hashable]] = []
        others: list[ScorePlugin] = []
        for sp in self.score_plugins:
            if sp.name in skipped:
                continue
            shape = None if self._normalizes[sp.name] else sp.score_shape(state, pod)
            if shape is None:
                others.append(sp)
            else:
                shaped.append((sp, shape))
        totals: list[int] | None = None
        if shaped:
            plugins = [sp for sp, _ in shaped]
            totals = self._score_memo.results(
                tuple((sp.name, shape) for sp, shape in shaped),
                nodes,
                lambda some: self._weighted_sum(state, pod, some, plugins),
            )
        for sp in others:
            raw = self._weighted_scores(state, pod, nodes, sp)
            totals = raw if totals is None else list(map(operator.add, totals, raw))
        return [0] * len(nodes) if totals is None else totals

    def _weighted_sum(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], plugins: list[ScorePlugin]
    ) -> list[int]:
        totals = [0] * len(nodes)
        for sp in plugins:
            totals = list(map(operator.add, totals, self._weighted_scores(state, pod, nodes, sp)))
        return totals

    def _weighted_scores(
        self, state: CycleState, pod: dict, nodes: Sequence[NodeInfo], sp: ScorePlugin
    ) -> list[int]:
        """One plugin's normalised scores of ``nodes`` times its weight."""
        raw = sp.score_nodes(state, pod, nodes)
        if len(raw) != len(nodes):
            raise ValueError(f"{sp.name}: {len(raw)} scores for {len(nodes)} nodes")
        if self._normalizes[sp.name]:
            scores = dict(zip([n.name for n in nodes], raw, strict=True))
            sp.normalize_score(state, pod, scores)
            raw = list(scores.values())
        weight = self.weights[sp.name]
        return raw if weight == 1 else [weight * s for s in raw]

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

    async def run_pre_bind(self, state: CycleState, pod: dict, node_name: str) -> Status:
        for p in self.pre_bind_plugins:
            st = await p.pre_bind(state, pod, node_name)
            if not st.ok:
                return st.with_plugin(p.name)
        return OK

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
        """Feasible nodes (at most the sampling limit) and how many nodes were evaluated,
        walking the nodes round-robin from where the previous cycle stopped."""
        nodes = snapshot.nodes
        n = len(nodes)
        if not n:
            return [], 0
        want = self.num_feasible_nodes_to_find(n)
        start = self._next_start % n
        order = nodes[start:] + nodes[:start]
        nominated = self.nominated_nodes() if self.nominated_nodes is not None else None
        if nominated is None or nominated:
            feasible, evaluated = self._find_feasible_one_by_one(state, pod, order, want, diagnosis)
        else:
            feasible, evaluated = self._find_feasible_in_chunks(state, pod, order, want, diagnosis)
        self._next_start = (start + evaluated) % n
        return feasible, evaluated

    def _find_feasible_in_chunks(
        self,
        state: CycleState,
        pod: dict,
        order: list[NodeInfo],
        want: int,
        diagnosis: Diagnosis,
    ) -> tuple[list[NodeInfo], int]:
        filters = state.get(FILTERS, self._all_filters)
        feasible: list[NodeInfo] = []
        pos, n = 0, len(order)
        size = max(want, MIN_FILTER_CHUNK)
        while pos < n:
            need = want - len(feasible)
            chunk = order[pos : pos + size]
            rejected: dict[str, Status] = {}
            survivors = chunk
            for p in filters:
                if not survivors:
                    break
                statuses = p.filter_nodes(state, pod, survivors)
                kept = [
                    node
                    for node, st in zip(survivors, statuses, strict=True)
                    if st is OK or not st.code
                ]
                if len(kept) != len(survivors):
                    name = p.name
                    rejected.update(
                        (node.name, st if st.plugin == name else st.with_plugin(name))
                        for node, st in zip(survivors, statuses, strict=True)
                        if st is not OK and st.code
                    )
                survivors = kept
            if len(survivors) >= need:
                # Stop where a one-by-one walk would have: at the need-th feasible node.
                last = chunk.index(survivors[need - 1])
                for node in chunk[last + 1 :]:
                    rejected.pop(node.name, None)
                feasible.extend(survivors[:need])
                pos += last + 1
                self._note_rejected(diagnosis, rejected)
                return feasible, pos
            feasible.extend(survivors)
            pos += len(chunk)
            self._note_rejected(diagnosis, rejected)
            size = _next_chunk(size, want - len(feasible), pos, len(feasible))
        return feasible, pos

    @staticmethod
    def _note_rejected(diagnosis: Diagnosis, rejected: dict[str, Status]) -> None:
        if rejected:
            diagnosis.node_statuses.update(rejected)
            diagnosis.unschedulable_plugins.update(
                {st.plugin for st in rejected.values() if st.plugin}
            )

    def _find_feasible_one_by_one(
        self,
        state: CycleState,
        pod: dict,
        order: list[NodeInfo],
        want: int,
        diagnosis: Diagnosis,
    ) -> tuple[list[NodeInfo], int]:
        """The walk when nominated pods may change what a node offers."""
        feasible: list[NodeInfo] = []
        evaluated = 0
        for node in order:
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
            target = snapshot.get(nominated)
            if target is not None and self.run_filter_with_nominated(state, pod, target).ok:
                return ScheduleResult(nominated, 1, 1, state)
        feasible, evaluated = self.find_feasible(state, pod, snapshot, diagnosis)
        if not feasible:
            raise FitError(pod, len(snapshot), diagnosis, state)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, evaluated, 1, state)
        totals = self._score_totals(state, pod, feasible, snapshot)
        best = self._pick(feasible, totals)
        return ScheduleResult(best.name, evaluated, len(feasible), state)

    def select_host(self, totals: Mapping[str, int]) -> str:
        """The best-scoring node; equal best scores are chosen between uniformly."""
        if not totals:
            return ""
        return self._pick(list(totals), list(totals.values()))

    def _pick(self, candidates: Sequence[_T], scores: list[int]) -> _T:
        """The candidate with the best score; ties are broken as :meth:`select_host` does."""
        best = max(scores)
        if scores.count(best) == 1:
            return candidates[scores.index(best)]
        tied = [c for c, score in zip(candidates, scores, strict=True) if score == best]
        return self.rng.choice(tied)
