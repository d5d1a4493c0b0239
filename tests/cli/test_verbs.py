"""create generators, label/annotate/patch/scale/set image/edit, rollout, nodes, wait, info."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import pytest

from machinery.kinds import lookup


def _get(api, kind, name, ns=None):
    return api.client().get(lookup(kind), name, ns)


def test_create_generators(tug, ns, api, tmp_path):
    assert (
        tug(
            "create",
            "deployment",
            "d",
            "--image",
            "reg.io/team/nginx:1.25",
            "--replicas",
            "3",
            "-n",
            ns,
        ).out
        == "deployment.apps/d created\n"
    )
    d = _get(api, "deployments", "d", ns)
    assert d["spec"]["replicas"] == 3
    assert d["spec"]["template"]["spec"]["containers"][0]["name"] == "nginx"
    assert d["spec"]["selector"] == {"matchLabels": {"app": "d"}}
    (tmp_path / "f.txt").write_text("hello")
    assert (
        tug(
            "create",
            "configmap",
            "c",
            "--from-literal",
            "a=1",
            "--from-file",
            str(tmp_path / "f.txt"),
            "-n",
            ns,
        ).out
        == "configmap/c created\n"
    )
    assert _get(api, "configmaps", "c", ns)["data"] == {"a": "1", "f.txt": "hello"}
    assert (
        tug("create", "secret", "generic", "s", "--from-literal", "pw=x y", "-n", ns).out
        == "secret/s created\n"
    )
    assert base64.b64decode(_get(api, "secrets", "s", ns)["data"]["pw"]) == b"x y"
    res = tug("run", "p", "--image", "busybox", "-n", ns, "--", "sleep", "5")
    assert res.out == "pod/p created\n"
    pod = _get(api, "pods", "p", ns)
    assert pod["spec"]["containers"][0]["args"] == ["sleep", "5"]
    assert pod["metadata"]["labels"] == {"run": "p"}
    assert (
        tug("expose", "deploy", "d", "--port", "80", "--target-port", "8080", "-n", ns).out
        == "service/d exposed\n"
    )
    svc = _get(api, "services", "d", ns)
    assert svc["spec"]["selector"] == {"app": "d"}
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    res = tug("create", "deployment", "x", "--image", "i", "--dry-run=client", "-o", "yaml")
    assert "kind: Deployment" in res.out and res.code == 0


def test_label_annotate_patch(tug, ns, api):
    tug("create", "cm", "c", "-n", ns)
    assert tug("label", "cm", "c", "a=1", "-n", ns).out == "configmap/c labeled\n"
    res = tug("label", "cm", "c", "a=2", "-n", ns)
    assert res.code == 1 and "--overwrite is false" in res.err
    assert tug("label", "cm/c", "a=2", "--overwrite", "-n", ns).code == 0
    assert tug("label", "cm", "c", "a-", "-n", ns).out == "configmap/c labeled\n"
    assert _get(api, "configmaps", "c", ns)["metadata"].get("labels") in (None, {})
    assert tug("annotate", "cm", "c", "note=hi", "-n", ns).out == "configmap/c annotated\n"
    assert _get(api, "configmaps", "c", ns)["metadata"]["annotations"]["note"] == "hi"
    assert (
        tug("patch", "cm", "c", "-p", '{"data":{"k":"v"}}', "-n", ns).out == "configmap/c patched\n"
    )
    assert (
        tug(
            "patch",
            "cm",
            "c",
            "--type",
            "json",
            "-n",
            ns,
            "-p",
            '[{"op":"replace","path":"/data/k","value":"w"}]',
        ).code
        == 0
    )
    assert _get(api, "configmaps", "c", ns)["data"] == {"k": "w"}
    res = tug("patch", "cm", "c", "--type", "merge", "-p", '{"data":{"k":"w"}}', "-n", ns)
    assert res.out == "configmap/c patched (no change)\n"


def test_scale_set_image_rollout(tug, ns, api):
    tug("create", "deployment", "d", "--image", "nginx:1", "-n", ns)
    assert tug("scale", "deploy/d", "--replicas=4", "-n", ns).out == "deployment.apps/d scaled\n"
    assert _get(api, "deployments", "d", ns)["spec"]["replicas"] == 4
    assert (
        tug("set", "image", "deploy/d", "nginx=nginx:2", "-n", ns).out
        == "deployment.apps/d image updated\n"
    )
    d = _get(api, "deployments", "d", ns)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    res = tug("set", "image", "deploy/d", "nope=x", "-n", ns)
    assert res.code == 1 and 'unable to find container named "nope"' in res.err
    assert tug("rollout", "pause", "deploy/d", "-n", ns).out == "deployment.apps/d paused\n"
    assert _get(api, "deployments", "d", ns)["spec"]["paused"] is True
    res = tug("rollout", "undo", "deploy/d", "-n", ns)
    assert res.code == 1 and "paused" in res.err
    assert tug("rollout", "resume", "deploy/d", "-n", ns).out == "deployment.apps/d resumed\n"
    assert not _get(api, "deployments", "d", ns)["spec"].get("paused")
    assert tug("rollout", "restart", "deploy/d", "-n", ns).code == 0
    tmpl = _get(api, "deployments", "d", ns)["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in tmpl["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("gen", "observed", "spec", "status", "done", "text"),
    [
        (2, 1, 3, {}, False, "Waiting for deployment spec update to be observed..."),
        (1, 1, 3, {"updatedReplicas": 1}, False, "1 out of 3 new replicas have been updated"),
        (
            1,
            1,
            3,
            {"updatedReplicas": 3, "replicas": 4},
            False,
            "1 old replicas are pending termination",
        ),
        (
            1,
            1,
            3,
            {"updatedReplicas": 3, "replicas": 3, "availableReplicas": 2},
            False,
            "2 of 3 updated replicas are available",
        ),
        (
            1,
            1,
            3,
            {"updatedReplicas": 3, "replicas": 3, "availableReplicas": 3},
            True,
            'deployment "d" successfully rolled out',
        ),
    ],
    ids=["unobserved", "updating", "old-pending", "unavailable", "done"],
)
def test_rollout_status_message(gen, observed, spec, status, done, text):
    from cli.verbs.rollout import status_message

    dep = {
        "metadata": {"name": "d", "generation": gen},
        "spec": {"replicas": spec},
        "status": {"observedGeneration": observed, **status},
    }
    msg, finished = status_message(dep)
    assert finished is done and text in msg


def test_rollout_status_deadline_exceeded():
    from cli.errors import CliError
    from cli.verbs.rollout import status_message

    dep = {
        "metadata": {"name": "d", "generation": 1},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
            ],
        },
    }
    with pytest.raises(CliError, match="exceeded its progress deadline"):
        status_message(dep)


def test_rollout_status_follows_watch(tug, ns, api):
    """status waits on the watch until the status fields say done (written by this test)."""
    import threading

    tug("create", "deployment", "d", "--image", "nginx", "-n", ns)
    client = api.client()
    rt = lookup("deployments")

    def finish():
        d = client.get(rt, "d", ns)
        d["status"] = {
            "observedGeneration": d["metadata"]["generation"],
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1,
            "readyReplicas": 1,
        }
        client.update(rt, d, subresource="status")

    res_box = {}
    t = threading.Thread(
        target=lambda: res_box.setdefault(
            "r", tug("rollout", "status", "deploy/d", "-n", ns, "--timeout=20s")
        )
    )
    t.start()
    finish()
    t.join(30)
    res = res_box["r"]
    assert res.code == 0, res.err
    assert res.out.endswith('deployment "d" successfully rolled out\n')


def test_cordon_uncordon(tug, api):
    client = api.client()
    name = f"node-{id(api) % 10000}"
    client.create(lookup("nodes"), {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    assert tug("cordon", name).out == f"node/{name} cordoned\n"
    assert client.get(lookup("nodes"), name)["spec"]["unschedulable"] is True
    assert tug("cordon", name).out == f"node/{name} already cordoned\n"
    assert tug("uncordon", name).out == f"node/{name} uncordoned\n"
    assert not client.get(lookup("nodes"), name)["spec"].get("unschedulable")
    res = tug("describe", "node", name)
    assert res.code == 0 and "Name:" in res.out and re.search(r"Unschedulable:\s+false", res.out)
    client.delete(lookup("nodes"), name)


def test_wait_for_condition_and_delete(tug, ns, api):
    tug("create", "deployment", "d", "--image", "nginx", "-n", ns)
    client = api.client()
    d = client.get(lookup("deployments"), "d", ns)
    d["status"] = {"conditions": [{"type": "Available", "status": "True"}]}
    client.update(lookup("deployments"), d, subresource="status")
    res = tug("wait", "--for=condition=Available", "deploy/d", "-n", ns, "--timeout=10s")
    assert (res.code, res.out) == (0, "deployment.apps/d condition met\n")
    res = tug("wait", "--for=condition=Progressing", "deploy/d", "-n", ns, "--timeout=0.3s")
    assert res.code == 1 and "timed out" in res.err
    tug("create", "cm", "gone", "-n", ns)
    tug("delete", "cm", "gone", "-n", ns)
    assert tug("wait", "--for=delete", "cm/gone", "-n", ns, "--timeout=5s").code == 0


def test_describe_kinds(tug, ns):
    tug("create", "deployment", "d", "--image", "nginx:1", "-n", ns)
    tug("expose", "deploy", "d", "--port", "80", "-n", ns)
    tug("run", "p", "--image", "busybox", "-n", ns)
    tug("autoscale", "deploy/d", "--max", "3", "--cpu-percent", "50", "-n", ns)
    for argv, wanted in [
        (["deploy", "d"], ["Name:", "Replicas:", "StrategyType:", "Pod Template:", "Events:"]),
        (["svc", "d"], ["Selector:", "Type:", "ClusterIP", "TargetPort:"]),
        (["pod", "p"], ["Containers:", "Image:", "busybox", "Status:"]),
        (["hpa", "d"], ["Reference:", "Deployment/d", "Max replicas:"]),
    ]:
        res = tug("describe", *argv, "-n", ns)
        assert res.code == 0, res.err
        for w in wanted:
            assert w in res.out, (argv, w, res.out)
    res = tug("describe", "pod", "ghost", "-n", ns)
    assert res.code == 1 and res.err == 'Error from server (NotFound): pods "ghost" not found\n'


def test_describe_lists_events(tug, ns, api):
    tug("run", "p", "--image", "busybox", "-n", ns)
    pod = _get(api, "pods", "p", ns)
    api.client().create(
        lookup("events"),
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "p.1", "namespace": ns},
            "involvedObject": {
                "kind": "Pod",
                "name": "p",
                "namespace": ns,
                "uid": pod["metadata"]["uid"],
            },
            "reason": "Scheduled",
            "message": "Successfully assigned",
            "type": "Normal",
            "source": {"component": "default-scheduler"},
            "count": 1,
            "firstTimestamp": pod["metadata"]["creationTimestamp"],
            "lastTimestamp": pod["metadata"]["creationTimestamp"],
        },
    )
    out = tug("describe", "pod", "p", "-n", ns).out
    assert "Events:" in out and "Scheduled" in out and "default-scheduler" in out


def test_edit_with_editor(tug, ns, api, tmp_path, monkeypatch):
    tug("create", "cm", "c", "--from-literal", "a=1", "-n", ns)
    script = tmp_path / "ed.py"
    script.write_text(
        "import sys,re\np=sys.argv[1]\ns=open(p).read()\n"
        "open(p,'w').write(s.replace('a: \"1\"','a: \"2\"'))\n"
    )
    monkeypatch.setenv("KUBE_EDITOR", f"{sys.executable} {script}")
    assert tug("edit", "cm/c", "-n", ns).out == "configmap/c edited\n"
    assert _get(api, "configmaps", "c", ns)["data"] == {"a": "2"}
    monkeypatch.setenv("KUBE_EDITOR", "true")
    assert tug("edit", "cm/c", "-n", ns).out == "Edit cancelled, no changes made.\n"


def test_info_verbs(tug, api, kubectl):
    res = tug("version")
    assert res.code == 0 and res.out.startswith("Client Version: v")
    assert "Server Version: v1." in res.out
    assert tug("cluster-info").out.startswith(f"Kubernetes control plane is running at {api.url}\n")
    mine = tug("api-resources").out.splitlines()
    theirs = kubectl("api-resources").out.splitlines()
    assert [line.split()[0] for line in mine] == [line.split()[0] for line in theirs]
    res = tug("explain", "deployment.spec.replicas")
    assert res.code == 0 and "FIELD: replicas <integer>" in res.out
    assert "does not exist" in tug("explain", "pods.spec.nope").err


def test_config_verbs(tmp_path, api):
    import yaml

    from tests.cli.conftest import run_tug

    doc = yaml.safe_load(Path(api.kubeconfig).read_text())
    doc["contexts"].append(
        {
            "name": "other",
            "context": {"cluster": "tugboat", "user": "tugboat", "namespace": "kube-system"},
        }
    )
    doc["users"][0]["user"] = {"token": "s3cret"}
    cfg = tmp_path / "config"
    cfg.write_text(yaml.safe_dump(doc))
    k = ["--kubeconfig", str(cfg)]
    out = run_tug(*k, "config", "get-contexts").out.splitlines()
    assert out[0].split() == ["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
    assert out[1].split()[:2] == ["*", "tugboat"]
    assert run_tug(*k, "config", "use-context", "other").out == 'Switched to context "other".\n'
    assert run_tug(*k, "config", "current-context").out == "other\n"
    assert run_tug(*k, "get", "cm", "-o", "name").code == 0  # talks to kube-system now
    view = run_tug(*k, "config", "view").out
    assert "REDACTED" in view and "s3cret" not in view
    assert "s3cret" in run_tug(*k, "config", "view", "--raw").out
    assert (
        json.loads(run_tug(*k, "config", "view", "--minify", "-o", "json").out)["current-context"]
        == "other"
    )
    res = run_tug(*k, "config", "use-context", "nope")
    assert res.code == 1 and 'no context exists with the name: "nope"' in res.err


def test_exec_and_logs_client_side():
    from cli.verbs.pods import default_container, exit_code

    assert exit_code({"status": "Success"}) == 0
    assert (
        exit_code(
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "7"}]},
            }
        )
        == 7
    )
    pod = {
        "metadata": {"name": "p", "annotations": {"kubectl.kubernetes.io/default-container": "b"}},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
    }
    assert default_container(pod, None) == "b"
    assert default_container(pod, "a") == "a"


def test_logs_and_exec_report_server_errors(tug, ns):
    tug("run", "p", "--image", "busybox", "-n", ns)
    for argv in (["logs", "p"], ["exec", "p", "--", "ls"]):
        res = tug(*argv, "-n", ns)
        assert res.code != 0 or res.out  # works once the kubelet proxy exists
        assert "Traceback" not in res.err and res.err.count("\n") <= 1


def test_autoscale_creates_hpa(tug, ns, api):
    tug("create", "deployment", "d", "--image", "nginx", "-n", ns)
    res = tug("autoscale", "deploy/d", "--min=2", "--max=5", "--cpu-percent=60", "-n", ns)
    assert res.out == "horizontalpodautoscaler.autoscaling/d autoscaled\n"
    hpa = api.client().get(lookup("horizontalpodautoscalers"), "d", ns)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
