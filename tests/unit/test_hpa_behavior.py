"""Stabilisation windows and scaling policies, against the worked examples of the Kubernetes
HPA documentation ("Configurable scaling behavior"), stepping a fake clock."""

from __future__ import annotations

import pytest

from controllers.hpa import behavior as b

T0 = 10_000.0


def rules(spec: dict | None, window: float = 300.0) -> tuple[b.Rules, b.Rules]:
    return b.default_rules(spec, window)


def step(
    h: b.History, current: int, desired: int, spec: dict | None, now: float, lo=1, hi=1000
) -> b.Decision:
    up, down = rules(spec)
    d = b.normalize_with_behavior(h, current, desired, lo, hi, up, down, now)
    if d.replicas != current:
        b.record_scale(h, current, d.replicas, up, down, now)
    return d


def test_docs_scale_down_policies_pods_and_percent():
    """80 replicas scaled to 10 with {Pods 4/60s, Percent 10/60s}: 8 go first (10 % > 4), then
    10 % of 72 rounded up (8), ...; below 40 replicas the Pods policy (4) allows more."""
    spec = {
        "scaleDown": {
            "stabilizationWindowSeconds": 0,
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 60},
                {"type": "Percent", "value": 10, "periodSeconds": 60},
            ],
        }
    }
    h, current, now, seen = b.History(), 80, T0, []
    while current > 10:
        current = step(h, current, 10, spec, now).replicas
        seen.append(current)
        now += 61
    assert seen[:3] == [72, 64, 57]
    steps = [a - c for a, c in zip([80, *seen], seen, strict=False)]
    assert all(s == 4 for s, r in zip(steps, [80, *seen], strict=False) if r < 40 and r - 4 >= 10)
    assert seen[-1] == 10


def test_docs_period_limits_changes_within_it():
    """Within one period the replicas already removed count against the policy."""
    spec = {
        "scaleDown": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
        }
    }
    h = b.History()
    assert step(h, 80, 10, spec, T0).replicas == 72
    d = step(h, 72, 10, spec, T0 + 30)
    assert (d.replicas, d.limited_reason) == (72, "ScaleDownLimit")
    assert step(h, 72, 10, spec, T0 + 61).replicas == 64


def test_docs_scale_up_900_percent():
    """{Percent 900/60s}: 1 → 10 → 100 in two periods."""
    spec = {"scaleUp": {"policies": [{"type": "Percent", "value": 900, "periodSeconds": 60}]}}
    h = b.History()
    assert step(h, 1, 500, spec, T0).replicas == 10
    assert step(h, 10, 500, spec, T0 + 61).replicas == 100


def test_default_scale_up_is_max_of_4_pods_and_100_percent():
    h = b.History()
    assert step(h, 1, 50, {}, T0).replicas == 5  # 1 + 4 > 2 x 1
    assert step(h, 5, 50, {}, T0 + 16).replicas == 10  # 2 x 5 > 5 + 4
    d = step(h, 10, 50, {}, T0 + 20)
    assert (d.replicas, d.limited, d.limited_reason) == (10, True, "ScaleUpLimit")


def test_select_policy_min():
    spec = {
        "scaleUp": {
            "selectPolicy": "Min",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        }
    }
    assert step(b.History(), 10, 50, spec, T0).replicas == 14


def test_disabled_direction_never_moves():
    spec = {"scaleDown": {"selectPolicy": "Disabled"}}
    h = b.History()
    for i in range(5):
        assert step(h, 8, 1, spec, T0 + i * 400).replicas == 8


def test_docs_down_stabilization_window_takes_highest_recent():
    """stabilizationWindowSeconds 300: a drop waits until the higher recommendations age out."""
    spec = {"scaleDown": {"stabilizationWindowSeconds": 300}}
    h = b.History()
    b.record_initial(h, 6, T0)
    d = step(h, 6, 2, spec, T0 + 10)
    assert (d.replicas, d.able_reason) == (6, "ScaleDownStabilized")
    assert step(h, 6, 4, spec, T0 + 200).replicas == 6
    assert step(h, 6, 2, spec, T0 + 305).replicas == 4  # the 6 expired; the 4 at +200 remains
    assert step(h, 4, 2, spec, T0 + 510).replicas == 2


def test_up_stabilization_window_takes_lowest_recent():
    spec = {"scaleUp": {"stabilizationWindowSeconds": 60}}
    h = b.History()
    assert step(h, 2, 2, spec, T0).replicas == 2
    d = step(h, 2, 8, spec, T0 + 10)
    assert (d.replicas, d.able_reason) == (2, "ScaleUpStabilized")
    assert step(h, 2, 8, spec, T0 + 61).replicas == 6  # 8, limited by 2 + 4 pods


@pytest.mark.parametrize(
    "current,desired,lo,hi,want,reason,limited",
    [
        (3, 3, 1, 10, 3, "DesiredWithinRange", False),
        (3, 20, 1, 10, 6, "ScaleUpLimit", True),  # max(2 x 3, 4) = 6 < max 10
        (8, 20, 1, 10, 10, "TooManyReplicas", True),
        (3, 1, 2, 10, 2, "TooFewReplicas", True),
        (1, 9, 1, 10, 4, "ScaleUpLimit", True),  # at least 4
    ],
    ids=["within", "rate", "max", "min", "floor of four"],
)
def test_without_behavior(current, desired, lo, hi, want, reason, limited):
    d = b.normalize(b.History(), current, desired, lo, hi, T0)
    assert (d.replicas, d.limited_reason, d.limited) == (want, reason, limited)


def test_without_behavior_down_window_is_configurable():
    h = b.History()
    b.record_initial(h, 5, T0)
    assert b.normalize(h, 5, 1, 1, 10, T0 + 5, downscale_window=30).replicas == 5
    assert b.normalize(h, 5, 1, 1, 10, T0 + 40, downscale_window=30).replicas == 1


def test_defaults_fill_only_missing_fields():
    up, down = rules(
        {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 5}]}}
    )
    assert up.stabilization_window == 0 and len(up.policies) == 2
    assert down.stabilization_window == 300
    assert down.policies == (b.Policy("Pods", 1, 5),)
