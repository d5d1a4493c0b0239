"""The supervisor: starts a cluster's component processes and keeps them running.

    python -m cli.cluster.supervisor [--detach] DATA_DIR

Reads the components to run from ``DATA_DIR/cluster.json`` (``{"components": [ComponentSpec,
...]}``, as :mod:`cli.cluster.up` writes it). Contracts:

- Order: components start in list order; a component with a ``readyUrl`` (or a
  ``readySocket``) gates the ones after it until that URL first answers 200 (or that unix
  socket first accepts a connection): containerd before its node agent, the API server before
  its clients.
- Logs: each component's stdout and stderr go to ``DATA_DIR/logs/<name>.log`` (appended, with a
  ``---`` line from the supervisor at every start and exit).
- Restarts: a component that exits is restarted after :func:`restart_delay` (1 s doubling to
  30 s); the count of consecutive failures resets once it has run for ``STABLE_AFTER`` seconds.
- State: ``DATA_DIR/supervisor.json`` is rewritten (atomically) on every change: the
  supervisor's pid and start time, and per component its pid, state (``waiting``, ``up``,
  ``restarting``, ``stopped``), restart count and last exit code.
- Shutdown: SIGTERM or SIGINT stops the components in reverse order (SIGTERM to each process
  group, SIGKILL after ``stopTimeout``), writes the final state and exits 0. Every component
  runs in its own session with a parent-death signal (SIGTERM), so none outlives a supervisor
  that is killed outright.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx

from .procs import ProcessRef, terminate

log = logging.getLogger("tug.supervisor")

SPEC_FILE = "cluster.json"
STATE_FILE = "supervisor.json"
LOG_DIR = "logs"
BASE_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0
_PR_SET_PDEATHSIG = 1


def restart_delay(failures: int, base: float = BASE_DELAY, cap: float = MAX_DELAY) -> float:
    """Seconds to wait before restarting after the ``failures``-th consecutive exit (1-based):
    ``base * 2**(failures-1)``, at most ``cap``; 0 before any failure."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2 ** min(failures - 1, 30))


