"""The supervisor: backoff, start order, restarts of a killed child, and a clean shutdown."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.cluster.common import DataDir
from cli.cluster.procs import ProcessRef, wait_gone
from cli.cluster.supervisor import ComponentSpec, Supervisor, restart_delay

from .conftest import eventually, free_port

SLEEPER = [sys.executable, "-c", "import signal; print('sleeping', flush=True); signal.pause()"]


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (100, 30.0)],
    ids=lambda v: str(v),
)
def test_restart_delay_doubles_up_to_the_cap(failures: int, delay: float) -> None:
    assert restart_delay(failures) == delay


def write_spec(d: Path, specs: list[ComponentSpec]) -> None:
    (d / "cluster.json").write_text(json.dumps({"components": [s.to_json() for s in specs]}))


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[DataDir, subprocess.Popen[bytes]]]:
    """A supervisor process running two sleepers in ``tmp_path``."""
    write_spec(tmp_path, [ComponentSpec("one", SLEEPER), ComponentSpec("two", SLEEPER)])
    proc = subprocess.Popen([sys.executable, "-m", "cli.cluster.supervisor", str(tmp_path)])
    d = DataDir(tmp_path)
    try:
        yield d, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def up_pids(d: DataDir) -> dict[str, int] | None:
    comps = (d.state() or {}).get("components") or {}
    pids = {n: c["pid"] for n, c in comps.items() if c.get("state") == "up" and c.get("pid")}
    return pids if len(pids) == len(comps) and comps else None


def test_a_killed_child_is_restarted_and_logged(
    supervised: tuple[DataDir, subprocess.Popen[bytes]],
) -> None:
    d, proc = supervised
    first = eventually("both children up", lambda: up_pids(d))

    def starts_logged(n: int) -> str | None:
        text = (d.logs / "one.log").read_text()
        return text if text.splitlines().count("sleeping") == n else None  # child's own output

    eventually("the first child's output", lambda: starts_logged(1))
    os.kill(first["one"], signal.SIGKILL)

    def restarted() -> dict[str, int] | None:
        pids = up_pids(d)
        return pids if pids and pids["one"] != first["one"] else None

    second = eventually("child one restarted", restarted)
    state = d.state() or {}
    assert state["components"]["one"]["restarts"] == 1
    assert state["components"]["one"]["lastExitCode"] == -signal.SIGKILL
    assert second["two"] == first["two"], "the other child must be left alone"
    log = eventually("the output of both starts in the log", lambda: starts_logged(2))
    assert "exited with code -9" in log

    refs = [ProcessRef.of(pid) for pid in second.values()]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert wait_gone(refs, 5) == []
    assert {c["state"] for c in (d.state() or {})["components"].values()} == {"stopped"}


def test_children_die_with_a_killed_supervisor(
    supervised: tuple[DataDir, subprocess.Popen[bytes]],
) -> None:
    d, proc = supervised
    pids = eventually("both children up", lambda: up_pids(d))
    refs = [ProcessRef.of(pid) for pid in pids.values()]
    proc.kill()
    proc.wait()
    assert wait_gone(refs, 10) == [], "children must not outlive their supervisor"


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_component_waits_for_the_ready_url_of_the_one_before(tmp_path: Path) -> None:
    port = free_port()
    sup = Supervisor(
        tmp_path,
        [
            ComponentSpec("server", SLEEPER, ready_url=f"http://127.0.0.1:{port}/readyz"),
            ComponentSpec("client", SLEEPER),
        ],
    )
    server: http.server.HTTPServer | None = None
    try:
        sup.step()
        sup.step()
        states = {c.spec.name: c.state for c in sup.children}
        assert states == {"server": "up", "client": "waiting"}
        server = http.server.HTTPServer(("127.0.0.1", port), _Ok)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sup.step()  # sees the server ready
        sup.step()  # starts the client
        assert {c.spec.name: c.state for c in sup.children} == {"server": "up", "client": "up"}
    finally:
        sup._shutdown()
        if server is not None:
            server.shutdown()
    assert all(c.ref is not None and not c.ref.alive() for c in sup.children)


def test_a_component_waits_for_the_ready_socket_of_the_one_before(tmp_path: Path) -> None:
    path = str(tmp_path / "runtime.sock")
    sup = Supervisor(
        tmp_path,
        [ComponentSpec("runtime", SLEEPER, ready_socket=path), ComponentSpec("agent", SLEEPER)],
    )
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sup.step()
        sup.step()
        assert {c.spec.name: c.state for c in sup.children} == {
            "runtime": "up",
            "agent": "waiting",
        }
        listener.bind(path)  # a socket file that accepts no connection is not ready yet
        sup.step()
        assert sup.children[1].state == "waiting"
        listener.listen()
        sup.step()
        sup.step()
        assert {c.spec.name: c.state for c in sup.children} == {"runtime": "up", "agent": "up"}
    finally:
        sup._shutdown()
        listener.close()
    assert ComponentSpec.from_json(sup.children[0].spec.to_json()) == sup.children[0].spec
