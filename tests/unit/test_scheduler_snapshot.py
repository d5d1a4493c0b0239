"""The fast paths keep the slow paths' answers: incremental snapshot, cluster index, plugin
skips, chunked filtering, per-node score memo."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cache import Cache, NodeInfo, Snapshot
from scheduler.framework import FILTERS, CycleState, FitError
from scheduler.memo import MAX_ENTRIES, NodeMemo
from scheduler.plugins import build_framework
from scheduler.plugins.balanced_allocation import BalancedAllocation, balanced_score
from scheduler.plugins.node_resources_fit import (
    NodeResourcesFit,
    least_allocated,
    requested_with,
)
from scheduler.resources import pod_nonzero_requests
from scheduler.testing import make_node, make_pod

NO_SCHEDULE = {"key": "k", "value": "v", "effect": "NoSchedule"}
PREFER = {"key": "soft", "value": "", "effect": "PreferNoSchedule"}
ANTI = {
    "podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}
        ]
    }
}


def cache_of(nodes, placed=()):
    cache = Cache()
    for n in nodes:
        cache.add_node(n)
    for p in placed:
        cache.add_pod(p)
    return cache


# ---- incremental snapshot ------------------------------------------------------------------


def test_snapshot_is_reused_until_the_node_set_changes():
    cache = cache_of([make_node("a"), make_node("b")])
    first = cache.snapshot()
    cache.add_pod(make_pod("p", cpu="1", node_name="a"))
    cache.update_node(make_node("b", cpu="8"))
    again = cache.snapshot()
    assert again is first  # pod and node updates reach it through the shared NodeInfos
    assert again.get("a").requested["cpu"] == 1000
    assert again.get("b").allocatable["cpu"] == 8000
    cache.add_node(make_node("c"))
    third = cache.snapshot()
    assert third is not first
    assert [n.name for n in third.nodes] == ["a", "b", "c"]
    assert [n.name for n in first.nodes] == ["a", "b"]  # a held snapshot keeps its node set
    cache.remove_node("a")
    assert [n.name for n in cache.snapshot().nodes] == ["b", "c"]


def test_memo_is_emptied_with_every_change():
    info = NodeInfo(make_node("n"))
    for change in (
        lambda: info.add_pod(make_pod("p", cpu="1")),
        lambda: info.set_node(make_node("n", cpu="9")),
        lambda: info.remove_pod("default/p"),
    ):
        info.memo[0] = "remembered"
        change()
        assert info.memo == {}
    info.memo[0] = "remembered"
    clone = info.clone()
    assert clone.memo == {}
    clone.add_pod(make_pod("q"))
    assert info.memo == {0: "remembered"}  # a clone's changes leave the original alone


def test_confirming_an_assumed_pod_swaps_the_object_and_keeps_the_sums():
    cache = cache_of([make_node("n", cpu="2")])
    pod = make_pod("p", cpu="500m")
    assumed = cache.assume_pod(pod, "n")
    bound = {**assumed, "metadata": {**assumed["metadata"], "resourceVersion": "7"}}
    cache.add_pod(bound)
    info = cache.node_info("n")
    assert info.pods["default/p"].pod is bound
    assert info.requested["cpu"] == 500
    resized = make_pod("p", cpu="1", node_name="n")
    cache.add_pod(resized)  # requests changed: counted again, not just swapped
    assert info.requested["cpu"] == 1000


# ---- the cluster index ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "fact", "want"),
    [
        (lambda c: None, "any_hard_taints", False),
        (lambda c: c.update_node(make_node("b", taints=[NO_SCHEDULE])), "any_hard_taints", True),
        (lambda c: c.update_node(make_node("b", taints=[PREFER])), "any_hard_taints", False),
        (lambda c: c.update_node(make_node("b", taints=[PREFER])), "any_prefer_taints", True),
        (lambda c: c.update_node(make_node("b", unschedulable=True)), "any_unschedulable", True),
        (lambda c: c.update_node(make_node("b", images={"x:1": 5})), "any_images", True),
    ],
    ids=["none", "hard-taint", "soft-is-not-hard", "soft-taint", "cordon", "images"],
)
def test_cluster_facts_follow_node_updates(change, fact, want):
    cache = cache_of([make_node("a"), make_node("b")])
    change(cache)
    assert getattr(cache.snapshot(), fact) is want
    cache.remove_node("b")
    assert getattr(cache.snapshot(), fact) is False


def test_affinity_index_follows_pods_and_matches_a_rebuilt_snapshot():
    cache = cache_of([make_node("a"), make_node("b")])
    db = make_pod("db", labels={"app": "db"}, node_name="a", affinity=ANTI)
    cache.add_pod(db)
    cache.add_pod(make_pod("plain", node_name="b"))
    live = cache.snapshot()
    rebuilt = Snapshot(list(live.nodes))
    assert [(n.name, p["metadata"]["name"]) for n, p in live.pods_with_affinity()] == [("a", "db")]
    assert list(live.pods_with_affinity()) == list(rebuilt.pods_with_affinity())
    cache.remove_pod(db)
    assert list(cache.snapshot().pods_with_affinity()) == []


def test_with_node_updates_the_facts_for_the_replacement_only():
    cache = cache_of([make_node("a", taints=[NO_SCHEDULE]), make_node("b")])
    snap = cache.snapshot()
    trial = snap.with_node(NodeInfo(make_node("a")))
    assert not trial.any_hard_taints
    assert snap.any_hard_taints  # the original is untouched
    assert trial.get("a") is not snap.get("a") and trial.get("b") is snap.get("b")


# ---- plugin skips -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "pod", "want"),
    [
        ([make_node("a")], make_pod("p", cpu="1"), ["NodeResourcesFit"]),
        (
            [make_node("a", taints=[NO_SCHEDULE])],
            make_pod("p"),
            ["TaintToleration", "NodeResourcesFit"],
        ),
        (
            [make_node("a", unschedulable=True)],
            make_pod("p"),
            ["NodeUnschedulable", "NodeResourcesFit"],
        ),
        (
            [make_node("a")],
            make_pod("p", node_name="a", nodeSelector={"x": "y"}),
            ["NodeName", "NodeAffinity", "NodeResourcesFit"],
        ),
        (
            [make_node("a", unschedulable=True)],
            make_pod(
                "p",
                tolerations=[
                    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists"},
                ],
            ),
            ["NodeResourcesFit"],
        ),
    ],
    ids=["plain", "tainted-node", "cordoned-node", "named-and-selector", "tolerates-cordon"],
)
def test_only_the_filters_a_pod_needs_run(nodes, pod, want):
    fw = build_framework()
    state = CycleState()
    assert fw.run_pre_filter(state, pod, cache_of(nodes).snapshot()).ok
    assert [p.name for p in state[FILTERS]] == want


# ---- chunked filtering = one node at a time -----------------------------------------------

node_specs = st.lists(
    st.tuples(
        st.sampled_from(["1", "2", "4"]),  # cpu
        st.sampled_from(["a", "b"]),  # pool label
        st.booleans(),  # tainted
        st.booleans(),  # cordoned
    ),
    min_size=1,
    max_size=160,
)
pod_specs = st.lists(
    st.tuples(
        st.sampled_from(["100m", "900m", "1500m", "3"]),
        st.sampled_from([None, "a", "b"]),  # nodeSelector pool
        st.booleans(),  # tolerates the taint
    ),
    min_size=1,
    max_size=25,
)


def _cluster(spec):
    return [
        make_node(
            f"n{i:03}",
            cpu=cpu,
            labels={"pool": pool},
            taints=[NO_SCHEDULE] if tainted else None,
            unschedulable=cordoned,
        )
        for i, (cpu, pool, tainted, cordoned) in enumerate(spec)
    ]


def _pod(i, spec):
    cpu, pool, tolerates = spec
    kw = {}
    if pool:
        kw["nodeSelector"] = {"pool": pool}
    if tolerates:
        kw["tolerations"] = [{"key": "k", "operator": "Exists"}]
    return make_pod(f"p{i}", cpu=cpu, **kw)


def _run(fw, cache, pods):
    """(node, evaluated, feasible) or the FitError message per pod, assuming each placement."""
    out = []
    for i, spec in enumerate(pods):
        pod = _pod(i, spec)
        try:
            result = fw.schedule_pod(pod, cache.snapshot())
        except FitError as err:
            out.append((err.message(), sorted(err.diagnosis.unschedulable_plugins)))
            continue
        out.append((result.node_name, result.evaluated_nodes, result.feasible_nodes))
        cache.assume_pod(pod, result.node_name)
    return out


@settings(max_examples=60, deadline=None)
@given(nodes=node_specs, pods=pod_specs, pct=st.sampled_from([0, 5, 30, 100]))
def test_chunked_filtering_matches_one_by_one(nodes, pods, pct):
    chunked = build_framework(percentage_of_nodes_to_score=pct, rng=random.Random(3))
    # A nominated-pods callback forces the one-node-at-a-time walk.
    one_by_one = build_framework(
        percentage_of_nodes_to_score=pct, rng=random.Random(3), nominated_pods=lambda _: ()
    )
    assert _run(chunked, cache_of(_cluster(nodes)), pods) == _run(
        one_by_one, cache_of(_cluster(nodes)), pods
    )
    assert chunked._next_start == one_by_one._next_start


# ---- per-node score memo ------------------------------------------------------------------


def test_memo_recomputes_only_changed_nodes():
    nodes = [NodeInfo(make_node(f"n{i}")) for i in range(4)]
    calls: list[list[str]] = []

    def compute(some):
        calls.append([n.name for n in some])
        return [len(n.pods) for n in some]

    memo = NodeMemo()
    assert memo.results("shape", nodes, compute) == [0, 0, 0, 0]
    nodes[2].add_pod(make_pod("p"))
    assert memo.results("shape", nodes, compute) == [0, 0, 1, 0]
    assert memo.results("other", nodes[:1], compute) == [0]
    assert calls == [["n0", "n1", "n2", "n3"], ["n2"], ["n0"]]


def test_memo_forgets_the_least_recent_shape():
    node = NodeInfo(make_node("n"))
    calls = []
    memo = NodeMemo(max_shapes=2)
    for shape in ("a", "b", "a", "c", "a", "b"):
        memo.results(shape, [node], lambda some, s=shape: calls.append(s) or [0])
    assert calls == ["a", "b", "c", "b"]


def test_memo_holds_a_bounded_number_of_results_per_node():
    node = NodeInfo(make_node("n"))
    memo = NodeMemo(max_shapes=MAX_ENTRIES * 2)
    for shape in range(MAX_ENTRIES * 2):
        memo.results(shape, [node], lambda some: [0])
    assert 0 < len(node.memo) <= MAX_ENTRIES


def test_memoised_fits_and_scores_equal_fresh_ones_as_nodes_fill():
    cache = cache_of([make_node(f"n{i}", cpu=str(1 + i), memory=f"{2 + i}Gi") for i in range(5)])
    fit, balanced = NodeResourcesFit(), BalancedAllocation()
    names = ["NodeResourcesFit", "NodeResourcesBalancedAllocation"]
    framework = build_framework(names)  # kept across pods: its score memo fills up
    rng = random.Random(7)
    rejected = 0
    for i in range(40):
        pod = make_pod(f"p{i}", cpu=rng.choice(["100m", "250m"]), memory="256Mi")
        snapshot = cache.snapshot()
        nodes = snapshot.nodes
        state = CycleState()
        nonzero = pod_nonzero_requests(pod)
        want_fit = [least_allocated(requested_with(n, nonzero), n.allocatable) for n in nodes]
        want_bal = [balanced_score(requested_with(n, nonzero), n.allocatable) for n in nodes]
        assert fit.score_nodes(state, pod, nodes) == want_fit
        assert balanced.score_nodes(state, pod, nodes) == want_bal
        fresh = build_framework(names).run_score(CycleState(), pod, nodes, snapshot)
        assert framework.run_score(CycleState(), pod, nodes, snapshot) == fresh
        statuses = fit.filter_nodes(state, pod, nodes)
        assert statuses == [NodeResourcesFit().filter(CycleState(), pod, n) for n in nodes]
        rejected += sum(not st.ok for st in statuses)
        cache.assume_pod(pod, rng.choice(nodes).name)
    assert rejected  # the small nodes filled up
