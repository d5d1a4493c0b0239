"""Secrets are never logged: the API server and a node agent (fake runtime) both at debug
verbosity serve a pod that uses a Secret through its environment and a volume, clients present
bearer tokens (good and bad), a request fails validation with the secret in its body; neither
the secret's value (plain or base64) nor any token shows up in their logs."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from machinery.kubeconfig import write_kubeconfig
from tests.conftest import start_apiserver

NODE = "quiet-node"


def _wait(what: str, probe, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _unmount_under(root: Path) -> None:
    """Unmount what an agent stopped mid-pod left mounted below ``root`` (its tmpfs volumes)."""
    for line in Path("/proc/mounts").read_text().splitlines():
        target = line.split()[1]
        if target.startswith(f"{root}/"):
            subprocess.run(["umount", target], check=False, capture_output=True)


def test_secret_values_and_tokens_never_reach_the_logs(tmp_path: Path) -> None:
    sentinel = f"s3cr3t-{uuid.uuid4().hex}"
    admin_token, agent_token = f"adm-{uuid.uuid4().hex}", f"agt-{uuid.uuid4().hex}"
    bad_token = f"bad-{uuid.uuid4().hex}"
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(
        f'{admin_token},admin,1,"system:masters"\n'
        f'{agent_token},system:node:{NODE},2,"system:nodes"\n'
    )
    flags = ["--token-auth-file", str(tokens), "--authorization-mode", "Node,RBAC"]
    server = start_apiserver(tmp_path, extra=[*flags, "--log-level", "debug"])
    config = tmp_path / "agent.kubeconfig"
    write_kubeconfig(str(config), server.url, token=agent_token)
    agent_log = tmp_path / "agent.log"
    args = ["--kubeconfig", str(config), "--runtime", "fake", "--node-name", NODE, "--port", "0"]
    args += ["--log-root", str(tmp_path / "pods"), "--root-dir", str(tmp_path / "root")]
    with open(agent_log, "ab") as out:
        agent = subprocess.Popen(
            [sys.executable, "-m", "kubelet.main", *args, "--lease-period", "1", "-v"],
            stdout=out,
            stderr=out,
        )
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=10
    )
    try:
        ns = "/api/v1/namespaces/default"
        secret = {"metadata": {"name": "creds"}, "stringData": {"password": sentinel}}
        assert admin.post(f"{ns}/secrets", json=secret).status_code == 201
        # refused, with the value in the body: the error must not echo it into a log
        bad = {"metadata": {"name": "Bad_Name"}, "stringData": {"password": sentinel}}
        assert admin.post(f"{ns}/secrets", json=bad).status_code == 422
        with httpx.Client(base_url=server.url, timeout=10) as stranger:
            r = stranger.get(f"{ns}/secrets", headers={"Authorization": f"Bearer {bad_token}"})
            assert r.status_code == 401
        pod = {
            "metadata": {"name": "app"},
            "spec": {
                "nodeName": NODE,
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox:1.35",  # an image the fake runtime has
                        "env": [
                            {
                                "name": "PASSWORD",
                                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
                            }
                        ],
                        "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds"}],
                    }
                ],
                "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}],
            },
        }
        assert admin.post(f"{ns}/pods", json=pod).status_code == 201
        _wait(
            "the pod to run",
            lambda: (
                (admin.get(f"{ns}/pods/app").json().get("status") or {}).get("phase") == "Running"
            ),
        )
        assert admin.get(f"{ns}/secrets/creds").status_code == 200
        assert admin.delete(f"{ns}/pods/app").status_code == 200
        _wait("the agent to finish the pod", lambda: admin.get(f"{ns}/pods/app").status_code == 404)
    finally:
        admin.close()
        agent.terminate()
        agent.wait(10)
        server.stop()
        _unmount_under(tmp_path / "root")  # a failed run can leave the secret volume mounted
    logs = {
        "apiserver": (tmp_path / "apiserver.log").read_bytes(),
        "agent": agent_log.read_bytes(),
    }
    assert b"DEBUG" in logs["agent"] and logs["apiserver"]  # both really logged, verbosely
    words = [sentinel, base64.b64encode(sentinel.encode()).decode(), admin_token, agent_token]
    words.append(bad_token)
    for name, text in logs.items():
        for word in words:
            assert word.encode() not in text, f"{word[:6]}... found in the {name} log"
