"""Each plugin on its own: node(s) + pod → fits (with the exact reason) / score."""

from __future__ import annotations

import pytest

from scheduler.cache import Cache
from scheduler.framework import Code, CycleState, Framework, Plugin, Status
from scheduler.plugins.balanced_allocation import BalancedAllocation
from scheduler.plugins.image_locality import ImageLocality
from scheduler.plugins.inter_pod_affinity import InterPodAffinity
from scheduler.plugins.node_affinity import NodeAffinity
from scheduler.plugins.node_name import NodeName
from scheduler.plugins.node_resources_fit import NodeResourcesFit
from scheduler.plugins.node_unschedulable import NodeUnschedulable
from scheduler.plugins.pod_topology_spread import PodTopologySpread
from scheduler.plugins.taint_toleration import TaintToleration
from scheduler.testing import make_node, make_pod

OK = None  # in the tables: "fits"


def _cluster(nodes, placed=()):
    cache = Cache()
    for n in nodes:
        cache.add_node(n)
    for p in placed:
        cache.add_pod(p)
    return cache.snapshot()


def filter_all(plugin: Plugin, pod, nodes, placed=()) -> dict[str, Status]:
    snap = _cluster(nodes, placed)
    fw = Framework([plugin])
    state = CycleState()
    st = fw.run_pre_filter(state, pod, snap)
    if not st.ok:
        return {n.name: st for n in snap.nodes}
    return {n.name: fw.run_filter(state, pod, n) for n in snap.nodes}


def reason(status: Status):
    return None if status.ok else status.message


def score_all(plugin: Plugin, pod, nodes, placed=()) -> dict[str, int]:
    snap = _cluster(nodes, placed)
    return Framework([plugin]).run_score(CycleState(), pod, snap.nodes, snap)


# ---- NodeName / NodeUnschedulable -------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "want"),
    [
        (make_pod("p"), OK),
        (make_pod("p", node_name="n1"), OK),
        (make_pod("p", node_name="other"), "node(s) didn't match the requested node name"),
    ],
    ids=["unset", "same", "other"],
)
def test_node_name(pod, want):
    st = filter_all(NodeName(), pod, [make_node("n1")])["n1"]
    assert reason(st) == want
    if want:
        assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


@pytest.mark.parametrize(
    ("cordoned", "tolerations", "want"),
    [
        (False, [], OK),
        (True, [], "node(s) were unschedulable"),
        (True, [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}], OK),
        (True, [{"operator": "Exists", "effect": "NoSchedule"}], OK),
        (True, [{"operator": "Exists", "effect": "NoExecute"}], "node(s) were unschedulable"),
    ],
    ids=["schedulable", "cordoned", "tolerates-key", "tolerates-all-noschedule", "wrong-effect"],
)
def test_node_unschedulable(cordoned, tolerations, want):
    pod = make_pod("p", tolerations=tolerations)
    st = filter_all(NodeUnschedulable(), pod, [make_node("n", unschedulable=cordoned)])["n"]
    assert reason(st) == want


