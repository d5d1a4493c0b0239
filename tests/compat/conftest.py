"""Fixtures for compatibility tests: the real kubectl against a tugboat API server."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def kubectl_path() -> str | None:
    local = REPO / ".tools" / "bin" / "kubectl"
    if local.exists():
        return str(local)
    found = shutil.which("kubectl")
    if found:
        out = subprocess.run([found, "version", "--client"], capture_output=True, text=True)
        if "v1.33" in out.stdout:
            return found
    return None


Kubectl = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    path = kubectl_path()
    if path is None:
        pytest.skip("the real kubectl v1.33 is not installed: run hack/get-kubectl.sh")
    return path


@pytest.fixture
def kubectl(api, kubectl_bin, tmp_path) -> Kubectl:
    """``kubectl(*args, input=None, check=True, env=None)`` against the session's API server."""

    def run(
        *args: str, input: str | None = None, check: bool = True, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        cmd = [kubectl_bin, "--kubeconfig", api.kubeconfig, *args]
        full_env = {**os.environ, "HOME": str(tmp_path), **(env or {})}
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=60, env=full_env
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


@pytest.fixture
def namespace(kubectl) -> str:
    name = f"k-{uuid.uuid4().hex[:8]}"
    kubectl(
        "apply", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
    )
    return name
