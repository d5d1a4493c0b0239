"""Shared fixtures: a real API server on loopback in a temporary directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ApiServerProcess:
    """A running ``python -m apiserver``: its URL, data dir and kubeconfig."""

    url: str
    data_dir: Path
    proc: subprocess.Popen
    port: int

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "kubeconfig")

    def client(self):
        from machinery.client import Client

        return Client(self.url)

    def async_client(self):
        from machinery.client import AsyncClient

        return AsyncClient(self.url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_apiserver(
    data_dir: Path,
    port: int | None = None,
    storage: str | None = None,
    extra: list[str] | None = None,
) -> ApiServerProcess:
    port = port or free_port()
    cmd = [sys.executable, "-m", "apiserver", "--port", str(port), "--data-dir", str(data_dir)]
    if storage:
        cmd += ["--storage", storage]
    cmd += extra or []
    log = open(data_dir / "apiserver.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"apiserver exited: {(data_dir / 'apiserver.log').read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return ApiServerProcess(url, data_dir, proc, port)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("apiserver did not become ready in 30 s")


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    """One API server shared by a test session (tests use their own namespaces or names)."""
    server = start_apiserver(tmp_path_factory.mktemp("apiserver"))
    yield server
    server.stop()


@pytest.fixture
def fresh_api(tmp_path: Path) -> Iterator[ApiServerProcess]:
    """An API server of this test's own, on an empty store."""
    server = start_apiserver(tmp_path)
    yield server
    server.stop()
