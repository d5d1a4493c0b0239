"""Output formats of ``get`` and friends: tables, ``-o yaml|json|name|jsonpath=|custom-columns=``.

Tables come from the server (``meta.k8s.io/v1`` Table) and are rendered here like kubectl's
tabwriter renders them: every column but the last padded to its widest cell plus 3 (at least 6).
Objects print with sorted keys, as kubectl prints unstructured objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from cli.errors import CliError
from machinery.printers import format_labels, jsonpath_values

FORMATS = ("wide", "yaml", "json", "name", "jsonpath", "jsonpath-as-json", "custom-columns")


@dataclass(frozen=True)
class OutputFormat:
    """A parsed ``-o`` value: ``kind`` is "" (table) or one of :data:`FORMATS`."""

    kind: str = ""
    arg: str = ""

    @classmethod
    def parse(cls, spec: str | None) -> OutputFormat:
        if not spec:
            return cls()
        kind, _, arg = spec.partition("=")
        if kind not in FORMATS:
            allowed = ", ".join(FORMATS)
            raise CliError(
                f'unable to match a printer suitable for the output format "{spec}", '
                f"allowed formats are: {allowed}"
            )
        if kind in ("jsonpath", "jsonpath-as-json", "custom-columns") and not arg:
            raise CliError(f"{kind} format specified but no {kind} template given")
        return cls(kind, arg)

    @property
    def is_table(self) -> bool:
        return self.kind in ("", "wide")


def pad_columns(lines: Sequence[Sequence[str]]) -> str:
    """Rows of cells aligned like kubectl's tabwriter (minwidth 6, padding 3)."""
    if not lines:
        return ""
    ncols = max(len(line) for line in lines)
    widths = [0] * ncols
    for line in lines:
        for i, cell in enumerate(line[:-1]):
            widths[i] = max(widths[i], len(cell) + 3, 6)
    out = []
    for line in lines:
        cells = [c.ljust(widths[i]) for i, c in enumerate(line[:-1])] + list(line[-1:])
        out.append("".join(cells))
    return "\n".join(out) + "\n"


def cell_text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, dict | list):
        return json.dumps(cell, separators=(",", ":"))
    return str(cell)


def table_lines(
    table: dict[str, Any],
    *,
    wide: bool = False,
    no_headers: bool = False,
    name_prefix: str = "",
    namespace_column: bool = False,
    show_labels: bool = False,
) -> list[list[str]]:
    """A server Table as text cells (header first unless ``no_headers``)."""
    defs = table.get("columnDefinitions") or []
    keep = [i for i, d in enumerate(defs) if wide or not d.get("priority")]
    lines: list[list[str]] = []
    if not no_headers:
        header = [defs[i]["name"].upper() for i in keep]
        if namespace_column:
            header.insert(0, "NAMESPACE")
        if show_labels:
            header.append("LABELS")
        lines.append(header)
    for row in table.get("rows") or []:
        cells = row.get("cells") or []
        meta = (row.get("object") or {}).get("metadata") or {}
        line = []
        for i in keep:
            text = cell_text(cells[i]) if i < len(cells) else ""
            if name_prefix and defs[i].get("format") == "name":
                text = f"{name_prefix}/{text}"
            line.append(text)
        if namespace_column:
            line.insert(0, meta.get("namespace", ""))
        if show_labels:
            line.append(format_labels(meta.get("labels")))
        lines.append(line)
    return lines


# ----------------------------------------------------------------------------- objects


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class _Dumper(yaml.SafeDumper):
    """YAML as kubectl prints it: multi-line strings as ``|`` blocks, strings that would read
    as another type double-quoted."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if (
        "\n" in value
        and not value.startswith(" ")
        and all(c.isprintable() or c == "\n" for c in value)
    ):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    style = None
    if dumper.resolve(yaml.ScalarNode, value, (True, False)) != "tag:yaml.org,2002:str":
        style = '"'  # "16", "true", a timestamp: go-yaml double-quotes these
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(obj: Any) -> str:
    return yaml.dump(
        _sorted(obj),
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 20,
    )


def to_json(obj: Any) -> str:
    return json.dumps(_sorted(obj), indent=4, ensure_ascii=False) + "\n"


def as_list(objs: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``-o yaml|json`` prints for several objects."""
    return {"apiVersion": "v1", "items": objs, "kind": "List", "metadata": {"resourceVersion": ""}}


