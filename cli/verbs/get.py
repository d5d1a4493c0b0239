"""``tug get``: server-side Tables (as ``kubectl get`` prints them) or objects in a format."""

from __future__ import annotations

import argparse
from typing import Any

from cli import api, manifests
from cli.config import Session
from cli.errors import CliError
from cli.output import OutputFormat, cell_text, pad_columns, render_objects, table_lines
from cli.resources import qualified_kind
from cli.targets import Target, parse_targets
from machinery import errors
from machinery.printers import column_definitions, format_labels, table_row


def register(sub: Any) -> None:
    p = sub.add_parser("get", help="display one or many resources")
    p.add_argument("args", nargs="*", metavar="TYPE[.GROUP] [NAME...] | TYPE/NAME")
    add_output_flags(p)
    p.add_argument("-l", "--selector", help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", help="field selector, e.g. status.phase=Running")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, watch changes")
    p.add_argument("--watch-only", action="store_true", help="watch changes, no initial list")
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument(
        "-L",
        "--label-columns",
        action="append",
        default=[],
        metavar="KEY[,KEY]",
        help="a column per label key, e.g. -L app,tier (may repeat)",
    )
    p.add_argument("--no-headers", action="store_true", help="omit the header line")
    p.add_argument("--ignore-not-found", action="store_true")
    p.add_argument("-f", "--filename", action="append", default=[])
    p.add_argument("-R", "--recursive", action="store_true")
    p.set_defaults(func=run)


def add_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", help="wide|yaml|json|name|jsonpath=...|custom-columns=...")
    p.add_argument(
        "--show-managed-fields", action="store_true", help="keep metadata.managedFields in output"
    )


def output_format(args: argparse.Namespace) -> OutputFormat:
    spec = args.output.removeprefix("=") if args.output else None
    return OutputFormat.parse(spec)


def label_keys(args: argparse.Namespace) -> list[str]:
    """The ``-L`` keys in order: comma-separated, repeatable, blanks dropped."""
    return [k.strip() for spec in args.label_columns for k in spec.split(",") if k.strip()]


def label_header(keys: list[str]) -> list[str]:
    """kubectl's headers for ``-L``: the key's name part upper-cased (``app.k8s.io/part-of``
    → ``PART-OF``)."""
    return [k.rpartition("/")[2].upper() for k in keys]


def label_cells(keys: list[str], meta: dict[str, Any]) -> list[str]:
    """One cell per ``-L`` key: the label's value, empty when the object lacks it."""
    labels = meta.get("labels") or {}
    return [labels.get(k, "") for k in keys]


def add_label_columns(
    lines: list[list[str]], table: dict[str, Any], keys: list[str], *, headers: bool, labels: bool
) -> list[list[str]]:
    """``lines`` (from :func:`~cli.output.table_lines`) with one column per ``-L`` key, placed
    as kubectl places them: after the table's columns, before ``--show-labels``' LABELS."""
    if not keys:
        return lines
    rows = [(r.get("object") or {}).get("metadata") or {} for r in table.get("rows") or []]
    extra = ([label_header(keys)] if headers else []) + [label_cells(keys, m) for m in rows]
    if labels:  # LABELS stays last
        return [ln[:-1] + cells + ln[-1:] for ln, cells in zip(lines, extra, strict=True)]
    return [ln + cells for ln, cells in zip(lines, extra, strict=True)]


def _from_files(session: Session, args: argparse.Namespace) -> list[Target]:
    targets: list[Target] = []
    for m in manifests.load(args.filename, args.recursive):
        rt = session.resources.for_kind(m.obj["apiVersion"], m.obj["kind"])
        targets.append(Target(rt, [m.obj.get("metadata", {}).get("name", "")]))
    return targets


def run(session: Session, args: argparse.Namespace) -> int:
    fmt = output_format(args)
    if args.filename:
        targets, prefix = _from_files(session, args), True
    else:
        targets, prefix = parse_targets(session.resources, args.args)
    all_ns = session.flags.all_namespaces
    ns = None if all_ns else session.namespace
    if args.watch or args.watch_only:
        if len(targets) != 1:
            raise CliError("you may only specify a single resource type when watching")
        return watch(session, targets[0], fmt, args, ns)
    failed = False
    printed = 0
    objects: list[dict[str, Any]] = []
    names: list[str] = []
    for t in targets:
        if fmt.is_table:
            ok, table = _table(session, t, ns, args)
            failed |= not ok
            if not table.get("rows"):
                continue
            lines = table_lines(
                table,
                wide=fmt.kind == "wide",
                no_headers=args.no_headers,
                name_prefix=qualified_kind(t.rt) if prefix else "",
                namespace_column=all_ns and t.rt.namespaced,
                show_labels=args.show_labels,
            )
            lines = add_label_columns(
                lines,
                table,
                label_keys(args),
                headers=not args.no_headers,
                labels=args.show_labels,
            )
            if printed:
                session.print()
            session.out.write(pad_columns(lines))
            printed += 1
        else:
            ok, objs = _objects(session, t, ns, args)
            failed |= not ok
            objects += objs
            names += [f"{qualified_kind(t.rt)}/{o['metadata']['name']}" for o in objs]
    if not fmt.is_table and (objects or fmt.kind in ("yaml", "json")):
        single = len(targets) == 1 and len(targets[0].names) == 1 and not prefix
        single = single or (bool(args.filename) and len(objects) == 1)
        session.out.write(render_objects(fmt, objects, names, single, args.show_managed_fields))
    elif not printed and not failed and not any(t.names for t in targets):
        nowhere = all_ns or all(not t.rt.namespaced for t in targets)
        session.warn("No resources found" if nowhere else f"No resources found in {ns} namespace.")
    return 1 if failed else 0


