"""``tug describe pod|deployment|replicaset|service|node`` next to the real kubectl's describe
of the same objects, on a control plane with a hollow node (so the objects have replica sets,
pods, events and a lease)."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from cli.tabwriter import tabwriter
from tests.conftest import ClusterProcesses

from .conftest import KUBECTL, Result, run_tug

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web, tier: front}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: busybox:1.35
        command: [sleep, "3600"]
        ports: [{containerPort: 80}]
        env: [{name: MODE, value: test}]
        resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 80}]}
"""
KEYS = ("Name:", "Namespace:", "Labels:", "Selector:", "Replicas:", "Events:")
AGE = re.compile(r"\b(\d+[smhd])+\b")
TIME = re.compile(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}")


def _norm(text: str) -> list[str]:
    """Lines with ages and times blanked (the two commands run a moment apart)."""
    return [TIME.sub("TIME", AGE.sub("AGE", line)) for line in text.splitlines()]


def _key_lines(text: str) -> list[str]:
    """The lines the brief names plus the Events table header (as laid out: the alignment
    depends on every line around them)."""
    lines = text.splitlines()
    out = [ln for ln in lines if ln.startswith(KEYS)]
    if "Events:" in lines:
        at = lines.index("Events:")
        out += lines[at + 1 : at + 3]
    return out


@pytest.fixture(scope="module")
def deployed(cluster: ClusterProcesses) -> tuple[ClusterProcesses, str]:
    if not KUBECTL.exists():
        pytest.skip("kubectl not installed (bash hack/get-kubectl.sh)")
    ns = f"t-{uuid.uuid4().hex[:8]}"
    kc = cluster.kubeconfig
    assert run_tug("--kubeconfig", kc, "create", "namespace", ns).code == 0
    assert run_tug("--kubeconfig", kc, "apply", "-f", "-", "-n", ns, stdin=APP).code == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        res = run_tug("--kubeconfig", kc, "get", "deploy", "web", "-n", ns, "--no-headers")
        if res.out.split()[1:2] == ["2/2"]:
            return cluster, ns
        time.sleep(0.2)
    raise AssertionError(f"deployment not ready: {res.out}")


def _both(cluster: ClusterProcesses, *argv: str) -> tuple[Result, Result]:
    import os
    import subprocess

    mine = run_tug("--kubeconfig", cluster.kubeconfig, "describe", *argv)
    p = subprocess.run(
        [str(KUBECTL), "--kubeconfig", cluster.kubeconfig, "describe", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECTL_COMMAND_HEADERS": "false"},
    )
    return mine, Result(p.returncode, p.stdout, p.stderr)


def _target(cluster: ClusterProcesses, ns: str, kind: str) -> list[str]:
    if kind == "node":
        name = run_tug("--kubeconfig", cluster.kubeconfig, "get", "nodes", "-o", "name").out
        return ["node", name.split()[0].split("/")[1]]
    if kind in ("pod", "replicaset"):
        res = run_tug("--kubeconfig", cluster.kubeconfig, "get", kind, "-l", "app=web", "-n", ns,
                      "-o", "name")  # fmt: skip
        return [kind, res.out.split()[0].split("/")[1], "-n", ns]
    return [kind, "web", "-n", ns]


@pytest.mark.parametrize("kind", ["pod", "deployment", "replicaset", "service", "node"])
def test_describe_like_kubectl(deployed: tuple[ClusterProcesses, str], kind: str) -> None:
    cluster, ns = deployed
    mine, theirs = _both(cluster, *_target(cluster, ns, kind))
    assert (mine.code, mine.err) == (theirs.code, theirs.err) == (0, "")
    assert _norm("\n".join(_key_lines(mine.out))) == _norm("\n".join(_key_lines(theirs.out)))
    # and, save what moves between the two commands (ages, times, event counts), every line
    volatile = re.compile(r"^\s*(Normal|Warning)\s|RenewTime:|KubeletReady|Lease")
    keep = [ln for ln in _norm(mine.out) if not volatile.search(ln)]
    assert keep == [ln for ln in _norm(theirs.out) if not volatile.search(ln)]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["a:\t1", "long key:\t2"], ["a:         1", "long key:  2"]),
        (["a:\t1", "break", "bb:\t2"], ["a:  1", "break", "bb:  2"]),
        (["Port:\t<unset>\t80/TCP", "IP:\tx"], ["Port:  <unset>  80/TCP", "IP:    x"]),
        (
            ["  T\tS", "  ----\t--", "  Ready \tTrue "],
            ["  T       S", "  ----    --", "  Ready   True "],
        ),
        (["k:\tv", "\tw=1"], ["k:  v", "    w=1"]),
    ],
    ids=["column", "block-break", "trailing-cell", "table", "continuation"],
)
def test_tabwriter_lays_out_like_go(lines: list[str], expected: list[str]) -> None:
    assert tabwriter(lines).splitlines() == expected