# ---- NodeResourcesFit -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "placed", "want"),
    [
        (make_pod("p", cpu="1", memory="1Gi"), [], OK),
        (make_pod("p", cpu="1"), [make_pod("q", cpu="1", node_name="n")], OK),
        (make_pod("p", cpu="2"), [make_pod("q", cpu="1500m", node_name="n")], "Insufficient cpu"),
        (make_pod("p", memory="5Gi"), [], "Insufficient memory"),
        (make_pod("p", cpu="3", memory="5Gi"), [], "Insufficient cpu, Insufficient memory"),
        (make_pod("p"), [make_pod(f"q{i}", node_name="n") for i in range(3)], "Too many pods"),
        (
            make_pod(
                "p",
                containers=[
                    {"name": "c", "image": "x", "resources": {"requests": {"example.com/gpu": "1"}}}
                ],
            ),
            [],
            "Insufficient example.com/gpu",
        ),
        (
            make_pod(
                "p",
                containers=[
                    {
                        "name": "c",
                        "image": "x",
                        "resources": {"requests": {"ephemeral-storage": "2Gi"}},
                    }
                ],
            ),
            [],
            "Insufficient ephemeral-storage",
        ),
        (
            make_pod(
                "p",
                initContainers=[
                    {"name": "i", "image": "x", "resources": {"requests": {"cpu": "2500m"}}}
                ],
            ),
            [],
            "Insufficient cpu",
        ),
    ],
    ids=[
        "fits-empty",
        "fits-exactly",
        "cpu-used-up",
        "memory",
        "both",
        "pod-count",
        "extended-resource",
        "ephemeral-storage",
        "init-container-counted",
    ],
)
def test_node_resources_fit(pod, placed, want):
    node = make_node("n", cpu="2", memory="4Gi", pods=3, extra={"ephemeral-storage": "1Gi"})
    st = filter_all(NodeResourcesFit(), pod, [node], placed)["n"]
    assert reason(st) == want
    if want:
        assert st.code == Code.UNSCHEDULABLE


def test_least_allocated_prefers_emptier_node():
    nodes = [make_node("busy", cpu="4", memory="8Gi"), make_node("idle", cpu="4", memory="8Gi")]
    placed = [make_pod("q", cpu="2", memory="4Gi", node_name="busy")]
    scores = score_all(NodeResourcesFit(), make_pod("p", cpu="1", memory="1Gi"), nodes, placed)
    # idle: (3/4 cpu free → 75, 7/8 memory free → 87) mean 81; busy: (25, 37) mean 31.
    assert scores == {"busy": 31, "idle": 81}


def test_balanced_allocation_prefers_even_use():
    nodes = [
        make_node("cpu-heavy", cpu="4", memory="8Gi"),
        make_node("even", cpu="4", memory="8Gi"),
    ]
    placed = [make_pod("q", cpu="3", memory="1Gi", node_name="cpu-heavy")]
    scores = score_all(BalancedAllocation(), make_pod("p", cpu="1", memory="2Gi"), nodes, placed)
    assert scores["even"] == 100
    assert scores["cpu-heavy"] < scores["even"]


# ---- NodeAffinity -------------------------------------------------------------------------


def _req(*terms):
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def _expr(key, op, *values):
    e = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return {"matchExpressions": [e]}


AFFINITY_ERR = "node(s) didn't match Pod's node affinity/selector"


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ({}, OK),
        ({"nodeSelector": {"zone": "a"}}, OK),
        ({"nodeSelector": {"zone": "b"}}, AFFINITY_ERR),
        ({"affinity": _req(_expr("zone", "In", "a", "b"))}, OK),
        ({"affinity": _req(_expr("zone", "NotIn", "a"))}, AFFINITY_ERR),
        ({"affinity": _req(_expr("gpu", "DoesNotExist"))}, OK),
        ({"affinity": _req(_expr("zone", "Exists"))}, OK),
        ({"affinity": _req(_expr("cores", "Gt", "8"))}, OK),
        ({"affinity": _req(_expr("cores", "Lt", "8"))}, AFFINITY_ERR),
        ({"affinity": _req(_expr("zone", "In", "b"), _expr("cores", "Gt", "1"))}, OK),
        ({"affinity": _req({})}, AFFINITY_ERR),
        (
            {
                "affinity": _req(
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}
                )
            },
            OK,
        ),
        ({"nodeSelector": {"zone": "a"}, "affinity": _req(_expr("zone", "In", "b"))}, AFFINITY_ERR),
    ],
    ids=[
        "none",
        "selector-match",
        "selector-miss",
        "in",
        "notin",
        "doesnotexist",
        "exists",
        "gt",
        "lt",
        "terms-are-ored",
        "empty-term-matches-nothing",
        "match-fields",
        "selector-and-affinity-anded",
    ],
)
def test_node_affinity_filter(spec, want):
    node = make_node("n", labels={"zone": "a", "cores": "16"})
    st = filter_all(NodeAffinity(), make_pod("p", **spec), [node])["n"]
    assert reason(st) == want


