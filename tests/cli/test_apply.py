"""apply / create -f / delete against the real API server."""

from __future__ import annotations

import json

import pytest

from cli.verbs.apply import LAST_APPLIED

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: nginx
        image: {image}
{extra}"""
CM = """\
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: "1"}
"""


def manifest(image="nginx:1.25", replicas=2, extra=""):
    return DEPLOY.format(image=image, replicas=replicas, extra=extra) + CM


def test_apply_create_unchanged_configured(tug, ns, tmp_path, api):
    f = tmp_path / "app.yaml"
    f.write_text(manifest())
    res = tug("apply", "-f", str(f), "-n", ns)
    assert (res.code, res.out) == (0, "deployment.apps/web created\nconfigmap/cfg created\n")
    res = tug("apply", "-f", str(f), "-n", ns)
    assert res.out == "deployment.apps/web unchanged\nconfigmap/cfg unchanged\n"
    f.write_text(manifest(image="nginx:1.26"))
    res = tug("apply", "-f", str(f), "-n", ns)
    assert res.out == "deployment.apps/web configured\nconfigmap/cfg unchanged\n"
    client = api.client()
    from machinery.kinds import lookup

    dep = client.get(lookup("deployments"), "web", ns)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    recorded = json.loads(dep["metadata"]["annotations"][LAST_APPLIED])
    assert recorded["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"


def test_apply_removes_dropped_fields_keeps_others(tug, ns, tmp_path, api):
    from machinery.kinds import lookup

    f = tmp_path / "cm.yaml"
    f.write_text(CM.replace('data: {a: "1"}', 'data: {a: "1", b: "2"}'))
    assert tug("apply", "-f", str(f), "-n", ns).code == 0
    client = api.client()
    rt = lookup("configmaps")
    client.patch(rt, "cfg", {"data": {"other": "x"}}, ns)  # someone else's field
    f.write_text(CM)
    assert tug("apply", "-f", str(f), "-n", ns).out == "configmap/cfg configured\n"
    assert client.get(rt, "cfg", ns)["data"] == {"a": "1", "other": "x"}


def test_apply_dry_run_and_stdin(tug, ns, api):
    res = tug("apply", "-f", "-", "-n", ns, "--dry-run=client", stdin=CM)
    assert res.out == "configmap/cfg created (dry run)\n"
    res = tug("apply", "-f", "-", "-n", ns, "--dry-run=server", stdin=CM)
    assert res.out == "configmap/cfg created (server dry run)\n"
    res = tug("get", "cm", "cfg", "-n", ns)
    assert res.code == 1 and "NotFound" in res.err


def test_apply_directory_recursive_and_json(tug, ns, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text(CM)
    (tmp_path / "sub" / "b.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "deep"}})
    )
    (tmp_path / "notes.txt").write_text("ignored")
    assert tug("apply", "-f", str(tmp_path), "-n", ns).out == "configmap/cfg created\n"
    res = tug("apply", "-R", "-f", str(tmp_path), "-n", ns)
    assert res.out == "configmap/cfg unchanged\nconfigmap/deep created\n"


@pytest.mark.parametrize(
    ("text", "err"),
    [
        ("a: b\n  c: d\n", "yaml: line 2, column 4: mapping values are not allowed here"),
        ('{"kind": "ConfigMap",\n "x": }', "json: line 2, column 7"),
        ("metadata: {name: x}\n", "[apiVersion not set, kind not set]"),
        ("apiVersion: v9\nkind: Flub\nmetadata: {name: x}\n", 'kind "Flub" in version "v9"'),
    ],
    ids=["yaml-syntax", "json-syntax", "no-kind", "unknown-kind"],
)
def test_apply_bad_input(tug, tmp_path, text, err):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    res = tug("apply", "-f", str(f))
    assert res.code == 1
    assert err in res.err
    assert res.err.startswith("error: ") and res.err.count("\n") == 1


def test_apply_missing_file(tug, tmp_path):
    res = tug("apply", "-f", str(tmp_path / "nope.yaml"))
    assert res.code == 1
    assert res.err == f'error: the path "{tmp_path / "nope.yaml"}" does not exist\n'


def test_apply_namespace_mismatch(tug, ns):
    doc = CM.replace("name: cfg", "name: cfg, namespace: elsewhere")
    res = tug("apply", "-f", "-", "-n", ns, stdin=doc)
    assert res.code == 1
    assert 'the namespace from the provided object "elsewhere" does not match' in res.err


def test_create_from_file_then_conflict(tug, ns, tmp_path):
    f = tmp_path / "cm.yaml"
    f.write_text(CM)
    assert tug("create", "-f", str(f), "-n", ns).out == "configmap/cfg created\n"
    res = tug("create", "-f", str(f), "-n", ns)
    assert res.code == 1
    assert res.err == (
        f'Error from server (AlreadyExists): error when creating "{f}": '
        'configmaps "cfg" already exists\n'
    )


def test_delete_by_name_selector_all_and_file(tug, ns, tmp_path, api):
    for name in ("a", "b", "c"):
        assert tug("create", "cm", name, "--from-literal", "k=v", "-n", ns).code == 0
    assert tug("label", "cm", "a", "b", "tier=x", "-n", ns).code == 0
    res = tug("delete", "cm", "-l", "tier=x", "-n", ns)
    assert (res.code, res.out) == (0, 'configmap "a" deleted\nconfigmap "b" deleted\n')
    res = tug("delete", "configmap/c", "-n", ns)
    assert res.out == 'configmap "c" deleted\n'
    res = tug("delete", "cm", "c", "-n", ns)
    assert res.code == 1 and res.err == 'Error from server (NotFound): configmaps "c" not found\n'
    assert tug("delete", "cm", "c", "-n", ns, "--ignore-not-found").code == 0
    f = tmp_path / "cm.yaml"
    f.write_text(CM)
    tug("apply", "-f", str(f), "-n", ns)
    res = tug("delete", "-f", str(f), "-n", ns, "--cascade=foreground", "--wait=false")
    assert res.out == 'configmap "cfg" deleted\n'
    from machinery.kinds import lookup

    client, rt = api.client(), lookup("configmaps")
    pending = client.get(rt, "cfg", ns)  # foreground: kept until the garbage collector acts
    assert pending["metadata"]["finalizers"] == ["foregroundDeletion"]
    client.patch(rt, "cfg", {"metadata": {"finalizers": None}}, ns)
    assert tug("create", "cm", "z", "-n", ns).code == 0
    res = tug("delete", "cm", "--all", "-n", ns)
    assert res.out.endswith('configmap "z" deleted\n')
    assert tug("get", "cm", "-n", ns, "-o", "name").out.count("configmap/z") == 0
    res = tug("delete", "cm", "-n", ns)
    assert res.code == 1 and "no name was specified" in res.err
