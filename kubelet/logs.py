"""Serving container logs the way ``GET pods/NAME/log`` defines them.

:func:`select` applies ``sinceSeconds``/``sinceTime``, ``tailLines``, ``timestamps`` and
``limitBytes`` to a CRI log file's entries; :func:`follow` yields the formatted output and then,
while the container runs, every new line as it is written (polling the file; it ends when the
container has stopped and the file is drained, or after ``idle_check`` says so).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from .cri.logs import LogEntry, format_timestamp, join_partials, parse_line


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
            if not await running() and os.fstat(f.fileno()).st_size <= f.tell():
                return
            await asyncio.sleep(poll)
    finally:
        f.close()
