"""helm 4 (the binary hack/get-kubectl.sh provides) against a tugboat control plane:
install, upgrade --set, install --wait, status, rollback, uninstall."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.compat
CHART = str(Path(__file__).with_name("charts") / "web")


@pytest.fixture
def helm(cluster, kubectl_bin, tmp_path):
    binary = Path(kubectl_bin).with_name("helm")
    if not binary.exists():
        pytest.skip("helm is not installed: run hack/get-kubectl.sh")
    env = {
        **os.environ,
        "KUBECONFIG": cluster.kubeconfig,
        "HOME": str(tmp_path),
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "cfg"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(binary), *args], capture_output=True, text=True, env=env, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)}: {proc.stdout}\n{proc.stderr}")
        return proc

    return run


def test_helm_release_lifecycle(helm, cluster, kubectl_bin):
    def kubectl(*args: str) -> str:
        return subprocess.run(
            [kubectl_bin, "--kubeconfig", cluster.kubeconfig, *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    ns = "helm-test"
    out = helm("install", "web1", CHART, "-n", ns, "--create-namespace").stdout
    assert "STATUS: deployed" in out
    assert (
        kubectl("get", "cm", "web1-config", "-n", ns, "-o", "jsonpath={.data.greeting}") == "hello"
    )
    status = helm("status", "web1", "-n", ns).stdout
    assert "STATUS: deployed" in status and "REVISION: 1" in status

    helm("upgrade", "web1", CHART, "-n", ns, "--set", "replicas=3", "--set", "greeting=hi")
    assert kubectl("get", "deploy", "web1", "-n", ns, "-o", "jsonpath={.spec.replicas}") == "3"
    assert kubectl("get", "cm", "web1-config", "-n", ns, "-o", "jsonpath={.data.greeting}") == "hi"

    helm("rollback", "web1", "1", "-n", ns)
    assert kubectl("get", "deploy", "web1", "-n", ns, "-o", "jsonpath={.spec.replicas}") == "2"
    history = json.loads(helm("history", "web1", "-n", ns, "-o", "json").stdout)
    assert [h["status"] for h in history] == ["superseded", "superseded", "deployed"]

    waited = helm("install", "web2", CHART, "-n", ns, "--wait", "--timeout", "90s")
    assert "STATUS: deployed" in waited.stdout
    ready = kubectl("get", "deploy", "web2", "-n", ns, "-o", "jsonpath={.status.readyReplicas}")
    assert ready == "2"

    helm("uninstall", "web1", "web2", "-n", ns)
    assert json.loads(helm("list", "-n", ns, "-o", "json").stdout) == []
    assert kubectl("get", "deploy,svc,cm", "-n", ns, "-l", "app", "-o", "name").strip() == ""
