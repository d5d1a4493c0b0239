"""The replica calculator against the Kubernetes documentation's algorithm and worked examples
(and cases of Kubernetes' ``replica_calculator_test.go``, recomputed by hand)."""

from __future__ import annotations

import math

import pytest

from controllers.hpa.replicas import (
    MetricsError,
    PodSample,
    Readiness,
    Tolerance,
    group_pods,
    resource_average_replicas,
    resource_utilization_replicas,
)
from controllers.objects import format_time

NOW = 1_000_000.0
LONG_AGO = format_time(NOW - 3600)


def pod(
    name: str,
    *,
    cpu: str | None = "1",
    memory: str | None = None,
    ready: bool | None = True,
    phase: str = "Running",
    started: float = NOW - 3600,
    transition: float = NOW - 3600,
    deleting: bool = False,
) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    p: dict = {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"containers": [{"name": "app", "resources": {"requests": requests}}]},
        "status": {"phase": phase, "startTime": format_time(started)},
    }
    if ready is not None:
        p["status"]["conditions"] = [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "lastTransitionTime": format_time(transition),
            }
        ]
    if deleting:
        p["metadata"]["deletionTimestamp"] = LONG_AGO
    return p


def samples(values: dict[str, int], at: float = NOW - 5) -> dict[str, PodSample]:
    return {n: PodSample(v, at, 15.0) for n, v in values.items()}


# Each case: current replicas, target %, pods (name → ready?), measured millicores per pod,
# expected replicas, expected utilization. Requests are 1 cpu (1000m) per pod.
UTILIZATION_CASES = [
    # docs: 200m against a 100m target doubles the replicas (ratio 2.0)
    ("docs double", 2, 10, {"a": True, "b": True}, {"a": 200, "b": 200}, 4, 20),
    # docs: 50m against 100m halves them (ratio 0.5)
    ("docs halve", 4, 10, dict.fromkeys("abcd", True), dict.fromkeys("abcd", 50), 2, 5),
    # docs: within the 0.1 tolerance nothing changes (ratio 1.05)
    ("tolerance up", 3, 50, dict.fromkeys("abc", True), dict.fromkeys("abc", 525), 3, 52),
    ("tolerance down", 3, 50, dict.fromkeys("abc", True), dict.fromkeys("abc", 460), 3, 46),
    (
        "just past tolerance",
        10,
        50,
        dict.fromkeys("abcdefghij", True),
        dict.fromkeys("abcdefghij", 560),
        12,
        56,
    ),
    # k8s ScaleUpUnreadyLessScale: unready pod counted at 0 when scaling up
    (
        "unready at zero",
        3,
        30,
        {"a": False, "b": True, "c": True},
        {"a": 300, "b": 500, "c": 700},
        4,
        60,
    ),
    # k8s ScaleDownIncludeUnreadyPods: unready pods are left out of a scale-down
    (
        "scale down without unready",
        5,
        50,
        {"a": True, "b": True, "c": True, "d": False, "e": False},
        {"a": 100, "b": 300, "c": 500, "d": 250, "e": 250},
        2,
        30,
    ),
    # missing metric, scale-up: the missing pod counts as 0 → ratio 1900/2000/1.0 = 0.95 → keep
    ("missing flips to tolerance", 2, 100, {"a": True, "b": True}, {"a": 1900}, 2, 190),
    # missing metric, scale-up still: 2 measured at 90% of a 30% target, 1 missing at 0
    ("missing scale up", 3, 30, dict.fromkeys("abc", True), {"a": 900, "b": 900}, 6, 90),
    # missing metric, scale-down: the missing pod counts at 100% of request → 0.8 x 3 → 3
    ("missing scale down damped", 3, 50, dict.fromkeys("abc", True), {"a": 100, "b": 100}, 3, 10),
    # missing metric, scale-down with target above 100%: missing at the target (200%)
    # → (300 + 2000) / 4000 = 57% → 0.285 x 4 → 2
    (
        "missing scale down",
        4,
        200,
        dict.fromkeys("abcd", True),
        {"a": 100, "b": 100, "c": 100},
        2,
        10,
    ),
]


