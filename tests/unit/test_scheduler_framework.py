"""The framework end to end on a cache: messages, weights, sampling, assume/forget, preemption."""

from __future__ import annotations

import random

import pytest

from scheduler.cache import Cache
from scheduler.framework import (
    Code,
    CycleState,
    Diagnosis,
    FitError,
    Framework,
    ScorePlugin,
    summarize,
    unresolvable,
    unschedulable,
)
from scheduler.plugins import build_framework
from scheduler.testing import make_node, make_pod


def cache_of(nodes, placed=()):
    cache = Cache()
    for n in nodes:
        cache.add_node(n)
    for p in placed:
        cache.add_pod(p)
    return cache


def fit_error(fw, pod, cache) -> FitError:
    with pytest.raises(FitError) as info:
        fw.schedule_pod(pod, cache.snapshot())
    return info.value


# ---- the FailedScheduling message ---------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "post", "want"),
    [
        (
            {
                "a": unresolvable("node(s) had untolerated taint {k: v}"),
                "b": unschedulable("Insufficient cpu"),
                "c": unschedulable("Insufficient cpu"),
            },
            "",
            "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu.",
        ),
        (
            {"a": unschedulable("Insufficient cpu", "Insufficient memory")},
            "preemption: not eligible due to preemptionPolicy=Never",
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. "
            "preemption: not eligible due to preemptionPolicy=Never.",
        ),
        (
            {f"n{i}": unschedulable("Too many pods") for i in range(10)}
            | {"x": unresolvable("node(s) were unschedulable")},
            "",
            # Sorted as strings, like kube-scheduler: "1 ..." sorts before "10 ...".
            "0/11 nodes are available: 1 node(s) were unschedulable, 10 Too many pods.",
        ),
    ],
    ids=["brief-example", "with-postfilter", "string-sort"],
)
def test_summary_wording(statuses, post, want):
    diagnosis = Diagnosis(node_statuses=statuses, post_filter_msg=post)
    assert summarize(len(statuses), diagnosis) == want


def test_fit_error_message_from_a_real_cycle_with_preemption_not_helpful():
    nodes = [
        make_node("tainted", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
        make_node("small1", cpu="1"),
        make_node("small2", cpu="1"),
    ]
    cache = cache_of(nodes)
    fw = build_framework(rng=random.Random(0))
    pod = make_pod("big", cpu="2")
    err = fit_error(fw, pod, cache)
    _, st = fw.run_post_filter(err.state, pod, cache.snapshot(), err.diagnosis)
    err.diagnosis.post_filter_msg = st.message
    assert err.message() == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod."
    )
    assert err.diagnosis.unschedulable_plugins == {"TaintToleration", "NodeResourcesFit"}


def test_no_nodes_message():
    err = fit_error(build_framework(), make_pod("p"), Cache())
    assert err.message() == "no nodes available to schedule pods"


# ---- scoring ---------------------------------------------------------------------------


class Fixed(ScorePlugin):
    def __init__(self, name, scores, normalize=False):
        self.name = name
        self.scores = scores
        self.normalize = normalize

    def score(self, state, pod, node):
        return self.scores[node.name]

    def normalize_score(self, state, pod, scores):
        if self.normalize:
            top = max(scores.values())
            for k in scores:
                scores[k] = scores[k] * 100 // top


@pytest.mark.parametrize(
    ("weights", "want_totals", "winner"),
    [
        ({"A": 1, "B": 1}, {"x": 100, "y": 70}, "x"),
        ({"A": 1, "B": 5}, {"x": 100, "y": 270}, "y"),
    ],
    ids=["equal-weights", "weight-flips-winner"],
)
def test_scores_are_normalised_then_weighted(weights, want_totals, winner):
    a = Fixed("A", {"x": 10, "y": 2}, normalize=True)  # → x 100, y 20
    b = Fixed("B", {"x": 0, "y": 50})
    fw = Framework([a, b], weights)
    cache = cache_of([make_node("x"), make_node("y")])
    snap = cache.snapshot()
    totals = fw.run_score(CycleState(), make_pod("p"), snap.nodes, snap)
    assert totals == want_totals
    assert fw.select_host(totals) == winner


def test_ties_are_broken_between_all_best_nodes():
    fw = Framework([], rng=random.Random(1))
    picks = {fw.select_host({"a": 5, "b": 5, "c": 1}) for _ in range(200)}
    assert picks == {"a", "b"}


# ---- sampling (percentageOfNodesToScore) -------------------------------------------------


@pytest.mark.parametrize(
    ("pct", "nodes", "want"),
    [(0, 50, 50), (0, 1000, 420), (0, 5000, 500), (0, 200, 100), (30, 1000, 300), (100, 999, 999)],
    ids=["small-cluster", "adaptive-1000", "adaptive-5000", "floor-100", "explicit", "all"],
)
def test_num_feasible_nodes_to_find(pct, nodes, want):
    assert Framework([], percentage_of_nodes_to_score=pct).num_feasible_nodes_to_find(nodes) == want


def test_sampling_stops_early_and_rotates_start():
    cache = cache_of([make_node(f"n{i:03}") for i in range(300)])
    fw = build_framework(percentage_of_nodes_to_score=10)
    first = fw.schedule_pod(make_pod("a"), cache.snapshot())
    second = fw.schedule_pod(make_pod("b"), cache.snapshot())
    assert first.evaluated_nodes == second.evaluated_nodes == 100
    assert first.feasible_nodes == 100
    assert fw._next_start == 200


