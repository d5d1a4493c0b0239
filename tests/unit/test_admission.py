"""LimitRange defaults/bounds and ResourceQuota accounting in pod admission (pure)."""

from __future__ import annotations

import pytest

from apiserver.admission import LIMIT_RANGER, admit_pod, apply_limit_ranges, check_quotas, pod_usage
from machinery import errors


def pod(name: str = "p", phase: str | None = None, **resources: dict) -> dict:
    body: dict = {
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"containers": [{"name": "main", "image": "x", "resources": resources}]},
    }
    if phase:
        body["status"] = {"phase": phase}
    return body


def limit_range(**item: dict) -> dict:
    return {"metadata": {"name": "lr"}, "spec": {"limits": [{"type": "Container", **item}]}}


def quota(name: str = "compute", **hard: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"hard": hard}}


def test_limit_range_fills_defaults_and_annotates() -> None:
    p = pod(limits={"memory": "128Mi"})
    apply_limit_ranges(
        p, [limit_range(default={"cpu": "500m", "memory": "256Mi"}, defaultRequest={"cpu": "100m"})]
    )
    res = p["spec"]["containers"][0]["resources"]
    assert res == {
        "limits": {"memory": "128Mi", "cpu": "500m"},
        "requests": {"cpu": "100m"},
    }
    assert p["metadata"]["annotations"][LIMIT_RANGER] == (
        "LimitRanger plugin set: cpu request for container main; cpu limit for container main"
    )


def test_limit_range_without_default_request_uses_the_limit() -> None:
    p = pod()
    apply_limit_ranges(p, [limit_range(default={"memory": "64Mi"})])
    res = p["spec"]["containers"][0]["resources"]
    assert res == {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}}


@pytest.mark.parametrize(
    ("resources", "item", "message"),
    [
        (
            {"limits": {"cpu": "2"}},
            {"max": {"cpu": "1"}},
            "maximum cpu usage per Container is 1, but limit is 2",
        ),
        (
            {"requests": {"memory": "5Mi"}},
            {"min": {"memory": "10Mi"}},
            "minimum memory usage per Container is 10Mi, but request is 5Mi",
        ),
        (
            {},
            {"max": {"memory": "1Gi"}},
            "maximum memory usage per Container is 1Gi.  No limit is specified",
        ),
    ],
    ids=["over-max", "under-min", "no-limit-under-max"],
)
def test_limit_range_bounds(resources: dict, item: dict, message: str) -> None:
    with pytest.raises(errors.Forbidden) as err:
        apply_limit_ranges(pod(**resources), [limit_range(**item)])
    assert str(err.value) == f'pods "p" is forbidden: {message}'
    assert err.value.code == 403


def test_pod_usage_counts_init_containers_by_their_maximum() -> None:
    p = pod(requests={"cpu": "200m", "memory": "64Mi"}, limits={"cpu": "1"})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "500m"}}}]
    assert pod_usage(p) == {
        "pods": 1,
        "requests.cpu": 500,
        "requests.memory": 64 << 20,
        "limits.cpu": 1000,
        "limits.memory": 0,
    }


def test_quota_admits_until_exceeded_and_ignores_terminal_pods() -> None:
    q = quota(**{"pods": "3", "requests.cpu": "1", "memory": "1Gi"})
    existing = [
        pod("a", requests={"cpu": "400m", "memory": "256Mi"}),
        pod("b", requests={"cpu": "400m", "memory": "256Mi"}),
        pod("done", phase="Succeeded", requests={"cpu": "900m", "memory": "900Mi"}),
    ]
    check_quotas(pod("c", requests={"cpu": "200m", "memory": "256Mi"}), [q], existing)
    with pytest.raises(errors.Forbidden) as err:
        check_quotas(pod("c", requests={"cpu": "500m", "memory": "600Mi"}), [q], existing)
    assert str(err.value) == (
        'pods "c" is forbidden: exceeded quota: compute, requested: '
        "requests.cpu=500m,requests.memory=600Mi, used: requests.cpu=800m,"
        "requests.memory=512Mi, limited: requests.cpu=1,requests.memory=1Gi"
    )


def test_quota_counts_pods() -> None:
    with pytest.raises(
        errors.Forbidden, match=r"exceeded quota: n, requested: pods=1, used: pods=2"
    ):
        check_quotas(pod("z"), [quota("n", pods="2")], [pod("a"), pod("b")])


def test_quota_on_compute_needs_the_pod_to_state_it() -> None:
    with pytest.raises(errors.Forbidden) as err:
        check_quotas(pod(), [quota(**{"limits.cpu": "2", "limits.memory": "1Gi"})], [])
    assert str(err.value) == (
        'pods "p" is forbidden: failed quota: compute: must specify limits.cpu for: main; '
        "limits.memory for: main"
    )


def test_limit_range_defaults_satisfy_a_quota() -> None:
    p = pod()
    admit_pod(
        p,
        limit_ranges=[limit_range(default={"cpu": "250m"})],
        quotas=[quota(**{"limits.cpu": "1"})],
        pods=[],
    )
    assert p["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "250m"}
