"""Shared fixtures: a real API server on loopback in a temporary directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    _clients: list = field(default_factory=list)

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "kubeconfig")

    def client(self):
        """A sync client, closed with the server unless the caller closes it first."""
        from machinery.client import Client

        client = Client(self.url)
        self._clients.append(client)
        return client

    def async_client(self):
        from machinery.client import AsyncClient

        return AsyncClient(self.url)

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
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
    host: str = "127.0.0.1",
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
    url = f"http://{host}:{port}"
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


@dataclass
class ClusterProcesses:
    """An API server plus controller-manager, scheduler and hollow nodes, each a process."""

    api: ApiServerProcess
    components: list[subprocess.Popen]

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def kubeconfig(self) -> str:
        return self.api.kubeconfig

    def stop(self) -> None:
        for proc in self.components:
            proc.terminate()
        for proc in self.components:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.api.stop()


def start_cluster(data_dir: Path, hollow_nodes: int = 2) -> ClusterProcesses:
    """A whole control plane on the fake runtime; returns once every node is Ready."""
    api = start_apiserver(data_dir)
    commands = {
        "controller-manager": [
            "controllers",
            "--server",
            api.url,
            "--no-leader-elect",
            "--port",
            "0",
        ],
        "scheduler": ["scheduler", "--server", api.url],
        "kubelet": [
            "kubelet.main",
            "--server",
            api.url,
            "--runtime",
            "fake",
            "--hollow-nodes",
            str(hollow_nodes),
            "--port",
            "0",
            "--log-root",
            str(data_dir / "pods"),
        ],
    }
    procs = []
    for name, args in commands.items():
        log = open(data_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        procs.append(subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=log))
    cluster = ClusterProcesses(api, procs)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        nodes = httpx.get(f"{api.url}/api/v1/nodes").json()["items"]
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (n.get("status") or {}).get("conditions", [])
            )
        ]
        if len(ready) >= hollow_nodes:
            return cluster
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.2)
    cluster.stop()
    logs = "\n".join((data_dir / f"{n}.log").read_text()[-2000:] for n in commands)
    raise RuntimeError(f"cluster did not come up:\n{logs}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcesses]:
    """A control plane with two hollow nodes, shared by a test session."""
    c = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()
