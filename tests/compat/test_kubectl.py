"""The real kubectl v1.33 against tugboat: the verbs of issue 2, output checked."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

pytestmark = pytest.mark.compat

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: tugboat/web:1
        env: [{name: A, value: "1"}]
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, labels: {tier: conf}}
data: {a: "1"}
"""


def test_apply_multi_document_file_and_get_variants(kubectl, namespace, tmp_path):
    manifest = tmp_path / "all.yaml"
    manifest.write_text("---\n".join([DEPLOY, SERVICE, CONFIGMAP]))
    out = kubectl("apply", "-n", namespace, "-f", str(manifest)).stdout
    assert "deployment.apps/web created" in out and "service/web created" in out
    assert "configmap/cfg created" in out
    again = kubectl("apply", "-n", namespace, "-f", str(manifest)).stdout
    assert "deployment.apps/web unchanged" in again

    table = kubectl("get", "deploy", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:2] == ["web", "0/2"]
    wide = kubectl("get", "deploy", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert "tugboat/web:1" in wide[1]
    svc = kubectl("get", "svc", "web", "-n", namespace).stdout.splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc[1].split()[1] == "ClusterIP" and svc[1].split()[2].startswith("10.96.")
    as_json = json.loads(kubectl("get", "cm", "cfg", "-n", namespace, "-o", "json").stdout)
    assert as_json["data"] == {"a": "1"}
    as_yaml = kubectl("get", "cm", "cfg", "-n", namespace, "-o", "yaml").stdout
    assert "kind: ConfigMap" in as_yaml and 'a: "1"' in as_yaml
    jp = kubectl(
        "get",
        "deploy",
        "web",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.strategy.type}/{.spec.replicas}",
    ).stdout
    assert jp == "RollingUpdate/2"
    by_label = kubectl("get", "cm", "-n", namespace, "-l", "tier=conf", "-o", "name").stdout
    assert by_label.split() == ["configmap/cfg"]
    labels = kubectl("get", "cm", "cfg", "-n", namespace, "--show-labels").stdout
    assert "tier=conf" in labels
    everywhere = kubectl("get", "cm", "-A").stdout
    assert namespace in everywhere and everywhere.splitlines()[0].split()[0] == "NAMESPACE"


