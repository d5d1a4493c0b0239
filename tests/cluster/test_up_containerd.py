"""``tug up --runtime containerd``: the example app answers HTTP from the host; ``tug down``
removes processes, containers, bridge and mounts.

Needs root, containerd, runc and the CNI plugins (``hack/install-runtime.sh``); skipped
otherwise. Uses bridge ``tugct0`` and pod CIDR ``10.244.240.0/24`` (``TUG_CT_BRIDGE_PREFIX``,
``TUG_CT_FIRST_SUBNET``) so it never meets a user's cluster (``tug0``) or tests/e2e
(``tuge2e0``, ``10.244.250.0/24``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.cluster import down, up
from cli.cluster.common import DataDir
from cli.cluster.example import (
    EXAMPLES,
    WEB_MANIFEST,
    apply_objects,
    http_answers,
    load_manifest,
    running_pods,
    wait_for_app,
)
from cli.cluster.procs import wait_gone
from machinery.client import Client

from .conftest import cluster_processes, eventually, free_port

pytestmark = pytest.mark.e2e

BRIDGE_PREFIX = os.environ.get("TUG_CT_BRIDGE_PREFIX", "tugct")
FIRST_SUBNET = int(os.environ.get("TUG_CT_FIRST_SUBNET", "240"))


def _skip_reason() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux"
    missing = [b for b in ("containerd", "ctr", "runc") if shutil.which(b) is None]
    if missing or not Path("/usr/lib/cni/bridge").exists():
        return f"containerd/runc/CNI not installed ({missing}); run hack/install-runtime.sh"
    return None


@pytest.fixture
def data_dir() -> Iterator[Path]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    # A short path: the containerd socket lives under it (unix socket paths are short).
    root = Path(tempfile.mkdtemp(prefix="tugct-", dir="/tmp"))
    try:
        yield root
    finally:
        down.main(["--data-dir", str(root), "--purge"])
        shutil.rmtree(root, ignore_errors=True)


def test_up_containerd_serves_the_example_app(data_dir: Path) -> None:
    port = free_port(span=2)
    argv = [
        "--data-dir", str(data_dir), "--runtime", "containerd", "--nodes", "1",
        "--port", str(port), "--bridge-prefix", BRIDGE_PREFIX,
        "--first-subnet", str(FIRST_SUBNET), "--timeout", "180", "--quiet",
    ]  # fmt: skip
    assert up.main(argv) == 0
    d = DataDir(data_dir)
    bridge = f"{BRIDGE_PREFIX}0"

    with Client.from_kubeconfig(str(d.kubeconfig)) as client:
        apply_objects(client, load_manifest(WEB_MANIFEST))
        apply_objects(client, load_manifest(EXAMPLES / "busybox.yaml"))
        pods = wait_for_app(client, replicas=3, timeout=180, http=True, expect="v1")
        eventually("busybox Running", lambda: running_pods(client, "app=busybox"), 120)
    answers = http_answers(pods, 8080, "v1")
    assert answers is not None and len(answers) == 3
    for answer in answers:
        assert answer.ip.startswith(f"10.244.{FIRST_SUBNET}.")
        assert "tugboat web v1" in answer.body
        assert f"hostname: {answer.pod}" in answer.body
    assert Path("/sys/class/net", bridge).exists()

    procs = cluster_processes(d)
    containerd_dir = data_dir / "containerd" / "node-0"
    assert down.main(["--data-dir", str(data_dir)]) == 0
    assert wait_gone(procs, 5) == [], "tug down must leave no component behind"
    assert not (containerd_dir / "containerd.pid").exists()
    assert not Path("/sys/class/net", bridge).exists()
    with open("/proc/self/mounts") as mounts:
        assert [m for m in mounts if f" {data_dir}/" in m] == []
    assert not any(Path("/sys/fs/cgroup").glob(f"*/tugboat/{bridge}"))
