"""The CRI container log format.

Each line of a container log file is ``<timestamp> <stream> <tag> <content>``: the timestamp is
RFC 3339 with nanoseconds (Go's ``RFC3339Nano``, trailing zeros of the fraction dropped), the
stream ``stdout`` or ``stderr``, the tag ``F`` for a full line or ``P`` for a partial one whose
content continues in the next record of the same stream. Runtimes write these files; the node
agent reads them (and deletes them: they outlive RemoveContainer).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

STREAMS = ("stdout", "stderr")


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log line: ``time_ns`` since the epoch, the stream and the text (no newline)."""

    time_ns: int
    stream: str
    text: str
    partial: bool = False


def format_timestamp(time_ns: int) -> str:
    """``time_ns`` since the epoch as RFC3339Nano in UTC (fraction without trailing zeros)."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    fraction = f".{nanos:09d}".rstrip("0").rstrip(".")
    return f"{base}{fraction}Z"


def parse_timestamp(text: str) -> int:
    """Parse an RFC 3339 timestamp (any fraction length, ``Z`` or ``±hh:mm``) to ns since epoch."""
    if text.endswith("Z") or text.endswith("z"):
        main, offset = text[:-1], 0
    else:
        main, sign, tz = text[:-6], text[-6], text[-5:]
        if sign not in "+-" or tz[2] != ":":
            raise ValueError(f"bad RFC 3339 timestamp {text!r}")
        offset = (int(tz[:2]) * 3600 + int(tz[3:]) * 60) * (1 if sign == "+" else -1)
    whole, _, fraction = main.partition(".")
    if fraction and not fraction.isdigit():
        raise ValueError(f"bad RFC 3339 timestamp {text!r}")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - offset
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    return seconds * 1_000_000_000 + nanos


def format_line(time_ns: int, stream: str, text: str, partial: bool = False) -> str:
    """One CRI log record, newline-terminated. ``text`` must not contain a newline."""
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {STREAMS}, not {stream!r}")
    if "\n" in text:
        raise ValueError("a log record holds one line")
    return f"{format_timestamp(time_ns)} {stream} {'P' if partial else 'F'} {text}\n"


def format_output(time_ns: int, stream: str, output: str) -> str:
    """Records for ``output`` as a process wrote it: one ``F`` record per line.

    A trailing text without a newline is still written as a full line.
    """
    lines = output.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return "".join(format_line(time_ns, stream, line) for line in lines)


def parse_line(line: str) -> LogEntry:
    """Parse one record (with or without its newline). Raises ``ValueError`` if malformed."""
    line = line.rstrip("\n")
    parts = line.split(" ", 3)
    if len(parts) < 3 or parts[1] not in STREAMS or parts[2] not in ("F", "P"):
        raise ValueError(f"not a CRI log line: {line[:80]!r}")
    text = parts[3] if len(parts) == 4 else ""
    return LogEntry(parse_timestamp(parts[0]), parts[1], text, parts[2] == "P")


def join_partials(entries: Iterable[LogEntry]) -> Iterator[LogEntry]:
    """Merge ``P`` records into the following records of the same stream, up to an ``F``.

    The merged entry carries the time of its first record. A trailing unfinished partial line
    is yielded as it is (``partial=True``).
    """
    pending: dict[str, LogEntry] = {}
    for entry in entries:
        head = pending.pop(entry.stream, None)
        if head is not None:
            entry = LogEntry(head.time_ns, entry.stream, head.text + entry.text, entry.partial)
        if entry.partial:
            pending[entry.stream] = entry
        else:
            yield entry
    yield from pending.values()


def read_log(path: str | Path) -> list[LogEntry]:
    """All complete entries of a CRI log file, partial records joined, malformed lines skipped."""
    entries: list[LogEntry] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                entries.append(parse_line(line))
            except ValueError:
                continue
    return list(join_partials(entries))