def render_objects(
    fmt: OutputFormat,
    objs: list[dict[str, Any]],
    names: list[str],
    single: bool,
    show_managed_fields: bool = False,
) -> str:
    """Text for non-table formats; ``names`` are the ``kind[.group]/name`` of each object.
    ``metadata.managedFields`` is left out unless asked for, as kubectl does."""
    if not show_managed_fields:
        objs = [_without_managed_fields(o) for o in objs]
    doc: Any = objs[0] if single and len(objs) == 1 else as_list(objs)
    if fmt.kind == "yaml":
        return to_yaml(doc)
    if fmt.kind == "json":
        return to_json(doc)
    if fmt.kind == "name":
        return "".join(f"{n}\n" for n in names)
    if fmt.kind in ("jsonpath", "jsonpath-as-json"):
        if fmt.kind == "jsonpath-as-json":
            return to_json(jsonpath_values(doc, fmt.arg))
        return jsonpath_template(doc, fmt.arg)
    if fmt.kind == "custom-columns":
        return custom_columns(fmt.arg, objs)
    raise CliError(f"unsupported output format {fmt.kind}")


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


# ----------------------------------------------------------------------------- jsonpath


_TOKEN = re.compile(r"\{((?:[^{}\"']|\"(?:\\.|[^\"])*\"|'[^']*')*)\}")


def _value_text(v: Any) -> str:
    if isinstance(v, dict | list):
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    if isinstance(v, bool):
        return "true" if v else "false"
    return cell_text(v)


def jsonpath_template(doc: Any, template: str) -> str:
    """kubectl's JSONPath template: literal text, ``{.path}``, ``{"text"}``,
    ``{range .path}...{end}``. Several values of one expression are joined by a space."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    for m in _TOKEN.finditer(template):
        if m.start() > pos:
            tokens.append(("text", template[pos : m.start()]))
        tokens.append(("expr", m.group(1).strip()))
        pos = m.end()
    if pos < len(template):
        tokens.append(("text", template[pos:]))
    if "{" in "".join(t for k, t in tokens if k == "text"):
        raise CliError(f"error parsing jsonpath {template}: unclosed action")
    out, rest = _run(tokens, doc)
    if rest:
        raise CliError(f"error parsing jsonpath {template}: unexpected {{end}}")
    return out


def _run(tokens: list[tuple[str, str]], node: Any) -> tuple[str, list[tuple[str, str]]]:
    out = []
    while tokens:
        kind, text = tokens[0]
        tokens = tokens[1:]
        if kind == "text":
            out.append(text)
        elif text == "end":
            return "".join(out), [("end", ""), *tokens]
        elif text.startswith("range "):
            body, after = _split_range(tokens)
            for item in _values(node, text[6:]):
                out.append(_run(list(body), item)[0])
            tokens = after
        elif text[:1] in "\"'":
            out.append(json.loads(text) if text[0] == '"' else text[1:-1])
        else:
            out.append(" ".join(_value_text(v) for v in _values(node, text)))
    return "".join(out), []


def _split_range(tokens: list[tuple[str, str]]) -> tuple[list, list]:
    depth = 0
    for i, (kind, text) in enumerate(tokens):
        if kind == "expr" and text.startswith("range "):
            depth += 1
        elif kind == "expr" and text == "end":
            if depth == 0:
                return tokens[:i], tokens[i + 1 :]
            depth -= 1
    raise CliError("error parsing jsonpath: range without end")


def _values(node: Any, expr: str) -> list[Any]:
    expr = expr.strip()
    if expr in ("", ".", "@", "$"):
        return [node]
    if expr.startswith("@"):
        expr = expr[1:]
    try:
        found = jsonpath_values(node, expr)
    except ValueError as e:
        raise CliError(f"error parsing jsonpath {{{expr}}}: {e}") from None
    if len(found) == 1 and isinstance(found[0], list) and "[*]" not in expr:
        return found[0] if expr.endswith("[*]") else found
    return found


def go_text(v: Any) -> str:
    """A value as Go's ``fmt`` prints it (custom-columns cells): ``map[k:v]``, ``[a b]``."""
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_text(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_text(i) for i in v) + "]"
    return _value_text(v)


def custom_columns(spec: str, objs: list[dict[str, Any]]) -> str:
    """``-o custom-columns=HEADER:.path,...``: one line per object, ``<none>`` when empty."""
    columns = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep or not path:
            raise CliError(
                f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
            )
        columns.append((header, path if path.startswith(("{", ".")) else "." + path))
    lines = [[h for h, _ in columns]]
    for obj in objs:
        row = []
        for _, path in columns:
            try:
                vals = jsonpath_values(obj, path)
            except ValueError as e:
                raise CliError(f"error parsing custom-columns {path}: {e}") from None
            row.append(",".join(go_text(v) for v in vals) if vals else "<none>")
        lines.append(row)
    return pad_columns(lines)