def test_node_affinity_preferred_score():
    pref = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 80, "preference": _expr("zone", "In", "a")},
                {"weight": 20, "preference": _expr("disk", "In", "ssd")},
            ]
        }
    }
    nodes = [
        make_node("a-ssd", labels={"zone": "a", "disk": "ssd"}),
        make_node("a", labels={"zone": "a"}),
        make_node("ssd", labels={"disk": "ssd"}),
        make_node("none"),
    ]
    scores = score_all(NodeAffinity(), make_pod("p", affinity=pref), nodes)
    assert scores == {"a-ssd": 100, "a": 80, "ssd": 20, "none": 0}


# ---- TaintToleration ---------------------------------------------------------------------


def _taint(key, value="", effect="NoSchedule"):
    return {"key": key, "value": value, "effect": effect}


@pytest.mark.parametrize(
    ("taints", "tolerations", "want"),
    [
        ([], [], OK),
        ([_taint("k", "v")], [], "node(s) had untolerated taint {k: v}"),
        (
            [_taint("dedicated", "gpu", "NoExecute")],
            [],
            "node(s) had untolerated taint {dedicated: gpu}",
        ),
        ([_taint("k", "v", "PreferNoSchedule")], [], OK),
        ([_taint("k", "v")], [{"key": "k", "operator": "Equal", "value": "v"}], OK),
        ([_taint("k", "v")], [{"key": "k", "value": "w"}], "node(s) had untolerated taint {k: v}"),
        ([_taint("k", "v")], [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}], OK),
        (
            [_taint("k", "v")],
            [{"key": "k", "operator": "Exists", "effect": "NoExecute"}],
            "node(s) had untolerated taint {k: v}",
        ),
        ([_taint("k", "v"), _taint("j")], [{"operator": "Exists"}], OK),
        (
            [_taint("k", "v"), _taint("j")],
            [{"key": "k", "operator": "Exists"}],
            "node(s) had untolerated taint {j: }",
        ),
    ],
    ids=[
        "no-taints",
        "untolerated",
        "noexecute",
        "prefer-is-soft",
        "equal",
        "wrong-value",
        "exists-effect",
        "wrong-effect",
        "tolerate-everything",
        "second-taint-untolerated",
    ],
)
def test_taint_toleration_filter(taints, tolerations, want):
    pod = make_pod("p", tolerations=tolerations)
    st = filter_all(TaintToleration(), pod, [make_node("n", taints=taints)])["n"]
    assert reason(st) == want


def test_taint_toleration_score_counts_prefer_no_schedule():
    nodes = [
        make_node("clean"),
        make_node("one", taints=[_taint("a", effect="PreferNoSchedule")]),
        make_node(
            "two",
            taints=[_taint("a", effect="PreferNoSchedule"), _taint("b", effect="PreferNoSchedule")],
        ),
    ]
    assert score_all(TaintToleration(), make_pod("p"), nodes) == {"clean": 100, "one": 50, "two": 0}
    tolerant = make_pod("p", tolerations=[{"key": "a", "operator": "Exists"}])
    assert score_all(TaintToleration(), tolerant, nodes) == {"clean": 100, "one": 100, "two": 0}


# ---- PodTopologySpread ------------------------------------------------------------------

SPREAD_ERR = "node(s) didn't match pod topology spread constraints"


def _spread(max_skew=1, key="zone", when="DoNotSchedule", **extra):
    return {
        "maxSkew": max_skew,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app": "web"}},
        **extra,
    }


def _zones():
    return [
        make_node("a1", labels={"zone": "a"}),
        make_node("a2", labels={"zone": "a"}),
        make_node("b1", labels={"zone": "b"}),
        make_node("nolabel"),
    ]


