"""``tug get`` prints what the real kubectl prints for the same objects, column for column."""

from __future__ import annotations

import re

import pytest

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: nginx, image: "nginx:1.25", ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 80}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, labels: {tier: x, app.kubernetes.io/part-of: shop}}
data: {a: "1", b: "2"}
---
apiVersion: v1
kind: Pod
metadata: {name: solo, labels: {run: solo}}
spec: {containers: [{name: c, image: busybox}]}
"""
AGE = re.compile(r"\b\d+(s|m|h|d)(\d+s)?\b")


def _norm(text: str) -> list[list[str]]:
    """Lines split on column gaps, ages blanked (the two commands run a moment apart)."""
    return [re.split(r"\s{2,}", AGE.sub("AGE", line.rstrip())) for line in text.splitlines()]


@pytest.fixture
def app_ns(tug, ns):
    res = tug("apply", "-f", "-", "-n", ns, stdin=APP)
    assert res.code == 0, res.err
    return ns


@pytest.mark.parametrize(
    "argv",
    [
        ["pods"],
        ["deployments"],
        ["deploy", "-o", "wide"],
        ["services"],
        ["svc", "web", "-o", "wide"],
        ["configmaps", "--show-labels"],
        ["cm", "-l", "tier=x"],
        ["deploy,svc,cm"],
        ["all"],
        ["pod/solo", "deploy/web"],
        ["pods", "--field-selector", "metadata.name=solo"],
        ["cm", "--no-headers"],
        ["deploy", "web", "-o", "yaml"],
        ["cm", "-o", "json"],
        ["all", "-o", "name"],
        ["deploy", "-o", "jsonpath={.items[*].metadata.name}"],
        ["cm", "-o", "custom-columns=NAME:.metadata.name,KEYS:.data"],
        ["pods", "-L", "run"],
        ["deploy,cm", "-L", "app,tier", "-L", "app.kubernetes.io/part-of"],
        ["cm", "--label-columns", "tier", "--show-labels"],
        ["pods", "-L", "run", "-o", "wide", "--no-headers"],
    ],
    ids=lambda a: " ".join(a),
)
def test_namespaced_like_kubectl(tug, kubectl, app_ns, argv):
    mine = tug("get", *argv, "-n", app_ns)
    theirs = kubectl("get", *argv, "-n", app_ns)
    assert mine.code == theirs.code == 0, (mine.err, theirs.err)
    assert _norm(mine.out) == _norm(theirs.out)


@pytest.mark.parametrize(
    "argv",
    [["namespaces"], ["nodes"], ["ns", "default", "kube-system"], ["ns", "-o", "wide"]],
    ids=lambda a: " ".join(a),
)
def test_cluster_scoped_like_kubectl(tug, kubectl, argv):
    mine, theirs = tug("get", *argv), kubectl("get", *argv)
    assert mine.code == theirs.code
    # other tests create namespaces concurrently with nothing; compare the shared rows
    assert _norm(mine.out)[:1] == _norm(theirs.out)[:1]
    assert {tuple(r) for r in _norm(mine.out)} <= {tuple(r) for r in _norm(theirs.out)} | {
        tuple(r) for r in _norm(mine.out) if r[0].startswith("t-")
    }


def test_all_namespaces_column(tug, kubectl, app_ns):
    mine = [r for r in _norm(tug("get", "cm", "-A").out) if r[0] in ("NAMESPACE", app_ns)]
    theirs = [r for r in _norm(kubectl("get", "cm", "-A").out) if r[0] in ("NAMESPACE", app_ns)]
    assert mine == theirs
    assert mine[0][:2] == ["NAMESPACE", "NAME"]


def test_empty_and_missing_like_kubectl(tug, kubectl, ns):
    mine, theirs = tug("get", "pods", "-n", ns), kubectl("get", "pods", "-n", ns)
    assert (
        (mine.out, mine.err)
        == (theirs.out, theirs.err)
        == ("", f"No resources found in {ns} namespace.\n")
    )
    mine, theirs = tug("get", "pods", "ghost", "-n", ns), kubectl("get", "pods", "ghost", "-n", ns)
    assert mine.err == theirs.err and mine.code == theirs.code == 1


def test_kubectl_then_tug_apply_is_unchanged(tug, kubectl, ns, tmp_path):
    """The last-applied annotation is written exactly as kubectl writes it."""
    f = tmp_path / "app.yaml"
    f.write_text(APP)
    assert kubectl("apply", "-f", str(f), "-n", ns).code == 0
    res = tug("apply", "-f", str(f), "-n", ns)
    assert res.out.split("\n")[:-1] == [
        "deployment.apps/web unchanged",
        "service/web unchanged",
        "configmap/cfg unchanged",
        "pod/solo unchanged",
    ]
    f.write_text(APP.replace("nginx:1.25", "nginx:1.26"))
    assert tug("apply", "-f", str(f), "-n", ns).out.startswith("deployment.apps/web configured")
    assert kubectl("apply", "-f", str(f), "-n", ns).out.startswith("deployment.apps/web unchanged")