# ---- assume / forget ----------------------------------------------------------------------


def test_assumed_pod_counts_until_forgotten():
    cache = cache_of([make_node("only", cpu="1")])
    fw = build_framework()
    pod = make_pod("first", cpu="800m")
    result = fw.schedule_pod(pod, cache.snapshot())
    assumed = cache.assume_pod(pod, result.node_name)
    assert assumed["spec"]["nodeName"] == "only"
    assert "nodeName" not in pod["spec"]  # the informer's object is not mutated
    err = fit_error(fw, make_pod("second", cpu="500m"), cache)
    assert "1 Insufficient cpu" in err.message()
    cache.forget_pod("default/first")
    assert fw.schedule_pod(make_pod("second", cpu="500m"), cache.snapshot()).node_name == "only"


def test_informer_add_confirms_assumption_and_forget_is_then_a_no_op():
    cache = cache_of([make_node("n", cpu="1")])
    pod = make_pod("p", cpu="600m")
    cache.assume_pod(pod, "n")
    cache.finish_binding("default/p")
    cache.add_pod({**pod, "spec": {**pod["spec"], "nodeName": "n"}})
    assert not cache.is_assumed("default/p")
    cache.forget_pod("default/p")
    assert cache.node_info("n").requested["cpu"] == 600
    cache.remove_pod(pod)
    assert cache.node_info("n").requested.get("cpu", 0) == 0


def test_pod_before_its_node_is_kept_but_node_hidden_until_added():
    cache = Cache()
    cache.add_pod(make_pod("early", cpu="1", node_name="late"))
    assert len(cache.snapshot()) == 0
    cache.add_node(make_node("late", cpu="2"))
    assert cache.snapshot().get("late").requested["cpu"] == 1000
    cache.remove_node("late")
    assert len(cache.snapshot()) == 0


def test_finished_pods_release_resources():
    cache = cache_of([make_node("n", cpu="1")])
    running = make_pod("p", cpu="1", node_name="n")
    cache.add_pod(running)
    done = {**running, "status": {"phase": "Succeeded"}}
    cache.update_pod(running, done)
    assert cache.node_info("n").requested.get("cpu", 0) == 0


# ---- preemption ---------------------------------------------------------------------------


def preempt(nodes, placed, pod, **kw):
    cache = cache_of(nodes, placed)
    fw = build_framework(**kw)
    err = fit_error(fw, pod, cache)
    return fw.run_post_filter(err.state, pod, cache.snapshot(), err.diagnosis)


def test_preemption_picks_node_with_least_important_victims_and_reprieves():
    nodes = [make_node("n1", cpu="2"), make_node("n2", cpu="2")]
    placed = [
        make_pod("n1-low", cpu="1", priority=1, node_name="n1"),
        make_pod("n1-mid", cpu="1", priority=50, node_name="n1"),
        make_pod("n2-low", cpu="1", priority=5, node_name="n2"),
        make_pod("n2-lower", cpu="1", priority=2, node_name="n2"),
    ]
    result, st = preempt(nodes, placed, make_pod("vip", cpu="1", priority=100))
    assert st.ok
    # n1 would lose a priority-1 pod, n2 a priority-2 pod: n1's highest victim is lower.
    assert result.nominated_node == "n1"
    assert [v["metadata"]["name"] for v in result.victims] == ["n1-low"]


def test_preemption_needs_several_victims_when_one_is_not_enough():
    nodes = [make_node("n", cpu="3")]
    placed = [make_pod(f"low{i}", cpu="1", priority=i, node_name="n") for i in range(3)]
    result, st = preempt(nodes, placed, make_pod("vip", cpu="2", priority=10))
    assert st.ok
    assert sorted(v["metadata"]["name"] for v in result.victims) == ["low0", "low1"]


@pytest.mark.parametrize(
    ("pod", "want"),
    [
        (
            make_pod("vip", cpu="2", priority=10, preemptionPolicy="Never"),
            "preemption: not eligible due to preemptionPolicy=Never",
        ),
        (
            make_pod("peer", cpu="2", priority=0),
            "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod",
        ),
        (
            make_pod("huge", cpu="8", priority=10),
            "preemption: 0/1 nodes are available: 1 Insufficient cpu",
        ),
    ],
    ids=["policy-never", "no-lower-priority", "does-not-fit-even-empty"],
)
def test_preemption_refusals(pod, want):
    nodes = [make_node("n", cpu="2")]
    placed = [make_pod("low", cpu="1", priority=0, node_name="n")]
    result, st = preempt(nodes, placed, pod)
    assert result is None
    assert st.message == want
    assert st.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)


def test_nominated_pod_reserves_room_against_lower_priority_pods():
    cache = cache_of([make_node("n", cpu="2")])
    vip = make_pod("vip", cpu="2", priority=100)
    fw = build_framework(nominated_pods=lambda node: [vip] if node == "n" else [])
    err = fit_error(fw, make_pod("low", cpu="1", priority=0), cache)
    assert "1 Insufficient cpu" in err.message()
    assert fw.schedule_pod(make_pod("higher", cpu="1", priority=200), cache.snapshot())