def _web(name, node, ns="default", app="web"):
    return make_pod(name, node_name=node, namespace=ns, labels={"app": app})


@pytest.mark.parametrize(
    ("placed", "constraint", "want"),
    [
        ([], _spread(), {"a1": OK, "a2": OK, "b1": OK}),
        ([_web("w1", "a1")], _spread(), {"a1": SPREAD_ERR, "a2": SPREAD_ERR, "b1": OK}),
        ([_web("w1", "a1")], _spread(max_skew=2), {"a1": OK, "a2": OK, "b1": OK}),
        ([_web("w1", "a1"), _web("w2", "b1")], _spread(), {"a1": OK, "a2": OK, "b1": OK}),
        ([_web("w1", "a1", app="db")], _spread(), {"a1": OK, "a2": OK, "b1": OK}),
        ([_web("w1", "a1", ns="other")], _spread(), {"a1": OK, "a2": OK, "b1": OK}),
        (
            [_web("w1", "a1")],
            _spread(key="kubernetes.io/hostname"),
            {"a1": SPREAD_ERR, "a2": OK, "b1": OK},
        ),
        (
            [_web("w1", "a1"), _web("w2", "b1")],
            _spread(minDomains=3),
            {"a1": SPREAD_ERR, "a2": SPREAD_ERR, "b1": SPREAD_ERR},
        ),
    ],
    ids=[
        "empty",
        "skew-exceeded",
        "bigger-skew",
        "balanced",
        "other-app-ignored",
        "other-namespace-ignored",
        "per-hostname",
        "min-domains-forces-zero-minimum",
    ],
)
def test_topology_spread_filter(placed, constraint, want):
    pod = make_pod("new", labels={"app": "web"}, topologySpreadConstraints=[constraint])
    got = {k: reason(v) for k, v in filter_all(PodTopologySpread(), pod, _zones(), placed).items()}
    expected_nolabel = SPREAD_ERR if constraint["topologyKey"] == "zone" else OK
    if expected_nolabel:
        expected_nolabel += " (missing required label)"
    assert got == {**want, "nolabel": expected_nolabel}


def test_topology_spread_honors_node_affinity_for_domains():
    # Only zone a is eligible for this pod, so zone b's emptiness does not count.
    pod = make_pod(
        "new",
        labels={"app": "web"},
        nodeSelector={"zone": "a"},
        topologySpreadConstraints=[_spread()],
    )
    got = filter_all(PodTopologySpread(), pod, _zones()[:3], [_web("w1", "a1")])
    assert reason(got["a2"]) is None


def test_topology_spread_score_prefers_emptier_domain():
    pod = make_pod(
        "new", labels={"app": "web"}, topologySpreadConstraints=[_spread(when="ScheduleAnyway")]
    )
    placed = [_web("w1", "a1"), _web("w2", "a2")]
    scores = score_all(PodTopologySpread(), pod, _zones(), placed)
    assert scores["b1"] == 100
    assert scores["a1"] == scores["a2"] < scores["b1"]
    assert scores["nolabel"] == 0


# ---- InterPodAffinity -------------------------------------------------------------------


def _term(app, key="kubernetes.io/hostname", **extra):
    return {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key, **extra}


def _aff(kind, *terms):
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


ANTI_ERR = "node(s) didn't match pod anti-affinity rules"
AFF_ERR = "node(s) didn't match pod affinity rules"
EXISTING_ERR = "node(s) didn't satisfy existing pods anti-affinity rules"


