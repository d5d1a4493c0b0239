"""Reading ``-f`` sources: files, directories (``-R`` to recurse), ``-`` for stdin.

Every source may hold several YAML documents (``---``) or JSON; ``kind: List`` documents are
expanded into their items. A parse error names the file, line and column (1-based).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cli.errors import CliError

EXTENSIONS = (".yaml", ".yml", ".json")


@dataclass
class Manifest:
    """One object and the source it came from (for messages)."""

    obj: dict[str, Any]
    source: str


def _files(path: str, recursive: bool) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        pattern = "**/*" if recursive else "*"
        return sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix in EXTENSIONS)
    if not p.exists():
        raise CliError(f'the path "{path}" does not exist')
    return [p]


def parse(text: str, source: str) -> list[dict[str, Any]]:
    """The objects in ``text`` (YAML stream or JSON); raises :class:`CliError` with the
    position of a syntax error."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            docs: list[Any] = [json.loads(text)]
        except json.JSONDecodeError as e:
            raise CliError(
                f"error parsing {source}: json: line {e.lineno}, column {e.colno}: {e.msg}"
            ) from None
    else:
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise CliError(f"error parsing {source}: yaml: {where}{e.problem or e}") from None
        except yaml.YAMLError as e:
            raise CliError(f"error parsing {source}: yaml: {e}") from None
    out: list[dict[str, Any]] = []
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, list):
            out.extend(_checked(d, source) for d in doc)
        elif isinstance(doc, dict) and doc.get("kind", "").endswith("List") and "items" in doc:
            out.extend(_checked(d, source) for d in doc.get("items") or [])
        else:
            out.append(_checked(doc, source))
    return out


def _checked(doc: Any, source: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise CliError(f'error validating "{source}": the document is not an object')
    missing = [f"{f} not set" for f in ("apiVersion", "kind") if not doc.get(f)]
    if missing:
        raise CliError(
            f'error validating "{source}": error validating data: [{", ".join(missing)}]'
        )
    return doc


def load(paths: list[str], recursive: bool = False, stdin: Any = None) -> list[Manifest]:
    """Every object in the ``-f`` sources, in order."""
    if not paths:
        raise CliError("must specify one of -f and -k")
    out: list[Manifest] = []
    for path in paths:
        if path == "-":
            text = (stdin or sys.stdin).read()
            out += [Manifest(o, "STDIN") for o in parse(text, "STDIN")]
            continue
        for f in _files(path, recursive):
            try:
                text = f.read_text()
            except OSError as e:
                raise CliError(f"cannot read {f}: {e.strerror}") from None
            out += [Manifest(o, str(f)) for o in parse(text, str(f))]
    if not out:
        raise CliError("no objects passed to apply")
    return out
