"""Pod cgroup placement and pod-level limits: pod spec → path and values, and the values written
in a cgroup v2 tree (a directory laid out as the kernel does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet import specs
from kubelet.cgroups import (
    CgroupManager,
    PodCgroup,
    burstable_shares,
    candidate_paths,
    cpu_quota,
    cpu_shares,
    cpu_weight,
    pod_cgroup,
)

MI = 1 << 20


def res(requests: dict | None = None, limits: dict | None = None) -> dict:
    out: dict = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return {"resources": out}


def pod(*containers: dict, init: list[dict] | None = None) -> dict:
    spec: dict = {"containers": [{"name": f"c{i}", **c} for i, c in enumerate(containers)]}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", **c} for i, c in enumerate(init)]
    return {"metadata": {"uid": "u1", "name": "p", "namespace": "default"}, "spec": spec}


CASES = [
    pytest.param(
        pod({}),
        PodCgroup("/r/kubepods/besteffort/podu1", 2),
        id="besteffort: minimum shares, no limits",
    ),
    pytest.param(
        pod(
            res(limits={"cpu": "500m", "memory": "64Mi"}), res(limits={"cpu": "1", "memory": "1Mi"})
        ),
        PodCgroup("/r/kubepods/podu1", 1536, 150_000, 100_000, 65 * MI),
        id="guaranteed: sums of requests and limits",
    ),
    pytest.param(
        pod(res(requests={"cpu": "250m"}, limits={"cpu": "1"}), res(requests={"memory": "8Mi"})),
        PodCgroup("/r/kubepods/burstable/podu1", 256),
        id="burstable: one container without limits, so none at pod level",
    ),
    pytest.param(
        pod(
            res({"cpu": "100m"}, {"cpu": "200m", "memory": "32Mi"}), res(limits={"memory": "16Mi"})
        ),
        PodCgroup("/r/kubepods/burstable/podu1", 102, None, 100_000, 48 * MI),
        id="burstable: memory limited everywhere, cpu not",
    ),
    pytest.param(
        pod(res({"cpu": "100m"}, {"cpu": "200m"}), res(limits={"cpu": "300m"})),
        PodCgroup("/r/kubepods/burstable/podu1", 409, 50_000),
        id="burstable: cpu quota from every container's limit",
    ),
    pytest.param(
        pod(
            res(limits={"cpu": "100m", "memory": "16Mi"}),
            init=[res(limits={"cpu": "2", "memory": "128Mi"})],
        ),
        PodCgroup("/r/kubepods/podu1", 2048, 200_000, 100_000, 128 * MI),
        id="init container larger than the app containers' sum",
    ),
    pytest.param(
        pod(res(limits={"cpu": "1m", "memory": "4Mi"})),
        PodCgroup("/r/kubepods/podu1", 2, 1000, 100_000, 4 * MI),
        id="tiny cpu: minimum shares and quota",
    ),
]


@pytest.mark.parametrize(("p", "expected"), CASES)
def test_pod_cgroup(p: dict, expected: PodCgroup) -> None:
    qos = specs.qos_class(p["spec"])
    assert pod_cgroup(p, "/r/", qos) == expected
    node = specs.NodeContext(name="n", cgroup_root="/r")
    assert specs.sandbox_config(p, node).linux.cgroup_parent == expected.path
    assert expected.path in candidate_paths("/r", "u1")


def test_v1_files() -> None:
    assert PodCgroup("/x", 2).v1_files() == {"cpu": {"cpu.shares": "2"}}
    assert PodCgroup("/x", 1024, 50_000, 100_000, 64).v1_files() == {
        "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000"},
        "memory": {"memory.limit_in_bytes": "64"},
    }


def test_v2_files() -> None:
    assert PodCgroup("/x", 2).v2_files() == {"cpu.weight": "1"}
    assert PodCgroup("/x", 1024, 50_000, 100_000, 64).v2_files() == {
        "cpu.weight": "39",
        "cpu.max": "50000 100000",
        "memory.max": "64",
    }


@pytest.mark.parametrize(
    ("shares", "weight"), [(2, 1), (3, 1), (102, 4), (1024, 39), (2048, 79), (262_144, 10_000)]
)
def test_cpu_weight(shares: int, weight: int) -> None:
    assert cpu_weight(shares) == weight


# cgroup v2, as the kernel lays out a pure v2 host: every cgroup directory has these files
# (a controller's only once its parent enabled it; the fake has them all from the start).
V2_FILES = {
    "cgroup.controllers": "",
    "cgroup.subtree_control": "",
    "cpu.weight": "100",
    "cpu.max": "max 100000",
    "memory.max": "max",
}


def v2_tree(mount: Path, offered: str, *cgroups: str) -> None:
    for cgroup in ("", *cgroups):
        d = mount / cgroup
        d.mkdir(parents=True, exist_ok=True)
        for name, value in V2_FILES.items():
            (d / name).write_text(value)
    (mount / "cgroup.controllers").write_text(offered)


QOS_DIRS = ("tug", "tug/kubepods", "tug/kubepods/burstable", "tug/kubepods/besteffort")


def test_limits_on_cgroup_v2(tmp_path: Path) -> None:
    burstable = pod(res({"cpu": "250m"}, {"cpu": "500m", "memory": "32Mi"}))
    guaranteed = {**pod(res(limits={"cpu": "2", "memory": "1Gi"})), "metadata": {"uid": "u2"}}
    v2_tree(
        tmp_path,
        "cpuset cpu io memory pids",
        *QOS_DIRS,
        "tug/kubepods/burstable/podu1",
        "tug/kubepods/podu2",
    )
    manager = CgroupManager("/tug", mount=tmp_path, pods=lambda: [burstable, guaranteed])
    for p in (burstable, guaranteed):
        manager.apply(pod_cgroup(p, "/tug", specs.qos_class(p["spec"])))

    for ancestor in ("", *QOS_DIRS):  # each parent lets its children have cpu and memory
        assert (tmp_path / ancestor / "cgroup.subtree_control").read_text() == "+cpu +memory"
    qos = tmp_path / "tug/kubepods"
    assert (qos / "besteffort/cpu.weight").read_text() == "1"
    assert (qos / "burstable/cpu.weight").read_text() == str(cpu_weight(256))
    assert (qos / "burstable/podu1/cpu.weight").read_text() == str(cpu_weight(256))
    assert (qos / "burstable/podu1/cpu.max").read_text() == "50000 100000"
    assert (qos / "burstable/podu1/memory.max").read_text() == str(32 * MI)
    assert (qos / "podu2/cpu.max").read_text() == "200000 100000"
    assert (qos / "podu2/memory.max").read_text() == str(1024 * MI)
    assert (qos / "podu2/cpu.weight").read_text() == str(cpu_weight(2048))


def test_cgroup_v2_without_cpu_only_limits_memory(tmp_path: Path) -> None:
    v2_tree(tmp_path, "memory pids", *QOS_DIRS, "tug/kubepods/podu1")
    manager = CgroupManager("/tug", mount=tmp_path)
    p = pod(res(limits={"cpu": "1", "memory": "8Mi"}))
    manager.apply(pod_cgroup(p, "/tug", "Guaranteed"))
    assert (tmp_path / "tug/kubepods/cgroup.subtree_control").read_text() == "+memory"
    assert (tmp_path / "tug/kubepods/podu1/memory.max").read_text() == str(8 * MI)
    assert (tmp_path / "tug/kubepods/podu1/cpu.max").read_text() == "max 100000"  # untouched
    assert (tmp_path / "tug/kubepods/besteffort/cpu.weight").read_text() == "100"


def test_cgroup_v2_without_controllers_only_makes_directories(tmp_path: Path) -> None:
    """A hybrid host's unified tree: cgroup v2 with every controller on v1."""
    v2_tree(tmp_path, "", *QOS_DIRS)
    manager = CgroupManager("/tug", mount=tmp_path)
    manager.apply(pod_cgroup(pod(res(limits={"memory": "8Mi"})), "/tug", "Guaranteed"))
    assert (tmp_path / "tug/kubepods/podu1").is_dir()
    assert not (tmp_path / "tug/kubepods/podu1/memory.max").exists()
    assert (tmp_path / "cgroup.subtree_control").read_text() == ""


