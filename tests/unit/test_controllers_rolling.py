"""RollingUpdate and Recreate arithmetic: pure plans, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.deployment.recreate import plan_recreate_step
from controllers.deployment.rolling import (
    max_surge,
    max_unavailable,
    new_rs_new_replicas,
    plan_old_rss,
    plan_rolling_step,
    resolve_fenceposts,
)
from controllers.objects import format_time


def deployment(replicas=10, surge=None, unavailable=None, strategy="RollingUpdate"):
    spec = {"replicas": replicas, "strategy": {"type": strategy}}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "d", "generation": 1}, "spec": spec}


def rs(name, replicas, available=None, created=0, uid=None, pods=None):
    pods = replicas if pods is None else pods
    return {
        "metadata": {
            "name": name,
            "uid": uid or name,
            "creationTimestamp": format_time(1_700_000_000 + created),
        },
        "spec": {"replicas": replicas},
        "status": {"replicas": pods, "availableReplicas": pods if available is None else available},
    }


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable down
        ("25%", "25%", 1, (1, 0)),
        (0, 0, 5, (0, 1)),  # both zero: unavailable becomes 1
        ("0%", "0%", 5, (0, 1)),
        (2, "50%", 3, (2, 1)),
        (None, None, 4, (1, 1)),  # defaults 25%/25%
        ("100%", "100%", 7, (7, 7)),
    ],
)
def test_resolve_fenceposts(surge, unavailable, desired, expected):
    assert resolve_fenceposts(surge, unavailable, desired) == expected


def test_not_a_percentage_is_rejected():
    with pytest.raises(ValueError):
        resolve_fenceposts("3", 1, 10)


def test_max_unavailable_capped_and_zero_for_recreate():
    assert max_unavailable(deployment(3, 0, 10)) == 3
    assert max_unavailable(deployment(0, 0, 1)) == 0
    assert max_unavailable(deployment(3, strategy="Recreate")) == 0
    assert max_surge(deployment(3, strategy="Recreate")) == 0


@pytest.mark.parametrize(
    ("replicas", "surge", "old", "new", "expected"),
    [
        (10, 0, 10, 0, 0),  # no surge: the new RS cannot grow yet
        (10, 2, 10, 0, 2),
        (10, 2, 5, 0, 7),
        (10, 2, 10, 2, 2),  # budget used up
        (10, 20, 10, 0, 10),  # never beyond replicas
    ],
    ids=["no-surge", "surge-2", "old-half-gone", "budget-used", "capped-at-replicas"],
)
def test_new_rs_new_replicas(replicas, surge, old, new, expected):
    d = deployment(replicas, surge, 1)
    new_rs = rs("new", new, created=10)
    assert new_rs_new_replicas(d, [rs("old", old), new_rs], new_rs) == expected


def test_new_rs_larger_than_desired_is_scaled_down():
    d = deployment(6, 2, 1)
    plan = plan_rolling_step(d, rs("new", 10, created=1), [rs("old", 0)])
    assert plan.as_dict() == {"new": 6}


@pytest.mark.parametrize(
    ("replicas", "surge", "unavail", "olds", "new", "expected"),
    [
        # surge 0, unavailable 0 → 1: one old pod may go.
        (10, 0, 0, [(10, 10)], (0, 0), {"old0": 9}),
        # the floor is reached: nothing to do.
        (10, 0, 1, [(9, 9)], (1, 0), {}),
        # unhealthy old pods go first, without touching availability.
        (10, 0, 3, [(10, 7)], (0, 0), {"old0": 7}),
        # ... but only as far as the unavailability budget allows.
        (10, 0, 0, [(10, 7)], (0, 0), {"old0": 9}),
        # new pods available: old ones shrink by as much.
        (10, 2, 0, [(10, 10)], (2, 2), {"old0": 8}),
        # oldest ReplicaSet first.
        (10, 0, 3, [(5, 5), (5, 5)], (0, 0), {"old0": 2}),
        # an old ReplicaSet just scaled down still reports its doomed pods as available.
        (6, 2, 1, [(3, 5)], (3, 3), {"old0": 2}),
    ],
    ids=[
        "minimum",
        "floor",
        "unhealthy-first",
        "unhealthy-budget",
        "new-available",
        "oldest-first",
        "stale-status-after-scale-down",
    ],
)
def test_plan_old_rss(replicas, surge, unavail, olds, new, expected):
    d = deployment(replicas, surge, unavail)
    old_rss = [rs(f"old{i}", s, a, created=i) for i, (s, a) in enumerate(olds)]
    new_rs = rs("new", new[0], new[1], created=100)
    plan = plan_old_rss(d, [*old_rss, new_rs], old_rss, new_rs)
    assert plan.as_dict() == expected


# -- the invariant -----------------------------------------------------------------------------

int_or_percent = st.one_of(
    st.integers(min_value=0, max_value=5),
    st.sampled_from(["0%", "10%", "25%", "50%", "100%"]),
)


@settings(max_examples=300, deadline=None)
@given(
    replicas=st.integers(min_value=1, max_value=20),
    surge=int_or_percent,
    unavailable=int_or_percent,
    split=st.integers(min_value=0, max_value=20),
    readiness=st.lists(st.integers(min_value=0, max_value=4), min_size=200, max_size=200),
    stale=st.lists(st.booleans(), min_size=200, max_size=200),
)
def test_rolling_update_stays_within_bounds(replicas, surge, unavailable, split, readiness, stale):
    """A rolling update never exceeds replicas + maxSurge pods and never drops below
    replicas - maxUnavailable available pods, and it finishes — also when a step sees the
    ReplicaSet statuses of the step before (their controller has not caught up yet)."""
    d = deployment(replicas, surge, unavailable)
    ceiling = replicas + max_surge(d)
    floor = replicas - max_unavailable(d)
    first = min(split, replicas)
    # Two fully available old ReplicaSets (a rollout already in progress), one new empty one.
    sets = {
        "old0": {"spec": first, "ready": first, "pending": 0, "created": 0},
        "old1": {"spec": replicas - first, "ready": replicas - first, "pending": 0, "created": 1},
        "new": {"spec": 0, "ready": 0, "pending": 0, "created": 2},
    }

    def snapshot(name, status=None):
        s = sets[name]
        ready, pods = status or (s["ready"], s["ready"] + s["pending"])
        return rs(name, s["spec"], ready, created=s["created"], pods=pods)

    def statuses():
        return {n: (s["ready"], s["ready"] + s["pending"]) for n, s in sets.items()}

    previous = statuses()

    def kube_replicaset(name):
        """Pods follow spec at once; deletions take pending (not ready) pods first."""
        s = sets[name]
        pods = s["ready"] + s["pending"]
        if pods < s["spec"]:
            s["pending"] += s["spec"] - pods
        excess = pods - s["spec"]
        if excess > 0:
            drop_pending = min(excess, s["pending"])
            s["pending"] -= drop_pending
            s["ready"] -= excess - drop_pending

    for step, ready_now in enumerate(readiness):
        seen = previous if stale[step] else statuses()
        previous = statuses()
        plan = plan_rolling_step(
            d,
            snapshot("new", seen["new"]),
            [snapshot("old0", seen["old0"]), snapshot("old1", seen["old1"])],
        )
        for scale in plan.scales:
            sets[scale.name]["spec"] = scale.replicas
        assert sum(s["spec"] for s in sets.values()) <= ceiling
        for name in sets:
            kube_replicaset(name)
        pods = sum(s["ready"] + s["pending"] for s in sets.values())
        available = sum(s["ready"] for s in sets.values())
        assert pods <= ceiling, f"step {step}: {pods} pods > {ceiling}"
        assert available >= floor, f"step {step}: {available} available < {floor}"
        # the kubelet: some pending new pods become ready (at least one, so it finishes)
        new = sets["new"]
        promoted = min(new["pending"], max(1, ready_now))
        new["pending"] -= promoted
        new["ready"] += promoted
        if new["ready"] == replicas and sets["old0"]["spec"] == sets["old1"]["spec"] == 0:
            break
    else:
        pytest.fail(f"rollout did not finish: {sets}")


# -- Recreate ----------------------------------------------------------------------------------


def test_recreate_scales_old_down_first():
    d = deployment(3, strategy="Recreate")
    step = plan_recreate_step(d, None, [rs("old", 3)], {})
    assert step.scale_down.as_dict() == {"old": 0}
    assert not step.create_new and not step.scale_up


def test_recreate_waits_for_old_pods_to_go():
    d = deployment(3, strategy="Recreate")
    old = rs("old", 0, pods=0)
    running = {"old": [{"status": {"phase": "Running"}}]}
    assert plan_recreate_step(d, None, [old], running).wait_for_old_pods
    done = {"old": [{"status": {"phase": "Succeeded"}}]}
    step = plan_recreate_step(d, None, [old], done)
    assert step.create_new and not step.wait_for_old_pods


def test_recreate_scales_new_up_when_old_gone():
    d = deployment(3, strategy="Recreate")
    step = plan_recreate_step(d, rs("new", 0, created=5), [rs("old", 0, pods=0)], {})
    assert step.scale_up.as_dict() == {"new": 3}
