"""``tug up`` is secure by default: every component has its own client certificate, node agents
are ``system:node:NAME``; ``--insecure`` keeps plain HTTP."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from cli.cluster import down, up
from cli.cluster.common import DataDir
from cli.cluster.credentials import kubeconfig_path, write_credentials
from cli.cluster.example import EXAMPLES, apply_objects, load_manifest, running_pods
from machinery.client import Client
from tests.compat.conftest import kubectl_path
from tests.e2e.conftest import runtime_skip_reason

from .conftest import eventually, free_port


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_secure_plan_gives_each_component_its_kubeconfig(tmp_path: Path) -> None:
    p = up.plan(tmp_path, nodes=2, runtime="containerd", port=7000, python="py")
    assert p.secure and p.server == "https://127.0.0.1:7000"
    by_name = {c.name: c.argv for c in p.components}
    assert "--secure" in by_name["apiserver"]
    for name in ("controller-manager", "scheduler", "kubelet-node-0", "kubelet-node-1",
                 "proxy", "dns"):  # fmt: skip
        assert "--server" not in by_name[name], name
        assert _flag(by_name[name], "--kubeconfig") == str(kubeconfig_path(tmp_path, name))


def test_insecure_plan_is_plain_http(tmp_path: Path) -> None:
    p = up.plan(tmp_path, nodes=1, runtime="fake", port=7000, python="py", secure=False)
    assert p.server == "http://127.0.0.1:7000" and not p.secure
    by_name = {c.name: c.argv for c in p.components}
    assert "--secure" not in by_name["apiserver"]
    assert _flag(by_name["kubelet"], "--server") == p.server


def _subject(kubeconfig: Path) -> str:
    doc = yaml.safe_load(kubeconfig.read_text())
    pem = base64.b64decode(doc["users"][0]["user"]["client-certificate-data"])
    return x509.load_pem_x509_certificate(pem).subject.rfc4514_string()


def test_credentials_name_nodes_as_nodes_and_keep_keys_private(tmp_path: Path) -> None:
    write_credentials(tmp_path, "https://127.0.0.1:7000", ["kubelet-node-1", "scheduler"])
    assert _subject(kubeconfig_path(tmp_path, "kubelet-node-1")) == (
        "CN=system:node:node-1,O=system:nodes"
    )
    assert _subject(kubeconfig_path(tmp_path, "scheduler")) == "CN=system:kube-scheduler"
    assert _subject(tmp_path / "kubeconfig") == "CN=admin,O=system:masters"
    for f in (kubeconfig_path(tmp_path, "scheduler"), tmp_path / "pki" / "ca.key"):
        assert f.stat().st_mode & 0o077 == 0, f


@pytest.fixture
def containerd_dir() -> Iterator[Path]:
    reason = runtime_skip_reason()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="tugsc-", dir="/tmp"))  # short: sockets live under it
    try:
        yield root
    finally:
        down.main(["--data-dir", str(root), "--purge"])
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.e2e
def test_secure_cluster_on_containerd_exec_over_tls_and_node_identity(
    containerd_dir: Path,
) -> None:
    """The node agent works as system:node:node-0; kubectl exec (a WebSocket over TLS with the
    admin's certificate) reaches the container; impersonating a stranger is refused."""
    kubectl_bin = kubectl_path()
    if kubectl_bin is None:
        pytest.skip("the real kubectl v1.33 is not installed: run hack/get-kubectl.sh")
    argv = ["--data-dir", str(containerd_dir), "--runtime", "containerd", "--nodes", "1",
            "--port", str(free_port(span=2)), "--bridge-prefix", "tugsc",
            "--first-subnet", "235", "--timeout", "180", "--quiet"]  # fmt: skip
    assert up.main(argv) == 0
    d = DataDir(containerd_dir)
    with Client.from_kubeconfig(str(kubeconfig_path(containerd_dir, "kubelet-node-0"))) as node:
        review = node.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                              json={"kind": "SelfSubjectReview"}).json()  # fmt: skip
    assert review["status"]["userInfo"]["username"] == "system:node:node-0"
    with Client.from_kubeconfig(str(d.kubeconfig)) as client:
        apply_objects(client, load_manifest(EXAMPLES / "busybox.yaml"))
        eventually("busybox Running", lambda: running_pods(client, "app=busybox"), 120)

    def kubectl(*args: str) -> subprocess.CompletedProcess:
        cmd = [kubectl_bin, "--kubeconfig", str(d.kubeconfig), *args]
        env = {**os.environ, "HOME": str(containerd_dir)}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)

    out = kubectl("exec", "busybox", "--", "cat", "/etc/hostname")
    assert (out.returncode, out.stdout.strip()) == (0, "busybox"), out.stderr
    denied = kubectl("exec", "busybox", "--as", "stranger", "--", "true")
    assert denied.returncode != 0
    assert 'User "stranger" cannot get resource "pods"' in denied.stderr
    logs = "".join(p.read_text(errors="replace") for p in d.logs.glob("*.log"))
    assert "Forbidden" not in logs and "Unauthorized" not in logs, "a component was refused"