@pytest.mark.parametrize(
    ("millis", "shares", "quota"),
    [(0, 2, 1000), (1, 2, 1000), (10, 10, 1000), (1000, 1024, 100_000), (10**6, 262_144, 10**8)],
)
def test_conversions(millis: int, shares: int, quota: int) -> None:
    assert cpu_shares(millis) == shares
    assert cpu_quota(millis) == quota


def test_candidates_cover_every_class() -> None:
    assert candidate_paths("/r", "u") == [
        "/r/kubepods/podu",
        "/r/kubepods/burstable/podu",
        "/r/kubepods/besteffort/podu",
    ]


def test_burstable_class_shares_sum_burstable_requests() -> None:
    burstable = pod(res(requests={"cpu": "250m"}), res(requests={"memory": "8Mi"}))
    other = pod(res(requests={"cpu": "750m"}))
    finished = {**other, "status": {"phase": "Succeeded"}}
    deleting = {
        **other,
        "metadata": {**other["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"},
    }
    guaranteed = pod(res(limits={"cpu": "2", "memory": "1Gi"}))
    assert burstable_shares([]) == 2
    assert burstable_shares([burstable, guaranteed, pod({})]) == 256
    assert burstable_shares([burstable, other, finished, deleting]) == 1024


@pytest.mark.parametrize(
    ("resources", "shares", "quota", "period", "memory"),
    [
        pytest.param({}, 2, 0, 0, 0, id="none: minimum shares, no quota"),
        pytest.param(res({"cpu": "250m"}), 256, 0, 0, 0, id="request only: shares"),
        pytest.param(res({"cpu": "1m"}), 2, 0, 0, 0, id="tiny request: at least 2 shares"),
        pytest.param(
            res({"cpu": "100m"}, {"cpu": "500m"}),
            102,
            50_000,
            100_000,
            0,
            id="request and limit: shares from the request, quota from the limit",
        ),
        pytest.param(
            res(limits={"cpu": "1500m", "memory": "64Mi"}),
            1536,
            150_000,
            100_000,
            64 * MI,
            id="limit only: the request defaults to it",
        ),
        pytest.param(
            res({"cpu": "0"}, {"cpu": "2"}),
            2048,
            200_000,
            100_000,
            0,
            id="zero request: shares from the limit",
        ),
        pytest.param(
            res(limits={"cpu": "5m"}), 5, 1000, 100_000, 0, id="tiny limit: at least 1 ms quota"
        ),
        pytest.param(res({"cpu": "1"}, {"cpu": "0"}), 1024, 0, 0, 0, id="zero limit: no quota"),
    ],
)
def test_container_cpu_and_memory_resources(
    resources: dict, shares: int, quota: int, period: int, memory: int
) -> None:
    c = {"name": "c", **resources}
    out = specs.linux_resources(c, "Burstable", specs.NodeContext(name="n"))
    assert (out.cpu_shares, out.cpu_quota, out.cpu_period) == (shares, quota, period)
    assert out.memory_limit_in_bytes == memory
