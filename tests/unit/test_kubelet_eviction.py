"""emptyDir sizeLimit eviction: measuring, the Kubernetes message, and the worker's eviction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubelet import eviction
from kubelet.podworker import PodWorker
from tests.unit.test_kubelet_worker import Env, env, settle, sleeper  # noqa: F401


def pod_with(*volumes: dict, phase: str = "Running") -> dict:
    return {
        "metadata": {"name": "p", "uid": "u"},
        "spec": {"volumes": list(volumes)},
        "status": {"phase": phase},
    }


DISK = {"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}
RAM = {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
UNLIMITED = {"name": "free", "emptyDir": {}}


def test_only_disk_volumes_with_a_limit_are_measured() -> None:
    assert eviction.size_limits(pod_with(DISK, RAM, UNLIMITED)) == {"scratch": 1 << 20}


@pytest.mark.parametrize(
    ("usage", "message"),
    [
        ({"scratch": 1 << 20}, None),
        (
            {"scratch": (1 << 20) + 1},
            'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". ',
        ),
        ({"free": 1 << 30}, None),
    ],
    ids=["at-limit", "over-limit", "unlimited-volume"],
)
def test_violation(usage: dict, message: str | None) -> None:
    assert eviction.violation(pod_with(DISK, UNLIMITED), usage) == message


def test_disk_usage_counts_allocated_blocks_without_following_links(tmp_path: Path) -> None:
    assert eviction.disk_usage(tmp_path / "missing") == 0
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(os.urandom(300_000))
    (tmp_path / "big").write_bytes(os.urandom(1_000_000))
    (tmp_path / "d" / "link").symlink_to(tmp_path / "big")
    used = eviction.disk_usage(tmp_path / "d")
    assert 300_000 <= used < 1_000_000


class FakeWorker:
    def __init__(self, pod: dict, root: Path) -> None:
        self.pod: dict | None = pod
        self.root = root
        self.evicted: list[str] = []

    def empty_dir(self, name: str) -> Path:
        return self.root / name

    def evict(self, message: str) -> None:
        self.evicted.append(message)


def test_check_skips_finished_and_deleting_pods(tmp_path: Path) -> None:
    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "blob").write_bytes(os.urandom(2 << 20))
    assert eviction.check(FakeWorker(pod_with(DISK), tmp_path)) is not None
    assert eviction.check(FakeWorker(pod_with(DISK, phase="Failed"), tmp_path)) is None
    deleting = pod_with(DISK)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert eviction.check(FakeWorker(deleting, tmp_path)) is None


async def test_worker_evicts_the_pod(env: Env) -> None:  # noqa: F811
    pod = env.seed("hog", [sleeper()], volumes=[DISK])
    ctx = env.context()
    events: list[tuple[str, str, str]] = []
    ctx.recorder = type("R", (), {"event": lambda self, o, t, r, m: events.append((t, r, m))})()
    worker = PodWorker(ctx, pod)
    await settle(worker, env)
    assert env.status("hog")["phase"] == "Running"
    assert worker.empty_dir("scratch").is_dir()

    message = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
    worker.evict(message)
    await settle(worker, env)

    status = env.status("hog")
    assert (status["phase"], status["reason"], status["message"]) == ("Failed", "Evicted", message)
    assert env.running_ids() == []
    assert ("Warning", "Evicted", message) in events
    assert "terminated" in env.container("hog", "main")["state"]
    target = next(c for c in status["conditions"] if c["type"] == "DisruptionTarget")
    assert (target["status"], target["reason"]) == ("True", "TerminationByKubelet")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
