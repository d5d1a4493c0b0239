"""Helpers shared by the benchmarks: percentiles, RSS, a server on a temp dir, printing."""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def percentile(samples: list[float], p: float) -> float:
    if not samples:
        return float("nan")
    s = sorted(samples)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def summary(name: str, latencies: list[float], elapsed: float, floor: float | None = None) -> str:
    """One line: ops/s, p50/p99 in ms, and the ratio to a floor's ops/s when given."""
    ops = len(latencies) / elapsed if elapsed else float("nan")
    line = (
        f"{name:<34} {ops:>9.0f} ops/s   p50 {percentile(latencies, 50) * 1e3:7.2f} ms   "
        f"p99 {percentile(latencies, 99) * 1e3:7.2f} ms"
    )
    if floor:
        line += f"   {ops / floor:5.2f}x of floor"
    return line


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


@contextmanager
def apiserver(extra: list[str] | None = None) -> Iterator[tuple[str, int]]:
    """An API server on a free port over a fresh temp dir; yields (url, pid)."""
    from tests.conftest import start_apiserver

    with tempfile.TemporaryDirectory(prefix="tug-bench-") as d:
        server = start_apiserver(Path(d), extra=extra)
        try:
            yield server.url, server.proc.pid
        finally:
            server.stop()


def cpu_count() -> int:
    return os.cpu_count() or 1