def _not_found(session: Session, args: argparse.Namespace, e: errors.ApiError) -> bool:
    if isinstance(e, errors.NotFound) and args.ignore_not_found:
        return True
    session.warn(f"Error from server ({e.reason}): {e.message}")
    return False


def _table(
    session: Session, t: Target, ns: str | None, args: argparse.Namespace
) -> tuple[bool, dict[str, Any]]:
    client = session.client
    if not t.names:
        return True, api.get_table(
            client, t.rt, ns, label_selector=args.selector, field_selector=args.field_selector
        )
    merged: dict[str, Any] = {}
    ok = True
    for name in t.names:
        try:
            tbl = api.get_table(client, t.rt, ns or session.namespace, name)
        except errors.ApiError as e:
            ok = _not_found(session, args, e) and ok
            continue
        if not merged:
            merged = tbl
        else:
            merged["rows"] += tbl.get("rows") or []
    return ok, merged


def _objects(
    session: Session, t: Target, ns: str | None, args: argparse.Namespace
) -> tuple[bool, list[dict[str, Any]]]:
    if not t.names:
        return True, api.list_objects(
            session.client,
            t.rt,
            ns,
            label_selector=args.selector,
            field_selector=args.field_selector,
        )
    out = []
    ok = True
    for name in t.names:
        try:
            out.append(api.with_type(t.rt, session.client.get(t.rt, name, ns or session.namespace)))
        except errors.ApiError as e:
            ok = _not_found(session, args, e) and ok
    return ok, out


def watch(
    session: Session, t: Target, fmt: OutputFormat, args: argparse.Namespace, ns: str | None
) -> int:
    """List (unless ``--watch-only``), then print one line (or object) per change until the
    server closes the stream (after ``--request-timeout``, if given) or the user interrupts."""
    client = session.client
    field_selector = args.field_selector
    if t.names:
        if len(t.names) > 1:
            raise CliError(
                "watch is only supported on individual resources and resource "
                "collections, but multiple resources were found"
            )
        field_selector = f"metadata.name={t.names[0]}"
        ns = ns or session.namespace
    listing = client.list(
        t.rt,
        ns if t.rt.namespaced else None,
        label_selector=args.selector,
        field_selector=field_selector,
    )
    rv = (listing.get("metadata") or {}).get("resourceVersion")
    defs = column_definitions(t.rt.kind, t.rt.group)
    wide = fmt.kind == "wide"
    keep = [i for i, d in enumerate(defs) if wide or not d.get("priority")]
    all_ns = session.flags.all_namespaces and t.rt.namespaced
    header = [defs[i]["name"].upper() for i in keep]
    if all_ns:
        header.insert(0, "NAMESPACE")
    keys = label_keys(args)
    header += label_header(keys)
    if args.show_labels:
        header.append("LABELS")

    def line(obj: dict[str, Any]) -> list[str]:
        cells = table_row(t.rt.kind, obj, group=t.rt.group)
        out = [cell_text(cells[i]) for i in keep]
        meta = obj.get("metadata") or {}
        if all_ns:
            out.insert(0, meta.get("namespace", ""))
        out += label_cells(keys, meta)
        if args.show_labels:
            out.append(format_labels(meta.get("labels")))
        return out

    def emit(objs: list[dict[str, Any]], with_header: bool) -> None:
        if fmt.is_table:
            rows = ([header] if with_header and not args.no_headers else []) + [
                line(o) for o in objs
            ]
            if rows:
                session.out.write(pad_columns(rows))
        else:
            names = [f"{qualified_kind(t.rt)}/{o['metadata']['name']}" for o in objs]
            for o, n in zip(objs, names, strict=True):
                session.out.write(render_objects(fmt, [api.with_type(t.rt, o)], [n], True))
        session.out.flush()

    initial = [] if args.watch_only else listing.get("items") or []
    emit(initial, True)
    first = not initial
    for etype, obj in client.watch(
        t.rt,
        ns if t.rt.namespaced else None,
        resource_version=rv,
        label_selector=args.selector,
        field_selector=field_selector,
        allow_bookmarks=False,
        timeout_seconds=session.flags.watch_timeout,
    ):
        if etype in ("ADDED", "MODIFIED", "DELETED"):
            emit([obj], first)
            first = False
    return 0
