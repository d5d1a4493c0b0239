"""Serving container logs the way ``GET pods/NAME/log`` defines them, and rotating them.

:func:`select` applies ``sinceSeconds``/``sinceTime``, ``tailLines``, ``timestamps`` and
``limitBytes`` to a CRI log file's entries; :func:`follow` yields the formatted output and then,
while the container runs, every new line as it is written (polling the file; it ends when the
container has stopped and the file is drained). A file rotated away while followed is drained,
then the new file at the same path is followed.

:func:`rotate_logs` is the node's log manager (Kubernetes' ``containerLogMaxSize`` /
``containerLogMaxFiles``): a running container's log bigger than ``max_size`` is renamed to
``<path>.<UTC timestamp>``, the runtime is asked to reopen it (CRI ``ReopenContainerLog``) and
only the newest ``max_files - 1`` rotated files are kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cri import api_pb2 as pb
from .cri.errors import CriError
from .cri.logs import LogEntry, format_timestamp, join_partials, parse_line

log = logging.getLogger(__name__)
MAX_SIZE = 10 * 1024 * 1024
MAX_FILES = 5


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since_ns: int | None = None  # entries at or after this time only
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False


def render(entry: LogEntry, timestamps: bool) -> bytes:
    text = entry.text + ("" if entry.partial else "\n")
    if timestamps:
        text = f"{format_timestamp(entry.time_ns)} {text}"
    return text.encode()


def parse_records(data: str) -> list[LogEntry]:
    out = []
    for line in data.splitlines():
        try:
            out.append(parse_line(line))
        except ValueError:
            continue
    return list(join_partials(out))


def select(entries: list[LogEntry], opts: LogOptions) -> list[LogEntry]:
    if opts.since_ns is not None:
        entries = [e for e in entries if e.time_ns >= opts.since_ns]
    if opts.tail_lines is not None:
        entries = entries[-opts.tail_lines :] if opts.tail_lines > 0 else []
    return entries


async def follow(
    path: str,
    opts: LogOptions,
    running: Callable[[], Awaitable[bool]],
    poll: float = 0.1,
) -> AsyncIterator[bytes]:
    """The log as bytes, honouring ``opts``; with ``follow`` keeps streaming new lines."""
    budget = opts.limit_bytes
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    try:
        data = f.read()
        complete, _, rest = data.rpartition("\n")
        pending = rest
        for entry in select(parse_records(complete), opts):
            chunk = render(entry, opts.timestamps)
            if budget is not None:
                chunk = chunk[:budget]
                budget -= len(chunk)
            if chunk:
                yield chunk
            if budget is not None and budget <= 0:
                return
        if not opts.follow:
            return
        while True:
            more = f.read()
            if more:
                pending += more
                lines, _, pending = pending.rpartition("\n")
                for entry in parse_records(lines):
                    if opts.since_ns is not None and entry.time_ns < opts.since_ns:
                        continue
                    chunk = render(entry, opts.timestamps)
                    if budget is not None:
                        chunk = chunk[:budget]
                        budget -= len(chunk)
                    if chunk:
                        yield chunk
                    if budget is not None and budget <= 0:
                        return
                continue
            if _rotated(path, f.fileno()):
                f.close()
                try:
                    f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
                except FileNotFoundError:
                    return
                continue
            if not await running() and os.fstat(f.fileno()).st_size <= f.tell():
                return
            await asyncio.sleep(poll)
    finally:
        f.close()


def _rotated(path: str, fd: int) -> bool:
    """Whether ``path`` now names another file than the open ``fd``."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (current.st_ino, current.st_dev) != (opened.st_ino, opened.st_dev)


def rotated_files(path: str) -> list[Path]:
    """The rotated copies of ``path``, oldest first."""
    p = Path(path)
    return sorted(p.parent.glob(p.name + ".*"))


async def rotate_logs(
    runtime: Any,
    labels: dict[str, str],
    *,
    max_size: int = MAX_SIZE,
    max_files: int = MAX_FILES,
    clock: Callable[[], float] = time.time,
) -> list[str]:
    """Rotate the logs of running containers matching ``labels``; returns the rotated paths."""
    done = []
    for c in await runtime.list_containers(labels=labels):
        if c.state != pb.CONTAINER_RUNNING:
            continue
        try:
            status = await runtime.container_status(c.id)
        except CriError:
            continue
        path = status.log_path
        try:
            size = os.path.getsize(path) if path else 0
        except OSError:
            continue
        if size > max_size:
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock()))
            target = f"{path}.{stamp}"
            os.replace(path, target)
            try:
                await runtime.reopen_container_log(c.id)
            except CriError as err:
                os.replace(target, path)  # the runtime still writes the old file: undo
                log.warning("could not reopen the log of %s: %s", c.id[:12], err)
                continue
            done.append(path)
        if path:
            for old in rotated_files(path)[: -max(1, max_files - 1)]:
                old.unlink(missing_ok=True)
    return done
