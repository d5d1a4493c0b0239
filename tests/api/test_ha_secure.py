"""Two ``--secure`` API servers on one PostgreSQL store, sharing ``--cert-dir``: one CA and one
ServiceAccount key, so credentials issued through either server work on both (skipped without
PostgreSQL)."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import free_port
from tests.unit.test_storage import _pg_schema_url

pytestmark = pytest.mark.skipif(
    not os.environ.get("TUGBOAT_TEST_POSTGRES"),
    reason="no PostgreSQL configured (set TUGBOAT_TEST_POSTGRES)",
)


Server = tuple[str, Path]  # URL, data directory


def _start(data: Path, store: str, cert_dir: Path) -> tuple[str, subprocess.Popen]:
    data.mkdir()
    port = free_port()
    cmd = [sys.executable, "-m", "apiserver", "--port", str(port), "--data-dir", str(data),
           "--storage", store, "--secure", "--cert-dir", str(cert_dir)]  # fmt: skip
    log = open(data / "apiserver.log", "ab")  # noqa: SIM115 - lives as long as the process
    return f"https://127.0.0.1:{port}", subprocess.Popen(cmd, stdout=log, stderr=log)


def _credentials(kubeconfig: Path, into: Path) -> tuple[Path, Path, Path]:
    """CA, client certificate and key from a kubeconfig the server wrote."""
    doc = yaml.safe_load(kubeconfig.read_text())
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    files = []
    for name, data in (
        ("ca.crt", cluster["certificate-authority-data"]),
        ("admin.crt", user["client-certificate-data"]),
        ("admin.key", user["client-key-data"]),
    ):
        (into / name).write_bytes(base64.b64decode(data))
        files.append(into / name)
    return files[0], files[1], files[2]


def _client(url: str, ca: Path, cert: tuple[Path, Path] | None = None, token: str = ""):
    ctx = ssl.create_default_context(cafile=str(ca))  # verifies the server against ``ca``
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, verify=ctx, headers=headers, timeout=10, trust_env=False)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Server]]]:
    tmp_path = tmp_path_factory.mktemp("ha-secure")
    store, cert_dir = _pg_schema_url(), tmp_path / "shared-pki"
    procs = []
    try:
        for side in "ab":  # started together: the cert dir's lock makes one CA
            url, proc = _start(tmp_path / side, store, cert_dir)
            procs.append((url, proc, tmp_path / side))
        deadline = time.monotonic() + 60
        for url, proc, data in procs:
            while True:
                assert proc.poll() is None, (data / "apiserver.log").read_text()
                assert time.monotonic() < deadline, "the secure API servers did not start"
                if (data / "kubeconfig").exists():
                    ca, _, _ = _credentials(data / "kubeconfig", tmp_path)
                    try:
                        with _client(url, ca) as c:
                            if c.get("/readyz").status_code == 200:
                                break
                    except httpx.HTTPError:
                        pass
                time.sleep(0.05)
        yield store, [(url, data) for url, _, data in procs]
    finally:
        for _, proc, _ in procs:
            proc.terminate()
        for _, proc, _ in procs:
            proc.wait(10)


def test_credentials_issued_through_one_server_work_on_the_other(servers, tmp_path):
    _, ((a_url, a_dir), (b_url, b_dir)) = servers
    ca, cert, key = _credentials(a_dir / "kubeconfig", tmp_path)
    # B's serving certificate verifies with the CA in A's kubeconfig; A's admin certificate
    # authenticates on B (a 401 would say it did not; the admin may do anything)
    with _client(b_url, ca, (cert, key)) as b, _client(a_url, ca, (cert, key)) as a:
        assert b.get("/api/v1/namespaces").status_code == 200
        sa = {"metadata": {"name": "bot"}}
        assert a.post("/api/v1/namespaces/default/serviceaccounts", json=sa).status_code == 201
        r = a.post(
            "/api/v1/namespaces/default/serviceaccounts/bot/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        assert r.status_code == 201, r.text
        token = r.json()["status"]["token"]
        # B learns of the ServiceAccount from the shared log a poll later; a token is only
        # good while its ServiceAccount exists where it is checked
        deadline = time.monotonic() + 10
        while b.get("/api/v1/namespaces/default/serviceaccounts/bot").status_code != 200:
            assert time.monotonic() < deadline, "B never saw the ServiceAccount"
            time.sleep(0.05)
    # the token A signed is accepted by B: B names the account (403), it does not refuse the
    # token (401)
    with _client(b_url, ca, token=token) as b:
        r = b.get("/api/v1/namespaces/default/pods")
        assert r.status_code == 403, r.text
        assert 'User "system:serviceaccount:default:bot"' in r.json()["message"]
    (tmp_path / "b").mkdir()
    b_ca, _, _ = _credentials(b_dir / "kubeconfig", tmp_path / "b")
    assert b_ca.read_bytes() == ca.read_bytes()


def test_a_server_with_its_own_pki_refuses_them(servers, tmp_path):
    """The control: a third server on the same store but with its own PKI refuses A's token
    (the account exists in the store it shares: only the signing key differs)."""
    store, ((a_url, a_dir), _) = servers
    ca, cert, key = _credentials(a_dir / "kubeconfig", tmp_path)
    with _client(a_url, ca, (cert, key)) as a:
        assert a.post(
            "/api/v1/namespaces/default/serviceaccounts", json={"metadata": {"name": "bot"}}
        ).status_code in (201, 409)
        r = a.post("/api/v1/namespaces/default/serviceaccounts/bot/token", json={"spec": {}})
        token = r.json()["status"]["token"]
    url, proc = _start(tmp_path / "own", store, tmp_path / "own-pki")
    try:
        own_ca = tmp_path / "own-pki" / "ca.crt"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline
            try:
                if own_ca.exists():
                    with _client(url, own_ca) as c:
                        if c.get("/readyz").status_code == 200:
                            break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        # A's CA does not verify this server
        with pytest.raises(httpx.ConnectError), _client(url, ca) as c:
            c.get("/readyz")
        with _client(url, own_ca, token=token) as c:
            assert c.get("/api/v1/namespaces/default/pods").status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)
