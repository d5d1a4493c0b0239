"""The real kubectl against a secure API server: ``create role/rolebinding``, ``get clusterrole``,
``auth can-i`` (with ``--list``) and ``auth whoami``, as the admin and as a token user."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import free_port

Run = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A ``--secure`` API server with a token for alice; returns its data directory."""
    d = tmp_path_factory.mktemp("secure")
    (d / "tokens.csv").write_text("alice-token,alice,2\n")
    port = free_port()
    log = open(d / "apiserver.log", "ab")  # noqa: SIM115 - lives as long as the process
    cmd = [sys.executable, "-m", "apiserver", "--port", str(port), "--data-dir", str(d)]
    cmd += ["--secure", "--token-auth-file", str(d / "tokens.csv")]
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    ready = False
    tls: ssl.SSLContext | None = None
    while time.monotonic() < deadline and not ready:
        if proc.poll() is not None:
            pytest.fail(f"apiserver exited: {(d / 'apiserver.log').read_text()}")
        try:
            tls = tls or ssl.create_default_context(cafile=str(d / "pki" / "ca.crt"))
            ready = httpx.get(f"https://127.0.0.1:{port}/readyz", verify=tls).status_code == 200
        except (httpx.HTTPError, OSError):
            time.sleep(0.05)
    if not ready:
        proc.kill()
        pytest.fail("the secure apiserver did not become ready in 30 s")
    admin = yaml.safe_load((d / "kubeconfig").read_text())
    alice = {
        **admin,
        "users": [{"name": u["name"], "user": {"token": "alice-token"}} for u in admin["users"]],
    }
    (d / "alice.kubeconfig").write_text(yaml.safe_dump(alice))
    yield d
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def run(secure: Path, kubectl_bin: str, tmp_path: Path) -> Run:
    """``run(*args, who="admin"|"alice", check=True)``: kubectl with that user's kubeconfig."""

    def go(*args: str, who: str = "admin", check: bool = True) -> subprocess.CompletedProcess:
        config = secure / ("kubeconfig" if who == "admin" else f"{who}.kubeconfig")
        proc = subprocess.run(
            [kubectl_bin, "--kubeconfig", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stdout}\n{proc.stderr}")
        return proc

    return go


def test_create_role_and_binding_then_can_i(run):
    run("create", "namespace", "team")
    run("create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods", "-n", "team")
    run("create", "rolebinding", "alice-reads", "--role=pod-reader", "--user=alice", "-n", "team")
    out = run("get", "rolebinding", "alice-reads", "-n", "team", "-o", "wide").stdout
    assert out.split("\n")[0].split() == [
        "NAME",
        "ROLE",
        "AGE",
        "USERS",
        "GROUPS",
        "SERVICEACCOUNTS",
    ]
    assert "Role/pod-reader" in out and "alice" in out

    yes = run("auth", "can-i", "list", "pods", "-n", "team", who="alice")
    assert yes.stdout.strip() == "yes"
    no = run("auth", "can-i", "delete", "pods", "-n", "team", who="alice", check=False)
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    no = run("auth", "can-i", "list", "pods", "-n", "default", who="alice", check=False)
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    assert run("auth", "can-i", "delete", "nodes").stdout.strip() == "yes"  # system:masters
    # the admin asks on alice's behalf through impersonation
    assert run("auth", "can-i", "list", "pods", "-n", "team", "--as", "alice").stdout.strip() == (
        "yes"
    )

    listed = run("auth", "can-i", "--list", "-n", "team", who="alice").stdout
    line = next(x for x in listed.splitlines() if x.startswith("pods "))
    assert "[get list watch]" in line
    assert "selfsubjectaccessreviews.authorization.k8s.io" in listed

    forbidden = run("get", "pods", "-n", "default", who="alice", check=False)
    assert forbidden.returncode == 1
    assert (
        'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource '
        '"pods" in API group "" in the namespace "default"'
    ) in forbidden.stderr


def test_whoami(run):
    out = run("auth", "whoami", "-o", "json", who="alice").stdout
    info = yaml.safe_load(out)["status"]["userInfo"]
    assert info["username"] == "alice"
    assert "system:authenticated" in info["groups"]
    assert "system:masters" in run("auth", "whoami").stdout


def test_get_clusterroles(run):
    out = run("get", "clusterrole").stdout.splitlines()
    assert out[0].split() == ["NAME", "CREATED", "AT"]
    names = {line.split()[0] for line in out[1:]}
    assert {"cluster-admin", "admin", "edit", "view", "system:node-proxier"} <= names
    binding = run("get", "clusterrolebinding", "cluster-admin").stdout
    assert "ClusterRole/cluster-admin" in binding
