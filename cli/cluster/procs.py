"""Process identity and signals by pid, safe against pid reuse.

A :class:`ProcessRef` pairs a pid with the process's start time (``/proc/PID/stat`` field 22,
in clock ticks since boot): a later process that reuses the pid has another start time, so
:meth:`ProcessRef.alive` is false for it and no signal is ever sent to it. Zombies count as gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (index 0 is field 3, the state)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw.rpartition(")")[2].split()


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


@dataclass(frozen=True)
class ProcessRef:
    """One process, named by pid and start time."""

    pid: int
    start: int | None

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        return cls(pid, start_time(pid))

    @classmethod
    def from_json(cls, data: dict[str, object] | None) -> ProcessRef | None:
        if not data or not isinstance(data.get("pid"), int):
            return None
        start = data.get("startTime")
        return cls(int(data["pid"]), start if isinstance(start, int) else None)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, int | None]:
        return {"pid": self.pid, "startTime": self.start}

    def alive(self) -> bool:
        """True while this very process exists and is not a zombie."""
        fields = _stat_fields(self.pid)
        if not fields or fields[0] in ("Z", "X"):
            return False
        return self.start is None or int(fields[19]) == self.start

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the process group led by this process (and to the process itself,
        should it have left the group); no-op once it is gone."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, sig)


def wait_gone(refs: list[ProcessRef], timeout: float, poll: float = 0.05) -> list[ProcessRef]:
    """Poll until every process in ``refs`` is gone or ``timeout`` passes; returns the living."""
    deadline = time.monotonic() + timeout
    living = [r for r in refs if r.alive()]
    while living and time.monotonic() < deadline:
        time.sleep(poll)
        living = [r for r in living if r.alive()]
    return living


def terminate(refs: list[ProcessRef], timeout: float) -> list[ProcessRef]:
    """SIGTERM each process group, wait up to ``timeout``, then SIGKILL what is left.

    Returns the processes still alive after the SIGKILL grace (normally none)."""
    for ref in refs:
        ref.signal_group(signal.SIGTERM)
    living = wait_gone(refs, timeout)
    for ref in living:
        ref.signal_group(signal.SIGKILL)
    return wait_gone(living, 5.0)