@pytest.mark.parametrize(
    ("pod", "placed", "want"),
    [
        (
            make_pod("p", labels={"app": "web"}, affinity=_aff("podAntiAffinity", _term("web"))),
            [_web("w1", "a1")],
            {"a1": ANTI_ERR, "a2": OK, "b1": OK},
        ),
        (
            make_pod(
                "p",
                labels={"app": "web"},
                affinity=_aff("podAntiAffinity", _term("web", key="zone")),
            ),
            [_web("w1", "a1")],
            {"a1": ANTI_ERR, "a2": ANTI_ERR, "b1": OK},
        ),
        (
            make_pod("p", affinity=_aff("podAffinity", _term("db", key="zone"))),
            [_web("d1", "b1", app="db")],
            {"a1": AFF_ERR, "a2": AFF_ERR, "b1": OK},
        ),
        (
            make_pod("p", affinity=_aff("podAffinity", _term("db"))),
            [],
            {"a1": AFF_ERR, "a2": AFF_ERR, "b1": AFF_ERR},
        ),
        (
            make_pod("p", labels={"app": "db"}, affinity=_aff("podAffinity", _term("db"))),
            [],
            {"a1": OK, "a2": OK, "b1": OK},
        ),
        (
            make_pod("p", labels={"app": "web"}),
            [
                make_pod(
                    "guard",
                    node_name="a1",
                    labels={"app": "x"},
                    affinity=_aff("podAntiAffinity", _term("web", key="zone")),
                )
            ],
            {"a1": EXISTING_ERR, "a2": EXISTING_ERR, "b1": OK},
        ),
        (
            make_pod("p", labels={"app": "web"}, affinity=_aff("podAntiAffinity", _term("web"))),
            [_web("w1", "a1", ns="other")],
            {"a1": OK, "a2": OK, "b1": OK},
        ),
        (
            make_pod(
                "p",
                labels={"app": "web"},
                affinity=_aff("podAntiAffinity", _term("web", namespaces=["other"])),
            ),
            [_web("w1", "a1", ns="other")],
            {"a1": ANTI_ERR, "a2": OK, "b1": OK},
        ),
    ],
    ids=[
        "anti-same-host",
        "anti-same-zone",
        "affinity-zone",
        "affinity-no-match-anywhere",
        "affinity-first-of-group",
        "existing-pods-anti",
        "anti-other-namespace-ignored",
        "anti-listed-namespace",
    ],
)
def test_inter_pod_affinity_filter(pod, placed, want):
    got = filter_all(InterPodAffinity(), pod, _zones()[:3], placed)
    assert {k: reason(v) for k, v in got.items()} == want


def test_inter_pod_affinity_codes():
    pod = make_pod("p", affinity=_aff("podAffinity", _term("db")))
    assert filter_all(InterPodAffinity(), pod, _zones()[:1])["a1"].code == (
        Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    )
    anti = make_pod("p", labels={"app": "web"}, affinity=_aff("podAntiAffinity", _term("web")))
    st = filter_all(InterPodAffinity(), anti, _zones()[:1], [_web("w", "a1")])["a1"]
    assert st.code == Code.UNSCHEDULABLE


def test_inter_pod_affinity_preferred_score():
    pref = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": _term("web")}
            ]
        }
    }
    pod = make_pod("p", labels={"app": "web"}, affinity=pref)
    scores = score_all(InterPodAffinity(), pod, _zones()[:3], [_web("w1", "a1")])
    assert scores == {"a1": 0, "a2": 100, "b1": 100}


# ---- ImageLocality ------------------------------------------------------------------------


def test_image_locality_prefers_node_with_big_image():
    mb = 1024 * 1024
    nodes = [
        make_node("has", images={"app:1": 500 * mb}),
        make_node("small", images={"app:1": 10 * mb}),
        make_node("none"),
    ]
    scores = score_all(ImageLocality(), make_pod("p", image="app:1"), nodes)
    assert scores["none"] == 0
    assert scores["has"] > scores["small"] == 0


def test_image_name_normalised_with_latest():
    nodes = [make_node("has", images={"app:latest": 900 * 1024 * 1024}), make_node("none")]
    scores = score_all(ImageLocality(), make_pod("p", image="app"), nodes)
    assert scores["has"] > 0 == scores["none"]
