"""Helpers for the cluster-verb tests: polling with a deadline, free ports, process checks."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cli.cluster.common import DataDir
from cli.cluster.procs import ProcessRef

T = TypeVar("T")


def free_port(span: int = 1) -> int:
    """A port P such that P..P+span-1 were free on 127.0.0.1 a moment ago."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + span < 65536 and all(_free(base + i) for i in range(1, span)):
            return base
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def cluster_processes(d: DataDir) -> list[ProcessRef]:
    """The supervisor and every component process recorded in the state file."""
    state = d.state() or {}
    refs = [ProcessRef.from_json(state)]
    refs += [ProcessRef.from_json(c) for c in (state.get("components") or {}).values()]
    return [r for r in refs if r is not None]
