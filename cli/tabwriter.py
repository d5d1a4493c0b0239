"""The text layout of ``tug describe``: kubectl's describe writer and Go's ``text/tabwriter``
alignment, so that the output lines up column for column with kubectl's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

HIDDEN = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
MAX_ANNOTATION = 140


class Writer:
    """kubectl's describe writer: lines whose cells are separated by tabs, laid out as Go's
    ``text/tabwriter`` lays them out for kubectl (padding 2, spaces): a column is as wide as
    its widest cell in a run of consecutive lines that have that column, plus 2; the text
    after a line's last tab is not a column. :meth:`flush` ends every run (kubectl flushes
    before the Events table)."""

    def __init__(self) -> None:
        self.chunks: list[list[str]] = [[]]

    def write(self, level: int, text: str) -> None:
        """One line (``text`` holds its tabs) at ``level`` (two spaces each)."""
        self.chunks[-1].append("  " * level + text)

    def kv(self, level: int, key: str, value: Any = None) -> None:
        text = "<none>" if value in (None, "", {}, []) else str(value)
        self.write(level, f"{key}:\t{text}")

    def line(self, level: int, text: str) -> None:
        self.write(level, text)

    def map(self, level: int, key: str, values: dict[str, Any] | None) -> None:
        """``Key:`` then ``k=v`` per entry, sorted, one a line (``printLabelsMultiline``)."""
        items = sorted((k, v) for k, v in (values or {}).items() if k not in HIDDEN)
        if not items:
            self.kv(level, key, "<none>")
            return
        first, *rest = items
        self.write(level, f"{key}:\t{first[0]}={first[1]}")
        for k, v in rest:
            self.write(level, f"\t{k}={v}")

    def annotations(self, level: int, key: str, values: dict[str, Any] | None) -> None:
        """``Key:`` then ``k: v`` per annotation, sorted; a long or multi-line value on
        lines of its own, shortened (``printAnnotationsMultiline``)."""
        items = sorted((k, v) for k, v in (values or {}).items() if k not in HIDDEN)
        if not items:
            self.kv(level, key, "<none>")
            return
        for i, (k, v) in enumerate(items):
            head = f"{key}:\t" if i == 0 else "\t"
            value = str(v).removesuffix("\n")
            if len(value) + len(k) + 2 > MAX_ANNOTATION or "\n" in value:
                self.write(level, f"{head}{k}:")
                for line in value.split("\n"):
                    short = (
                        line
                        if len(line) <= MAX_ANNOTATION - 2
                        else line[: MAX_ANNOTATION - 2] + "..."
                    )
                    self.write(level, f"  {short}")
            else:
                self.write(level, f"{head}{k}: {value}")

    def table(self, level: int, rows: list[list[str]]) -> None:
        for row in rows:
            self.write(level, "\t".join(row))

    def flush(self) -> None:
        self.chunks.append([])

    def render(self) -> str:
        return "".join(tabwriter(chunk) for chunk in self.chunks)


def tabwriter(lines: list[str], padding: int = 2) -> str:
    """``lines`` aligned as Go's ``text/tabwriter`` (minwidth 0, padding, flags 0) does."""
    cells = [line.split("\t") for line in lines]
    widths: list[int] = []
    out: list[str] = []

    def write_lines(first: int, last: int) -> None:
        for row in cells[first:last]:
            out.append(
                "".join(c.ljust(widths[j]) if j < len(widths) else c for j, c in enumerate(row))
            )

    def layout(first: int, last: int) -> None:
        column = len(widths)
        this = first
        while this < last:
            if column >= len(cells[this]) - 1:
                this += 1
                continue
            write_lines(first, this)
            first = this
            width = 0
            while this < last and column < len(cells[this]) - 1:
                width = max(width, len(cells[this][column]) + padding)
                this += 1
            widths.append(width)
            layout(first, this)
            widths.pop()
            first = this
        write_lines(first, last)

    layout(0, len(cells))
    return "".join(line + "\n" for line in out)


def rfc1123z(ts: str | None) -> str:
    """An RFC 3339 timestamp as kubectl's describe prints it (Go's RFC1123Z, local time)."""
    if not ts:
        return "<unset>"
    try:
        when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    return when.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")
