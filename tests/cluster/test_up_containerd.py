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
import signal
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
from tests.cli.conftest import run_tug
from tests.e2e.conftest import runtime_skip_reason

from .conftest import cluster_processes, eventually, free_port

pytestmark = pytest.mark.e2e

BRIDGE_PREFIX = os.environ.get("TUG_CT_BRIDGE_PREFIX", "tugct")
FIRST_SUBNET = int(os.environ.get("TUG_CT_FIRST_SUBNET", "240"))


@pytest.fixture
def data_dir() -> Iterator[Path]:
    reason = runtime_skip_reason()
    if reason:
        pytest.skip(reason)
    # A short path: the containerd socket lives under it (unix socket paths are short).
    root = Path(tempfile.mkdtemp(prefix="tugct-", dir="/tmp"))
    try:
        yield root
    finally:
        # the components' last words, shown by pytest only when the test failed
        for log in sorted((root / "logs").glob("*.log")):
            print(f"--- {log.name}", *log.read_text(errors="replace").splitlines()[-30:], sep="\n")
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


def _containerd(d: DataDir) -> dict | None:
    """The supervisor's record of node-0's containerd, once it is up."""
    comp = ((d.state() or {}).get("components") or {}).get("containerd-node-0") or {}
    return comp if comp.get("state") == "up" and comp.get("pid") else None


def _pod(name: str) -> dict:
    pod = load_manifest(EXAMPLES / "busybox.yaml")[0]
    pod["metadata"] = {"name": name, "labels": {"app": "restart", "step": name}}
    script = f"echo hello from {name}; trap 'exit 0' TERM; while true; do sleep 1; done"
    pod["spec"]["containers"][0]["command"] = ["sh", "-c", script]
    # this test is about the runtime, not the service account token path
    pod["spec"]["automountServiceAccountToken"] = False
    return pod


def test_a_killed_containerd_is_restarted_and_the_node_keeps_working(data_dir: Path) -> None:
    port = free_port(span=2)
    argv = [
        "--data-dir", str(data_dir), "--runtime", "containerd", "--nodes", "1",
        "--port", str(port), "--bridge-prefix", BRIDGE_PREFIX,
        "--first-subnet", str(FIRST_SUBNET), "--timeout", "180", "--quiet",
    ]  # fmt: skip
    assert up.main(argv) == 0
    d = DataDir(data_dir)
    first = eventually("containerd supervised", lambda: _containerd(d))
    log = d.logs / "containerd-node-0.log"
    assert "containerd successfully booted" in log.read_text()

    with Client.from_kubeconfig(str(d.kubeconfig)) as client:
        apply_objects(client, [_pod("before")])
        before = eventually("pod before Running", lambda: running_pods(client, "step=before"), 120)
        os.kill(first["pid"], signal.SIGKILL)

        def restarted() -> dict | None:
            comp = _containerd(d)
            return comp if comp and comp["pid"] != first["pid"] else None

        second = eventually("containerd restarted by the supervisor", restarted, 30)
        assert second["restarts"] == 1 and second["lastExitCode"] == -signal.SIGKILL
        eventually("the restarted containerd's log", lambda: log.read_text().count("booted") == 2)
        eventually("node-0 Ready", lambda: up.ready_nodes(client, ["node-0"]) == {"node-0"}, 60)
        apply_objects(client, [_pod("after")])
        eventually("pod after Running", lambda: running_pods(client, "step=after"), 120)
        still = running_pods(client, "step=before")
        assert [p["metadata"]["uid"] for p in still] == [p["metadata"]["uid"] for p in before]
        assert still[0]["status"]["containerStatuses"][0]["restartCount"] == 0

    # both pods' logs through the new containerd, one stream each (tug logs -l)
    logs = eventually(
        "both pods' logs",
        lambda: (r := run_tug("--kubeconfig", str(d.kubeconfig), "logs", "-l", "app=restart",
                              "--prefix")).out.count("\n") == 2 and r,
        30,
    )  # fmt: skip
    assert logs.out == (
        "[pod/after/busybox] hello from after\n[pod/before/busybox] hello from before\n"
    )

    procs = cluster_processes(d)
    assert down.main(["--data-dir", str(data_dir)]) == 0
    assert wait_gone(procs, 5) == [], "tug down must leave no component behind"
    with open("/proc/self/mounts") as mounts:
        assert [m for m in mounts if f" {data_dir}/" in m] == []