@pytest.mark.parametrize(
    "current,target,readiness,values,want,want_util",
    [c[1:] for c in UTILIZATION_CASES],
    ids=[c[0] for c in UTILIZATION_CASES],
)
def test_utilization(current, target, readiness, values, want, want_util):
    pods = [pod(n, ready=r) for n, r in readiness.items()]
    rec = resource_utilization_replicas(current, target, "cpu", pods, samples(values), NOW)
    assert rec.replicas == want
    assert rec.utilization == want_util


def test_docs_formula_holds_for_ready_pods():
    """desiredReplicas = ceil[currentReplicas × (currentMetricValue / desiredMetricValue)]."""
    for current in range(1, 12):
        for usage in (50, 150, 333, 990):
            pods = [pod(f"p{i}") for i in range(current)]
            vals = {f"p{i}": usage for i in range(current)}
            rec = resource_utilization_replicas(current, 40, "cpu", pods, samples(vals), NOW)
            ratio = (usage / 10) / 40
            expected = current if abs(1 - ratio) <= 0.1 else math.ceil(ratio * current)
            assert rec.replicas == expected, (current, usage)


def test_average_value_memory():
    pods = [pod(n, cpu=None, memory="100Mi") for n in "ab"]
    mib = 1024 * 1024 * 1000  # one MiB in milli-bytes
    rec = resource_average_replicas(
        2, 50 * mib, "memory", pods, samples({"a": 150 * mib, "b": 150 * mib}), NOW
    )
    assert (rec.replicas, rec.average, rec.utilization) == (6, 150 * mib, None)


def test_configurable_tolerance():
    pods = [pod(n) for n in "abcd"]
    vals = samples(dict.fromkeys("abcd", 530))
    assert resource_utilization_replicas(4, 50, "cpu", pods, vals, NOW).replicas == 4
    tight = Tolerance(up=0.01, down=0.01)
    assert (
        resource_utilization_replicas(4, 50, "cpu", pods, vals, NOW, tolerance=tight).replicas == 5
    )


@pytest.mark.parametrize(
    "pods,error",
    [
        ([], "no pods returned by selector"),
        ([pod("a", cpu=None)], "missing request for cpu in container app of Pod a"),
    ],
    ids=["no pods", "no cpu request"],
)
def test_errors(pods, error):
    with pytest.raises(MetricsError, match=error):
        resource_utilization_replicas(1, 50, "cpu", pods, samples({"a": 100}), NOW)


def test_all_unready_is_an_error():
    pods = [pod("a", ready=False), pod("b", phase="Pending")]
    with pytest.raises(MetricsError, match="did not receive metrics"):
        resource_utilization_replicas(2, 50, "cpu", pods, samples({"a": 1, "b": 1}), NOW)


GROUP_CASES = [
    ("ready", pod("p"), "ready"),
    ("deleting ignored", pod("p", deleting=True), "ignored"),
    ("failed ignored", pod("p", phase="Failed"), "ignored"),
    ("pending unready", pod("p", phase="Pending"), "unready"),
    ("no condition unready", pod("p", ready=None), "unready"),
    # within the CPU initialisation period: a sample older than readiness + window is unready
    ("young, stale sample", pod("p", started=NOW - 60, transition=NOW - 10), "unready"),
    ("young, fresh sample", pod("p", started=NOW - 60, transition=NOW - 40), "ready"),
    ("young, not ready", pod("p", started=NOW - 60, ready=False, transition=NOW - 60), "unready"),
    # past it: unready only if it never became ready within the initial readiness delay
    ("old, flapped", pod("p", ready=False, started=NOW - 900, transition=NOW - 100), "ready"),
    ("old, never ready", pod("p", ready=False, started=NOW - 900, transition=NOW - 890), "unready"),
]


@pytest.mark.parametrize("p,want", [c[1:] for c in GROUP_CASES], ids=[c[0] for c in GROUP_CASES])
def test_group_pods(p, want):
    groups = group_pods([p], samples({"p": 100}), "cpu", NOW, Readiness())
    got = (
        "ready"
        if groups.ready
        else "ignored"
        if groups.ignored
        else "unready"
        if groups.unready
        else "missing"
    )
    assert got == want


def test_memory_ignores_cpu_readiness():
    groups = group_pods([pod("p", ready=None)], samples({"p": 1}), "memory", NOW)
    assert groups.ready == 1
