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


MORE = """\
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs1, labels: {app: rs1}}
spec:
  replicas: 3
  selector: {matchLabels: {app: rs1}}
  template:
    metadata: {labels: {app: rs1}}
    spec: {containers: [{name: a, image: "busybox:1.35"}, {name: b, image: "nginx:1.25"}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: cpu}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: ReplicaSet, name: rs1}
  minReplicas: 2
  maxReplicas: 6
  metrics:
  - {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: mem}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 3
  metrics:
  - {type: Resource, resource: {name: memory, target: {type: AverageValue, averageValue: 100Mi}}}
  - {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}}
---
apiVersion: v1
kind: Secret
metadata: {name: plain}
stringData: {user: admin, password: s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: cert}
type: kubernetes.io/tls
data: {tls.crt: Y3J0, tls.key: a2V5}
---
apiVersion: v1
kind: Secret
metadata: {name: empty}
type: example.com/custom
"""


def _event(ns: str, name: str, kind: str, obj: str, reason: str, etype: str, ago: int) -> dict:
    from datetime import UTC, datetime, timedelta

    when = (datetime.now(UTC) - timedelta(seconds=ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"kind": kind, "name": obj, "namespace": ns},
        "reason": reason,
        "message": f"{reason} happened to {obj}",
        "type": etype,
        "source": {"component": "tester"},
        "count": 2,
        "firstTimestamp": when,
        "lastTimestamp": when,
    }


@pytest.fixture
def more_ns(tug, ns, api):
    """A ReplicaSet and two HPAs with a status written by hand, three Secrets, two Events."""
    from machinery.kinds import builtin, lookup

    res = tug("apply", "-f", "-", "-n", ns, stdin=APP + "---\n" + MORE)
    assert res.code == 0, res.err
    with api.client() as client:
        rs = client.get(lookup("replicasets"), "rs1", ns)
        rs["status"] = {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2}
        client.update(lookup("replicasets"), rs, subresource="status")
        hpas = builtin("autoscaling/v2", "HorizontalPodAutoscaler")
        hpa = client.get(hpas, "cpu", ns)
        hpa["status"] = {
            "currentReplicas": 3,
            "desiredReplicas": 3,
            "currentMetrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "current": {"averageUtilization": 42, "averageValue": "42m"},
                    },
                }
            ],
        }
        client.update(hpas, hpa, subresource="status")
        events = lookup("events")
        client.create(events, _event(ns, "e1", "Pod", "solo", "Pulled", "Normal", 300), ns)
        client.create(
            events, _event(ns, "e2", "ReplicaSet", "rs1", "FailedCreate", "Warning", 90), ns
        )
    return ns


@pytest.mark.parametrize(
    "argv",
    [
        ["replicasets"],
        ["rs", "-o", "wide"],
        ["rs", "rs1", "--show-labels"],
        ["hpa"],
        ["hpa", "-o", "wide"],
        ["secrets"],
        ["secret", "cert", "plain", "-o", "wide"],
        ["events"],
        ["events", "-o", "wide"],
        ["rs,hpa,secrets"],
    ],
    ids=lambda a: " ".join(a),
)
def test_more_kinds_like_kubectl(tug, kubectl, more_ns, argv):
    mine = tug("get", *argv, "-n", more_ns)
    theirs = kubectl("get", *argv, "-n", more_ns)
    assert mine.code == theirs.code == 0, (mine.err, theirs.err)
    assert _norm(mine.out) == _norm(theirs.out)