@dataclass(frozen=True)
class ComponentSpec:
    """How to run one component."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    stop_timeout: float = 10.0
    ready_socket: str | None = None

    @property
    def gates(self) -> bool:
        """True when the components after this one wait for it to be ready."""
        return bool(self.ready_url or self.ready_socket)

    def is_ready(self) -> bool:
        """One readiness probe: the URL answers 200 and the socket accepts a connection."""
        if self.ready_url and not _answers(self.ready_url):
            return False
        return not self.ready_socket or _accepts(self.ready_socket)

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "argv": self.argv,
            "env": self.env,
            "readyUrl": self.ready_url,
            "stopTimeout": self.stop_timeout,
        }
        return {**data, "readySocket": self.ready_socket} if self.ready_socket else data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComponentSpec:
        return cls(
            name=data["name"],
            argv=list(data["argv"]),
            env=dict(data.get("env") or {}),
            ready_url=data.get("readyUrl"),
            stop_timeout=float(data.get("stopTimeout", 10.0)),
            ready_socket=data.get("readySocket"),
        )


@dataclass
class _Child:
    spec: ComponentSpec
    proc: subprocess.Popen[bytes] | None = None
    ref: ProcessRef | None = None
    state: str = "waiting"
    restarts: int = 0
    failures: int = 0
    started_at: float = 0.0
    next_start: float = 0.0
    last_exit: int | None = None
    ready: bool = False
    since: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            **(self.ref.to_json() if self.ref and self.state == "up" else {"pid": None}),
            "state": self.state,
            "restarts": self.restarts,
            "lastExitCode": self.last_exit,
            "since": self.since,
        }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (readers see the old or the new file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _set_parent_death_signal() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Runs ``specs`` as child processes of this process until :meth:`stop` is called."""

    def __init__(
        self,
        data_dir: Path,
        specs: list[ComponentSpec],
        *,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 0.2,
        stable_after: float = STABLE_AFTER,
    ) -> None:
        self.data_dir = data_dir
        self.children = [_Child(spec) for spec in specs]
        self.clock = clock
        self.poll_interval = poll_interval
        self.stable_after = stable_after
        self.me = ProcessRef.of(os.getpid())
        self._stopping = False
        (data_dir / LOG_DIR).mkdir(parents=True, exist_ok=True)

    def stop(self, *_: object) -> None:
        """Ask :meth:`run` to stop everything and return (safe in a signal handler)."""
        self._stopping = True

    def run(self) -> int:
        """Supervise until :meth:`stop`; then stop every component. Returns the exit code."""
        self._write_state("running")
        try:
            while not self._stopping:
                if self.step():
                    self._write_state("running")
                time.sleep(self.poll_interval)
        finally:
            self._shutdown()
        return 0

    def step(self) -> bool:
        """One pass: reap exited children, start those that are due. True if anything changed."""
        now = self.clock()
        changed = False
        gate_open = True
        for child in self.children:
            if child.proc is not None and (code := child.proc.poll()) is not None:
                self._exited(child, code, now)
                changed = True
            if child.proc is None and gate_open and now >= child.next_start:
                self._start(child, now)
                changed = True
            if (
                child.proc is not None
                and child.failures
                and now - child.started_at >= (self.stable_after)
            ):
                child.failures = 0
            if child.spec.gates and not child.ready:
                child.ready = child.proc is not None and child.spec.is_ready()
                gate_open = gate_open and child.ready
        return changed

    def _start(self, child: _Child, now: float) -> None:
        spec = child.spec
        logf = self._log(spec.name)
        env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_set_parent_death_signal,
            )
        except OSError as err:
            self._note(logf, f"cannot start {spec.name}: {err}")
            logf.close()
            child.failures += 1
            child.state = "restarting"
            child.next_start = now + restart_delay(child.failures)
            return
        self._note(logf, f"started {spec.name} (pid {proc.pid}): {' '.join(spec.argv)}")
        logf.close()
        if child.ref is not None:
            child.restarts += 1
        child.proc, child.ref = proc, ProcessRef.of(proc.pid)
        child.state, child.started_at, child.since = "up", now, _now()
        log.info("%s started (pid %d)", spec.name, proc.pid)

    def _exited(self, child: _Child, code: int, now: float) -> None:
        child.proc = None
        child.last_exit = code
        child.failures += 1
        delay = restart_delay(child.failures)
        child.next_start = now + delay
        child.state, child.since = "restarting", _now()
        with self._log(child.spec.name) as logf:
            self._note(logf, f"{child.spec.name} exited with code {code}; restart in {delay:g}s")
        log.warning("%s exited with code %s; restart in %gs", child.spec.name, code, delay)

    def _shutdown(self) -> None:
        self._write_state("stopping")
        for child in reversed(self.children):
            if child.proc is None or child.ref is None:
                child.state = "stopped"
                continue
            left = terminate([child.ref], child.spec.stop_timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.last_exit = child.proc.wait(timeout=1)
            child.proc, child.state, child.since = None, "stopped", _now()
            if left:
                log.error("%s (pid %d) did not stop", child.spec.name, child.ref.pid)
            with self._log(child.spec.name) as logf:
                self._note(logf, f"stopped {child.spec.name}")
        self._write_state("stopped")

    def _log(self, name: str) -> IO[bytes]:
        return open(self.data_dir / LOG_DIR / f"{name}.log", "ab")

    @staticmethod
    def _note(logf: IO[bytes], message: str) -> None:
        logf.write(f"--- {_now()} supervisor: {message}\n".encode())
        logf.flush()

    def _write_state(self, state: str) -> None:
        write_json(
            self.data_dir / STATE_FILE,
            {
                **self.me.to_json(),
                "state": state,
                "components": {c.spec.name: c.to_json() for c in self.children},
            },
        )


def _answers(url: str) -> bool:
    # A readiness probe of an unauthenticated health path on this machine sends no secret, so
    # an https URL is probed without verifying the server's certificate.
    try:
        return httpx.get(url, timeout=0.5, trust_env=False, verify=False).status_code == 200
    except httpx.HTTPError:
        return False


def _accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def load_specs(data_dir: Path) -> list[ComponentSpec]:
    """The components listed in ``DATA_DIR/cluster.json``; raises ValueError when unusable."""
    data = read_json(data_dir / SPEC_FILE)
    if data is None or not isinstance(data.get("components"), list):
        raise ValueError(f"{data_dir / SPEC_FILE}: missing or has no components")
    return [ComponentSpec.from_json(c) for c in data["components"]]


def _detach() -> None:
    """Fork; the parent exits at once, the child continues in a new session (a daemon whose
    parent is init, so nobody has to reap it)."""
    if os.fork():
        os._exit(0)
    os.setsid()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cli.cluster.supervisor")
    p.add_argument("--detach", action="store_true", help="fork into the background first")
    p.add_argument("data_dir", type=Path)
    args = p.parse_args(argv)
    data_dir = args.data_dir.resolve()
    specs = load_specs(data_dir)
    if args.detach:
        _detach()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    supervisor = Supervisor(data_dir, specs)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