def test_apply_directory(kubectl, namespace, tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a.yaml").write_text(CONFIGMAP)
    (d / "b.yaml").write_text(SERVICE)
    out = kubectl("apply", "-n", namespace, "-f", str(d)).stdout
    assert "configmap/cfg created" in out and "service/web created" in out


def test_apply_changed_manifest_removes_dropped_field(kubectl, namespace, tmp_path):
    f = tmp_path / "d.yaml"
    f.write_text(DEPLOY)
    kubectl("apply", "-n", namespace, "-f", str(f))
    f.write_text(
        DEPLOY.replace('        env: [{name: A, value: "1"}]\n', "").replace(
            "replicas: 2", "replicas: 3"
        )
    )
    diff = kubectl("diff", "-n", namespace, "-f", str(f), check=False)
    assert diff.returncode == 1 and "+  replicas: 3" in diff.stdout
    assert (
        "deployment.apps/web configured" in kubectl("apply", "-n", namespace, "-f", str(f)).stdout
    )
    obj = json.loads(kubectl("get", "deploy", "web", "-n", namespace, "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 3
    assert "env" not in obj["spec"]["template"]["spec"]["containers"][0]
    assert kubectl("diff", "-n", namespace, "-f", str(f), check=False).returncode == 0


def test_label_annotate_and_three_patch_types(kubectl, namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=CONFIGMAP)
    kubectl("label", "-n", namespace, "cm", "cfg", "x=y")
    kubectl("annotate", "-n", namespace, "cm", "cfg", "note=hi")
    kubectl("patch", "-n", namespace, "cm", "cfg", "-p", '{"data":{"b":"2"}}')
    kubectl(
        "patch",
        "-n",
        namespace,
        "cm",
        "cfg",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/data/c","value":"3"}]',
    )
    kubectl("patch", "-n", namespace, "cm", "cfg", "--type=merge", "-p", '{"data":{"a":null}}')
    obj = json.loads(kubectl("get", "cm", "cfg", "-n", namespace, "-o", "json").stdout)
    assert obj["data"] == {"b": "2", "c": "3"}
    assert obj["metadata"]["labels"]["x"] == "y"
    assert obj["metadata"]["annotations"]["note"] == "hi"
    kubectl("label", "-n", namespace, "cm", "cfg", "x-")
    obj = json.loads(kubectl("get", "cm", "cfg", "-n", namespace, "-o", "json").stdout)
    assert "x" not in obj["metadata"]["labels"]


def test_edit_replace_describe(kubectl, namespace, tmp_path):
    kubectl("apply", "-n", namespace, "-f", "-", input=CONFIGMAP)
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i \'s/^  a: "1"$/  a: "edited"/\' "$1"\n')
    editor.chmod(0o755)
    kubectl("edit", "-n", namespace, "cm", "cfg", env={"KUBE_EDITOR": str(editor)})
    assert (
        kubectl("get", "cm", "cfg", "-n", namespace, "-o", "jsonpath={.data.a}").stdout == "edited"
    )
    current = kubectl("get", "cm", "cfg", "-n", namespace, "-o", "yaml").stdout
    kubectl("replace", "-f", "-", input=current.replace("a: edited", "a: replaced"))
    assert (
        kubectl("get", "cm", "cfg", "-n", namespace, "-o", "jsonpath={.data.a}").stdout
        == "replaced"
    )
    stale = current.replace("a: edited", "a: stale")
    err = kubectl("replace", "-f", "-", input=stale, check=False)
    assert err.returncode != 0 and "Conflict" in err.stderr
    kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOY)
    out = kubectl("describe", "deploy", "web", "-n", namespace).stdout
    assert "Name:" in out and "web" in out and "RollingUpdate" in out


def test_delete_by_name_file_and_label(kubectl, namespace, tmp_path):
    f = tmp_path / "cm.yaml"
    f.write_text(CONFIGMAP)
    kubectl("apply", "-n", namespace, "-f", str(f))
    assert 'configmap "cfg" deleted' in kubectl("delete", "-n", namespace, "-f", str(f)).stdout
    kubectl("create", "configmap", "one", "-n", namespace, "--from-literal=a=b")
    assert 'configmap "one" deleted' in kubectl("delete", "cm", "one", "-n", namespace).stdout
    for name in ("l1", "l2"):
        kubectl("create", "configmap", name, "-n", namespace)
        kubectl("label", "cm", name, "-n", namespace, "group=g")
    kubectl("delete", "cm", "-n", namespace, "-l", "group=g")
    assert kubectl("get", "cm", "-n", namespace, "-o", "name").stdout.strip() == ""
    missing = kubectl("get", "cm", "nope", "-n", namespace, check=False)
    assert missing.returncode == 1
    assert 'Error from server (NotFound): configmaps "nope" not found' in missing.stderr


def test_get_watch_sees_a_change(kubectl_bin, api, kubectl, namespace):
    kubectl("create", "configmap", "watched", "-n", namespace)
    proc = subprocess.Popen(
        [
            kubectl_bin,
            "--kubeconfig",
            api.kubeconfig,
            "get",
            "cm",
            "-w",
            "-n",
            namespace,
            "-o",
            "name",
            "--request-timeout=20s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while not lines and time.monotonic() < deadline:
            time.sleep(0.05)
        kubectl("create", "configmap", "later", "-n", namespace)
        while not any("later" in ln for ln in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        reader.join(5)
    assert any("configmap/watched" in ln for ln in lines)
    assert any("configmap/later" in ln for ln in lines)


def test_discovery_verbs_and_explain(kubectl):
    resources = kubectl("api-resources").stdout
    assert "deployments" in resources and "apps/v1" in resources
    versions = kubectl("api-versions").stdout.split()
    assert "apps/v1" in versions and "v1" in versions
    explain = kubectl("explain", "pod.spec.containers").stdout
    assert "FIELD: containers" in explain and "image" in explain
    version = kubectl("version", "-o", "json").stdout
    assert json.loads(version)["serverVersion"]["gitVersion"].startswith("v1.33")


def test_invalid_object_reports_fields(kubectl, namespace):
    bad = DEPLOY.replace("metadata: {labels: {app: web}}", "metadata: {labels: {app: other}}")
    assert bad != DEPLOY
    r = kubectl("apply", "-n", namespace, "-f", "-", input=bad, check=False)
    assert r.returncode == 1 and "Invalid" in r.stderr and "selector" in r.stderr
