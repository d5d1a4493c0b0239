"""The real kubectl's workload verbs against a tugboat control plane with hollow nodes:
rollout status/history/undo/pause/resume/restart, set image, scale, delete deployment."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

pytestmark = pytest.mark.compat


@pytest.fixture
def k(cluster, kubectl_bin, tmp_path):
    def run(*args: str, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [kubectl_bin, "--kubeconfig", cluster.kubeconfig, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture
def ns(k) -> str:
    name = f"ro-{uuid.uuid4().hex[:6]}"
    k("create", "namespace", name)
    return name


def pods_of(k, ns: str, selector: str) -> list[dict]:
    return json.loads(k("get", "pods", "-n", ns, "-l", selector, "-o", "json").stdout)["items"]


def wait_until(fn, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


REVISION = "deployment.kubernetes.io/revision"


def deployment(k, ns: str, name: str = "web") -> dict:
    return json.loads(k("get", "deploy", name, "-n", ns, "-o", "json").stdout)


def observed(k, ns: str) -> dict | None:
    """The deployment once its controller has observed its latest generation."""
    d = deployment(k, ns)
    seen = (d.get("status") or {}).get("observedGeneration", 0)
    return d if seen >= d["metadata"]["generation"] else None


def rs_names(k, ns: str) -> list[str]:
    items = json.loads(k("get", "rs", "-n", ns, "-o", "json").stdout)["items"]
    return [r["metadata"]["name"] for r in items]


def replica_sets(k, ns: str) -> dict[str, tuple[str, int]]:
    """image → (revision, spec.replicas) of every ReplicaSet (one per image)."""
    items = json.loads(k("get", "rs", "-n", ns, "-o", "json").stdout)["items"]
    out = {
        r["spec"]["template"]["spec"]["containers"][0]["image"]: (
            r["metadata"]["annotations"][REVISION],
            r["spec"]["replicas"],
        )
        for r in items
    }
    assert len(out) == len(items), "two ReplicaSets for one image"
    return out


def test_deployment_rollout_lifecycle(k, ns):
    k("create", "deployment", "web", "-n", ns, "--image=tugboat/web:1", "--replicas=3")
    out = k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s").stdout
    assert 'deployment "web" successfully rolled out' in out
    ready = k("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.status.readyReplicas}").stdout
    assert ready == "3"

    k("set", "image", "deployment/web", "-n", ns, "web=tugboat/web:2")
    k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    images = {
        p["spec"]["containers"][0]["image"]
        for p in pods_of(k, ns, "app=web")
        if not p["metadata"].get("deletionTimestamp")
    }
    assert images == {"tugboat/web:2"}

    history = k("rollout", "history", "deployment/web", "-n", ns).stdout
    assert "1 " in history and "2 " in history
    rev1 = k("rollout", "history", "deployment/web", "-n", ns, "--revision=1").stdout
    assert "tugboat/web:1" in rev1

    rs_before = {
        r["metadata"]["name"]
        for r in json.loads(k("get", "rs", "-n", ns, "-o", "json").stdout)["items"]
    }
    k("rollout", "undo", "deployment/web", "-n", ns)
    k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    rs_after = json.loads(k("get", "rs", "-n", ns, "-o", "json").stdout)["items"]
    assert {r["metadata"]["name"] for r in rs_after} == rs_before  # the old RS was reused
    revs = {
        r["spec"]["template"]["spec"]["containers"][0]["image"]: r["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"
        ]
        for r in rs_after
    }
    assert revs == {"tugboat/web:1": "3", "tugboat/web:2": "2"}

    k("rollout", "undo", "deployment/web", "-n", ns, "--to-revision=2")
    k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    image = k(
        "get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}"
    ).stdout
    assert image == "tugboat/web:2"
    assert replica_sets(k, ns) == {  # revision 2's ReplicaSet was reused and became revision 4
        "tugboat/web:1": ("3", 0),
        "tugboat/web:2": ("4", 3),
    }
    assert set(rs_names(k, ns)) == rs_before
    assert deployment(k, ns)["metadata"]["annotations"][REVISION] == "4"

    k("rollout", "pause", "deployment/web", "-n", ns)
    k("set", "env", "deployment/web", "-n", ns, "PAUSED=yes")  # a new pod template
    # paused: once the controller has seen the new template (observedGeneration), it must
    # neither create a ReplicaSet for it nor scale the existing ones
    paused = wait_until(lambda: observed(k, ns), what="the paused template change to be observed")
    assert paused["status"]["observedGeneration"] == paused["metadata"]["generation"]
    assert replica_sets(k, ns) == {"tugboat/web:1": ("3", 0), "tugboat/web:2": ("4", 3)}
    assert paused["metadata"]["annotations"][REVISION] == "4"
    undo_paused = k("rollout", "undo", "deployment/web", "-n", ns, check=False)
    assert undo_paused.returncode != 0 and "paused" in undo_paused.stderr
    k("rollout", "resume", "deployment/web", "-n", ns)
    k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")

    before = {p["metadata"]["name"] for p in pods_of(k, ns, "app=web")}
    k("rollout", "restart", "deployment/web", "-n", ns)
    k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    wait_until(
        lambda: not before & {p["metadata"]["name"] for p in pods_of(k, ns, "app=web")},
        what="restart to replace every pod",
    )

    k("scale", "deployment/web", "-n", ns, "--replicas=5")
    wait_until(
        lambda: (
            k("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.status.readyReplicas}").stdout
            == "5"
        ),
        what="scale to 5",
    )

    k("delete", "deployment", "web", "-n", ns)
    wait_until(lambda: not pods_of(k, ns, "app=web"), what="pods to go with the deployment")
    assert json.loads(k("get", "rs", "-n", ns, "-o", "json").stdout)["items"] == []


def test_rollout_status_fails_on_progress_deadline(k, ns):
    k("create", "deployment", "stuck", "-n", ns, "--image=tugboat/web:1", "--replicas=1")
    k("rollout", "status", "deployment/stuck", "-n", ns, "--timeout=60s")
    # a nodeSelector no node satisfies keeps the new pod Pending until the deadline passes
    k(
        "patch",
        "deployment",
        "stuck",
        "-n",
        ns,
        "-p",
        json.dumps(
            {
                "spec": {
                    "progressDeadlineSeconds": 2,
                    "template": {"spec": {"nodeSelector": {"no-such-label": "x"}}},
                }
            }
        ),
    )
    r = k("rollout", "status", "deployment/stuck", "-n", ns, "--timeout=60s", check=False)
    assert r.returncode != 0 and "exceeded its progress deadline" in r.stderr
