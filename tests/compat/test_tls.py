"""A ``--secure`` API server: TLS verified by the real kubectl, the ``kubernetes`` client and
tugboat's own client with the generated kubeconfig; client certificates, static and
ServiceAccount tokens, impersonation and 401/403 as Kubernetes words them.

Authorization is ``--secure``'s default (system:masters, Node, RBAC with the bootstrap roles):
the admin (client certificate, O=system:masters) may do anything; another user gets a 403 that
names them until a binding grants more: a 403 proves authentication worked, a 401 that it did
not.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from machinery.pki import Pki
from tests.conftest import free_port

pytestmark = pytest.mark.compat


@dataclass
class SecureServer:
    url: str
    data_dir: Path
    proc: subprocess.Popen

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "kubeconfig")

    @property
    def ca(self) -> str:
        return str(self.data_dir / "pki" / "ca.crt")

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=self.ca),
                            headers=headers, timeout=10, trust_env=False)  # fmt: skip


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureServer]:
    data = tmp_path_factory.mktemp("secure")
    (data / "tokens.csv").write_text('tok-alice,alice,u-1,"dev,qa"\n')
    port = free_port()
    cmd = [sys.executable, "-m", "apiserver", "--port", str(port), "--data-dir", str(data),
           "--secure",
           "--token-auth-file", str(data / "tokens.csv")]  # fmt: skip
    log = open(data / "apiserver.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    server = SecureServer(f"https://127.0.0.1:{port}", data, proc)
    try:
        _wait_ready(server)
        yield server
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_ready(server: SecureServer) -> None:
    deadline = time.monotonic() + 30
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError((server.data_dir / "apiserver.log").read_text())
        try:
            if Path(server.ca).exists():  # made by the server at its start
                with server.http() as c:
                    if c.get("/readyz").status_code == 200:
                        return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the secure API server did not become ready in 30 s")
        time.sleep(0.05)


@pytest.fixture
def kubectl(secure, kubectl_bin, tmp_path):
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [kubectl_bin, "--kubeconfig", secure.kubeconfig, *args]
        env = {**os.environ, "HOME": str(tmp_path)}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc

    return run


def test_kubeconfig_is_https_with_ca_and_admin_certificate(secure):
    doc = yaml.safe_load(Path(secure.kubeconfig).read_text())
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    assert cluster["server"] == secure.url
    assert "certificate-authority-data" in cluster
    assert "insecure-skip-tls-verify" not in cluster
    assert {"client-certificate-data", "client-key-data"} <= user.keys()


def test_real_kubectl_verifies_tls_and_authenticates_with_the_certificate(kubectl):
    out = kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert "namespace/kube-system" in out


def test_kubernetes_python_client_with_the_generated_kubeconfig(secure):
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=secure.kubeconfig))
    names = {ns.metadata.name for ns in api.list_namespace().items}
    assert {"default", "kube-system"} <= names


def test_tugboat_client_with_the_generated_kubeconfig(secure):
    from machinery.client import Client
    from machinery.kinds import lookup

    with Client.from_kubeconfig(secure.kubeconfig) as c:
        assert c.get(lookup("namespaces"), "default")["metadata"]["name"] == "default"


def test_a_client_trusting_another_ca_refuses_the_server(secure, tmp_path):
    other = Pki(tmp_path / "other").ensure()
    ctx = ssl.create_default_context(cafile=str(other.ca.cert))
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=ctx, trust_env=False) as c:
        c.get(secure.url + "/readyz")


def test_anonymous_and_bad_tokens_get_401_but_health_stays_open(secure):
    with secure.http() as anon, secure.http("not-a-token") as bad:
        assert anon.get("/readyz").text == "ok"
        assert anon.get("/version").json()["major"] == "1"
        for path in ("/api/v1/pods", "/api", "/apis/metrics.k8s.io/v1beta1/pods", "/openapi/v3"):
            r = anon.get(path)
            assert (r.status_code, r.json()["reason"]) == (401, "Unauthorized"), path
        assert bad.get("/api/v1/namespaces").status_code == 401


def test_websocket_exec_needs_credentials(secure):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    ctx = ssl.create_default_context(cafile=secure.ca)
    url = secure.url.replace("https", "wss") + "/api/v1/namespaces/default/pods/p/exec?command=ls"
    with pytest.raises(InvalidStatus) as err, connect(url, ssl=ctx, open_timeout=10):
        pass
    assert err.value.response.status_code == 401


def test_websocket_exec_authenticates_the_client_certificate(secure):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    admin = Pki(secure.data_dir / "pki").client("admin", ("system:masters",), file_name="admin")
    ctx = ssl.create_default_context(cafile=secure.ca)
    ctx.load_cert_chain(str(admin.cert), str(admin.key))
    url = (
        secure.url.replace("https", "wss") + "/api/v1/namespaces/default/pods/nope/exec?command=ls"
    )
    with pytest.raises(InvalidStatus) as err, connect(url, ssl=ctx, open_timeout=10):
        pass
    assert err.value.response.status_code == 404  # past authentication and authorization


def test_static_token_user_works_once_bound_to_a_role(secure, kubectl):
    kubectl("create", "namespace", "alice-ns")
    with secure.http("tok-alice") as c:
        r = c.get("/api/v1/namespaces/alice-ns/pods")
        assert r.status_code == 403
        assert r.json()["message"] == (
            'pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
            'in the namespace "alice-ns"'
        )
        kubectl("create", "rolebinding", "alice-view", "-n", "alice-ns", "--clusterrole", "view",
                "--user", "alice")  # fmt: skip
        deadline = time.monotonic() + 10  # RBAC follows the watch cache: a moment at most
        while (r := c.get("/api/v1/namespaces/alice-ns/pods")).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.05)
        assert r.json()["kind"] == "PodList"
        assert c.get("/api/v1/namespaces/default/pods").status_code == 403


def test_admin_impersonates_with_kubectl_as_but_a_user_may_not(secure, kubectl):
    out = kubectl("get", "pods", "-n", "kube-system", "--as", "alice", check=False)
    assert out.returncode != 0
    assert out.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource '
        '"pods" in API group "" in the namespace "kube-system"'
    )
    with secure.http("tok-alice") as c:
        r = c.get("/api/v1/namespaces/default/pods", headers={"Impersonate-User": "bob"})
    assert r.status_code == 403
    assert r.json()["message"].startswith(
        'users "bob" is forbidden: User "alice" cannot impersonate resource "users"'
    )


def test_service_account_token_works_until_the_account_is_deleted(secure, kubectl):
    kubectl("create", "serviceaccount", "bot", "-n", "default")
    token = kubectl("create", "token", "bot", "-n", "default").stdout.strip()
    other_aud = kubectl("create", "token", "bot", "--audience", "vault").stdout.strip()
    with secure.http(token) as c, secure.http(other_aud) as o:
        r = c.get("/api/v1/namespaces/default/pods")
        assert r.status_code == 403
        assert 'User "system:serviceaccount:default:bot"' in r.json()["message"]
        assert o.get("/api/v1/namespaces/default/pods").status_code == 401
        kubectl("delete", "serviceaccount", "bot", "-n", "default")
        assert c.get("/api/v1/namespaces/default/pods").status_code == 401


def test_token_request_refuses_short_expirations(kubectl):
    kubectl("create", "serviceaccount", "short", "-n", "default")
    out = kubectl("create", "token", "short", "--duration", "60s", check=False)
    assert out.returncode != 0
    assert "may not specify a duration less than 10 minutes" in out.stderr


def test_client_certificate_names_user_and_groups(secure, tmp_path):
    pki = Pki(secure.data_dir / "pki")
    pair = pki.client("carol", ("devs",), file_name="test-carol")
    ctx = ssl.create_default_context(cafile=secure.ca)
    ctx.load_cert_chain(str(pair.cert), str(pair.key))
    with httpx.Client(verify=ctx, trust_env=False) as c:
        r = c.get(secure.url + "/api/v1/namespaces/default/configmaps")
    assert r.status_code == 403
    assert 'User "carol" cannot list resource "configmaps"' in r.json()["message"]
