"""Failover across two API servers on one PostgreSQL store (skipped without PostgreSQL).

Two API servers share the store; two schedulers and two controller-managers campaign for their
Leases, each pair split across the servers; hollow nodes run the pods. Killing a leader with
SIGKILL (no release of its Lease) must hand leadership to the standby on the other server within
the lease duration plus a retry period of the standby seeing the last renewal, and the work must
go on: every pod is bound once, by one scheduler, and a Deployment scaled mid-way through the
kill ends with exactly ``replicas`` pods.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from machinery.leaderelection import JITTER
from tests.conftest import ApiServerProcess, start_apiserver

pytestmark = pytest.mark.skipif(
    not os.environ.get("TUGBOAT_TEST_POSTGRES"),
    reason="no PostgreSQL configured (set TUGBOAT_TEST_POSTGRES)",
)

LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 3.0, 2.0, 0.5
# Kubernetes' bound: a standby takes the lease once it has seen no renewal for the lease
# duration since it *observed* the last one, at its next try (every retry period, jittered up
# to JITTER): lease duration + retry period after that observation. The observation itself
# trails the renewal by at most one more jittered retry period (the standby reads the lease
# that often). The test measures between the lease's own timestamps -- the dead leader's last
# renewTime and the new holder's acquireTime -- so neither its polling nor request latency
# counts; SLACK is for the processes' timers waking late on a loaded machine.
SLACK = 0.5
TAKEOVER_BOUND = LEASE_DURATION + 2 * RETRY_PERIOD * JITTER + SLACK
LEASE_TIMERS = [
    "--leader-elect-lease-duration",
    str(LEASE_DURATION),
    "--leader-elect-renew-deadline",
    str(RENEW_DEADLINE),
    "--leader-elect-retry-period",
    str(RETRY_PERIOD),
]
SCHEDULER_LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler"
MANAGER_LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/tug-controller-manager"
HOLLOW_NODES = 2


def poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """``check()`` until it returns something truthy (returned); AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@dataclass
class HACluster:
    """Two API servers on one store and the components started against them, by name."""

    servers: list[ApiServerProcess]
    procs: dict[str, subprocess.Popen]
    data_dir: Path

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(self.servers[0].url + path, params=params, timeout=10)
        return r.json() if r.status_code == 200 else None

    def holder(self, lease_path: str) -> str | None:
        lease = self.get(lease_path)
        return ((lease or {}).get("spec") or {}).get("holderIdentity")

    def kill_leader(self, lease_path: str, leader: str) -> float:
        """SIGKILL ``leader``; returns its last renewal of the lease (epoch seconds)."""
        self.kill(leader)
        spec = self.get(lease_path)["spec"]
        assert spec["holderIdentity"] == leader  # the standby cannot have taken it yet
        return _micro_time(spec["renewTime"])

    def takeover(self, lease_path: str, leader: str, renewed: float) -> float:
        """Wait for the standby to hold the lease; returns the seconds from the dead leader's
        last renewal to the standby's acquisition."""
        standby = _other(leader)
        poll(lambda: self.holder(lease_path) == standby, 15, f"{standby} to take the Lease")
        return _micro_time(self.get(lease_path)["spec"]["acquireTime"]) - renewed

    def kill(self, name: str) -> float:
        """SIGKILL component ``name``; returns the monotonic time it died."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return time.monotonic()

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
            for p in sorted(self.data_dir.glob("*.log"))
        )


def _start(data_dir: Path, name: str, *args: list[str]) -> subprocess.Popen:
    """``python -m`` the concatenated ``args``, logging to ``data_dir/name.log``."""
    log = open(data_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    argv = [a for part in args for a in part]
    return subprocess.Popen([sys.executable, "-m", *argv], stdout=log, stderr=log)


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HACluster]:
    from tests.unit.test_storage import _pg_schema_url

    store = _pg_schema_url()
    root = tmp_path_factory.mktemp("ha")
    servers: list[ApiServerProcess] = []
    procs: dict[str, subprocess.Popen] = {}
    cluster = HACluster(servers, procs, root)
    try:
        for side in "ab":
            (root / side).mkdir()
            servers.append(start_apiserver(root / side, storage=store))
        for side, server in zip("ab", servers, strict=True):
            procs[f"scheduler-{side}"] = _start(
                root,
                f"scheduler-{side}",
                ["scheduler", "--server", server.url, "--leader-elect", "--identity"],
                [f"scheduler-{side}", *LEASE_TIMERS],
            )
            procs[f"manager-{side}"] = _start(
                root,
                f"manager-{side}",
                ["controllers.manager", "--server", server.url, "--port", "0", "--identity"],
                [f"manager-{side}", *LEASE_TIMERS],
            )
        procs["kubelet"] = _start(
            root,
            "kubelet",
            ["kubelet.main", "--server", servers[1].url, "--runtime", "fake", "--port", "0"],
            ["--hollow-nodes", str(HOLLOW_NODES), "--log-root", str(root / "pods")],
        )

        def nodes_ready() -> bool:
            nodes = (cluster.get("/api/v1/nodes") or {}).get("items") or []
            return len([n for n in nodes if _ready(n)]) >= HOLLOW_NODES

        poll(nodes_ready, 60, "hollow nodes to be Ready")
        yield cluster
    except AssertionError as e:
        raise AssertionError(f"{e}\n{cluster.log_tail()}") from None
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for server in servers:
            server.stop()


def _micro_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def _ready(obj: dict) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _namespace(ha: HACluster, name: str) -> str:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    r = httpx.post(ha.servers[1].url + "/api/v1/namespaces", json=body, timeout=10)
    assert r.status_code == 201, r.text
    return name


def _other(name: str) -> str:
    return name[:-1] + ("b" if name.endswith("a") else "a")


def test_scheduler_failover(ha: HACluster) -> None:
    leader = poll(lambda: ha.holder(SCHEDULER_LEASE), 30, "a scheduler to lead")
    assert leader in ("scheduler-a", "scheduler-b")
    ns = _namespace(ha, f"sched-failover-{os.getpid()}")
    pods = f"/api/v1/namespaces/{ns}/pods"
    start_rv = ha.get(pods)["metadata"]["resourceVersion"]

    def create_pod(name: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "app:1"}]},
        }
        r = httpx.post(ha.servers[1].url + pods, json=body, timeout=10)
        assert r.status_code == 201, r.text

    def scheduled(name: str) -> Callable[[], str | None]:
        return lambda: ((ha.get(f"{pods}/{name}") or {}).get("spec") or {}).get("nodeName")

    create_pod("before")
    poll(scheduled("before"), 20, "the leader to schedule a pod")
    for i in range(6):  # some are being scheduled as the leader dies
        create_pod(f"around-{i}")

    took = ha.takeover(SCHEDULER_LEASE, leader, ha.kill_leader(SCHEDULER_LEASE, leader))
    assert took <= TAKEOVER_BOUND, f"takeover took {took:.2f}s"

    create_pod("after")
    names = ["before", *(f"around-{i}" for i in range(6)), "after"]
    for name in names:
        node = poll(scheduled(name), 20, f"{name} to be scheduled")
        assert node.startswith("hollow-node-")

    def scheduled_events() -> dict[str, list[dict]]:
        items = (ha.get(f"/api/v1/namespaces/{ns}/events") or {}).get("items") or []
        by_pod: dict[str, list[dict]] = {}
        for ev in items:
            if ev.get("reason") == "Scheduled":
                by_pod.setdefault(ev["involvedObject"]["name"], []).append(ev)
        return by_pod

    # the new leader's Scheduled event is written for sure; the dead one may have died between
    # a binding and its event, but no pod was bound twice: never more than one, of count 1
    by_pod = poll(lambda: (e := scheduled_events()) and "after" in e and e, 20, "events")
    for name, evs in by_pod.items():
        assert [ev.get("count", 1) for ev in evs] == [1], f"{name}: {evs}"
    # and no pod's nodeName ever changed: every version of every pod since the start
    replay = httpx.get(
        ha.servers[0].url + pods,
        params={"watch": "1", "resourceVersion": start_rv, "timeoutSeconds": "1"},
        timeout=10,
    )
    nodes: dict[str, set[str]] = {}
    for line in replay.text.splitlines():
        pod = orjson.loads(line)["object"]
        node = pod["spec"].get("nodeName")
        if node:
            nodes.setdefault(pod["metadata"]["name"], set()).add(node)
    assert sorted(nodes) == sorted(names)
    assert all(len(v) == 1 for v in nodes.values()), nodes


def test_controller_manager_failover_mid_scale(ha: HACluster) -> None:
    leader = poll(lambda: ha.holder(MANAGER_LEASE), 30, "a controller-manager to lead")
    assert leader in ("manager-a", "manager-b")
    ns = _namespace(ha, f"cm-failover-{os.getpid()}")
    deployments = f"/apis/apps/v1/namespaces/{ns}/deployments"
    replicas = 24
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "app:1"}]},
            },
        },
    }
    r = httpx.post(ha.servers[0].url + deployments, json=body, timeout=10)
    assert r.status_code == 201, r.text

    def live_pods() -> list[dict]:
        items = (ha.get(f"/api/v1/namespaces/{ns}/pods") or {}).get("items") or []
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    poll(lambda: len(live_pods()) == 2, 30, "the first two pods")
    pods = ha.get(f"/api/v1/namespaces/{ns}/pods")
    watch = {"watch": "1", "resourceVersion": pods["metadata"]["resourceVersion"]}
    with httpx.stream(
        "GET", f"{ha.servers[0].url}/api/v1/namespaces/{ns}/pods", params=watch, timeout=30
    ) as events:
        r = httpx.patch(
            f"{ha.servers[0].url}{deployments}/web/scale",
            json={"spec": {"replicas": replicas}},
            headers={"Content-Type": "application/merge-patch+json"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        # kill the leader on its first new pod: it has started scaling and cannot have finished
        for line in events.iter_lines():
            if line and orjson.loads(line)["type"] == "ADDED":
                break
        renewed = ha.kill_leader(MANAGER_LEASE, leader)
    mid = len(live_pods())
    assert 2 < mid < replicas, f"{mid} pods when the leader died: not mid-scale"
    took = ha.takeover(MANAGER_LEASE, leader, renewed)
    assert took <= TAKEOVER_BOUND, f"takeover took {took:.2f}s"

    def converged() -> bool:
        d = ha.get(f"{deployments}/web") or {}
        st = d.get("status") or {}
        return (
            st.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and st.get("replicas") == replicas
            and st.get("updatedReplicas") == replicas
            and len(live_pods()) == replicas
        )

    poll(converged, 60, f"{replicas} replicas after the failover")
    # no duplicates: the count stays exact while the new leader keeps reconciling
    deadline = time.monotonic() + 2 * LEASE_DURATION
    while time.monotonic() < deadline:
        count = len(live_pods())
        assert count == replicas, f"{count} pods, want {replicas} (killed at {mid})"
        time.sleep(0.2)
    rss = (ha.get(f"/apis/apps/v1/namespaces/{ns}/replicasets") or {}).get("items") or []
    assert [rs["spec"]["replicas"] for rs in rss] == [replicas]
    owners = {
        ref["uid"]
        for p in live_pods()
        for ref in p["metadata"].get("ownerReferences") or []
        if ref.get("controller")
    }
    assert owners == {rss[0]["metadata"]["uid"]}
