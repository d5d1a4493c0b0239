"""`kubectl apply --server-side` against tugboat: ownership, removal, conflicts, force."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.compat

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
  labels: {app: ssa, tier: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: ssa}}
  template:
    metadata: {labels: {app: ssa}}
    spec:
      containers:
      - name: web
        image: tugboat/web:1
"""


def get(kubectl, ns: str) -> dict:
    return json.loads(
        kubectl("get", "deploy", "ssa", "-n", ns, "-o", "json", "--show-managed-fields").stdout
    )


def test_server_side_apply_lifecycle(kubectl, namespace):
    out = kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=MANIFEST).stdout
    assert "deployment.apps/ssa serverside-applied" in out
    d = get(kubectl, namespace)
    managers = {(m["manager"], m["operation"]) for m in d["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    applied = next(m for m in d["metadata"]["managedFields"] if m["operation"] == "Apply")
    assert "f:replicas" in applied["fieldsV1"]["f:spec"]

    # re-apply without the tier label: the field this manager owned goes away
    kubectl(
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        "-",
        input=MANIFEST.replace(", tier: web", ""),
    )
    assert get(kubectl, namespace)["metadata"]["labels"] == {"app": "ssa"}

    # another manager changes replicas; applying a different value now conflicts
    kubectl("scale", "deploy", "ssa", "-n", namespace, "--replicas=5")
    conflict = kubectl(
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        "-",
        input=MANIFEST.replace("replicas: 2", "replicas: 3"),
        check=False,
    )
    assert conflict.returncode != 0
    assert "conflict" in conflict.stderr.lower() and ".spec.replicas" in conflict.stderr
    assert get(kubectl, namespace)["spec"]["replicas"] == 5

    kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-n",
        namespace,
        "-f",
        "-",
        input=MANIFEST.replace("replicas: 2", "replicas: 3"),
    )
    d = get(kubectl, namespace)
    assert d["spec"]["replicas"] == 3
    owners = [
        m["manager"]
        for m in d["metadata"]["managedFields"]
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    ]
    assert owners == ["kubectl"]
