"""CRI log records and image reference normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet.cri.logs import (
    LogEntry,
    format_line,
    format_output,
    format_timestamp,
    join_partials,
    parse_line,
    parse_timestamp,
    read_log,
)
from kubelet.cri.names import normalize_image


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.35", "docker.io/library/busybox:1.35"),
        ("tugboat/web:1", "docker.io/tugboat/web:1"),
        ("docker.io/tugboat/web:2", "docker.io/tugboat/web:2"),
        ("localhost/tugboat/pause:1", "localhost/tugboat/pause:1"),
        ("localhost/x", "localhost/x:latest"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
        ("registry.example:5000/a/b:c", "registry.example:5000/a/b:c"),
        ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64),
        ("sha256:" + "b" * 64, "sha256:" + "b" * 64),
    ],
)
def test_normalize_image(ref: str, expected: str) -> None:
    assert normalize_image(ref) == expected


@pytest.mark.parametrize(
    ("time_ns", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_500_000_000, "1970-01-01T00:00:01.5Z"),
        (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
        (1_700_000_000_000_000_100, "2023-11-14T22:13:20.0000001Z"),
    ],
)
def test_timestamps_round_trip(time_ns: int, text: str) -> None:
    assert format_timestamp(time_ns) == text
    assert parse_timestamp(text) == time_ns


def test_parse_timestamp_with_offset() -> None:
    assert parse_timestamp("2023-11-14T23:13:20.5+01:00") == 1_700_000_000_500_000_000


@pytest.mark.parametrize(
    ("line", "entry"),
    [
        (
            "2023-11-14T22:13:20Z stdout F hello world\n",
            LogEntry(1_700_000_000 * 10**9, "stdout", "hello world"),
        ),
        (
            "2023-11-14T22:13:20Z stderr P part",
            LogEntry(1_700_000_000 * 10**9, "stderr", "part", True),
        ),
        ("2023-11-14T22:13:20Z stdout F ", LogEntry(1_700_000_000 * 10**9, "stdout", "")),
        ("2023-11-14T22:13:20Z stdout F", LogEntry(1_700_000_000 * 10**9, "stdout", "")),
    ],
    ids=["full", "partial", "empty-line", "no-space"],
)
def test_parse_line(line: str, entry: LogEntry) -> None:
    assert parse_line(line) == entry


@pytest.mark.parametrize("line", ["garbage", "2023-11-14T22:13:20Z stdin F x", "x stdout X y"])
def test_parse_line_rejects_malformed(line: str) -> None:
    with pytest.raises(ValueError):
        parse_line(line)


def test_format_line_and_output() -> None:
    assert format_line(0, "stdout", "hi") == "1970-01-01T00:00:00Z stdout F hi\n"
    assert format_line(0, "stderr", "p", partial=True) == "1970-01-01T00:00:00Z stderr P p\n"
    assert format_output(0, "stdout", "a\nb\n").splitlines() == [
        "1970-01-01T00:00:00Z stdout F a",
        "1970-01-01T00:00:00Z stdout F b",
    ]
    with pytest.raises(ValueError):
        format_line(0, "stdout", "two\nlines")


def test_join_partials_per_stream() -> None:
    entries = [
        LogEntry(1, "stdout", "hel", True),
        LogEntry(2, "stderr", "err"),
        LogEntry(3, "stdout", "lo"),
        LogEntry(4, "stdout", "tail", True),
    ]
    assert list(join_partials(entries)) == [
        LogEntry(2, "stderr", "err"),
        LogEntry(1, "stdout", "hello"),
        LogEntry(4, "stdout", "tail", True),
    ]


def test_read_log_skips_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(
        format_line(5, "stdout", "one", partial=True)
        + "not a record\n"
        + format_line(6, "stdout", " two")
    )
    assert read_log(path) == [LogEntry(5, "stdout", "one two")]
