"""``tug apply -f`` (client-side three-way merge) and ``tug create -f``.

Apply follows kubectl: the object written carries the annotation
``kubectl.kubernetes.io/last-applied-configuration`` (the manifest as compact JSON); the next
apply computes :func:`~machinery.patch.three_way_merge_patch` from (that annotation, the new
manifest, the live object) and sends it as a strategic merge patch (built-in kinds) or a JSON
merge patch (custom resources). An empty patch is reported ``unchanged`` and not sent.
``-l`` applies only the manifests whose labels match; ``--prune`` then deletes what an earlier
apply left behind (:mod:`cli.verbs.prune`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli import api, manifests
from cli.app import format_api_error
from cli.config import Session
from cli.errors import CliError
from cli.manifests import Manifest
from cli.output import OutputFormat, render_objects
from cli.resources import qualified_kind
from cli.verbs.prune import LAST_APPLIED, Applied, prune
from machinery import errors
from machinery.kinds import ResourceType
from machinery.patch import supports_strategic, three_way_merge_patch
from machinery.selectors import LabelSelector


def register(sub: Any) -> None:
    p = sub.add_parser("apply", help="apply a configuration to resources by file or stdin")
    add_file_flags(p, required=True)
    p.add_argument(
        "--dry-run", nargs="?", const="client", default="none", choices=["none", "client", "server"]
    )
    p.add_argument("-o", "--output")
    p.add_argument("--server-side", action="store_true", help="server-side apply")
    p.add_argument("--force-conflicts", action="store_true")
    p.add_argument("--field-manager", default=None)
    p.add_argument("--validate", default="strict")
    p.add_argument("-l", "--selector", help="apply (and prune) only objects with these labels")
    p.add_argument(
        "--prune", action="store_true", help="delete applied objects this apply no longer names"
    )
    p.add_argument("--all", action="store_true", help="with --prune: no selector, prune all")
    p.add_argument(
        "--prune-allowlist",
        action="append",
        default=[],
        metavar="GROUP/VERSION/KIND",
        help="types to prune (default: kubectl's set), e.g. core/v1/ConfigMap; may repeat",
    )
    p.set_defaults(func=run_apply)


def add_file_flags(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        required=required,
        help="file, directory or - (stdin); may repeat",
    )
    p.add_argument("-R", "--recursive", action="store_true", help="recurse into directories")


def dry_run_suffix(mode: str) -> str:
    return {"client": " (dry run)", "server": " (server dry run)"}.get(mode, "")


def target_namespace(session: Session, rt: ResourceType, obj: dict[str, Any]) -> str | None:
    """The object's namespace: its own, else ``-n``/context; a clash with ``-n`` is an error."""
    if not rt.namespaced:
        return None
    meta = obj.setdefault("metadata", {})
    own = meta.get("namespace")
    if own and session.explicit_namespace and own != session.namespace:
        raise CliError(
            f'the namespace from the provided object "{own}" does not match the '
            f'namespace "{session.namespace}". You must pass '
            f"'--namespace={own}' to perform this operation."
        )
    ns = own or session.namespace
    meta["namespace"] = ns
    return ns


def last_applied_text(obj: dict[str, Any]) -> str:
    """The annotation's value as kubectl writes it: the manifest (``metadata.annotations``
    present, possibly empty, without the annotation itself) as sorted compact JSON, HTML
    characters escaped as Go escapes them, plus a newline."""
    meta = dict(obj.get("metadata") or {})
    meta["annotations"] = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED
    }
    text = json.dumps(
        {**obj, "metadata": meta}, separators=(",", ":"), sort_keys=True, ensure_ascii=False
    )
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


def _with_last_applied(obj: dict[str, Any]) -> dict[str, Any]:
    """The manifest plus the annotation recording it."""
    meta = dict(obj.get("metadata") or {})
    annotations = {**(meta.get("annotations") or {}), LAST_APPLIED: last_applied_text(obj)}
    return {**obj, "metadata": {**meta, "annotations": annotations}}


def apply_one(session: Session, m: Manifest, dry_run: str) -> tuple[str, dict[str, Any]]:
    """Apply one manifest; returns (``created|configured|unchanged``, resulting object)."""
    obj = json.loads(json.dumps(m.obj))
    rt = session.resources.for_kind(obj["apiVersion"], obj["kind"])
    ns = target_namespace(session, rt, obj)
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        raise CliError(
            f'error when retrieving current configuration of "{m.source}": '
            "resource name may not be empty"
        )
    client = session.client
    modified = _with_last_applied(obj)
    try:
        current = client.get(rt, name, ns)
    except errors.NotFound:
        if dry_run == "client":
            return "created", modified
        return "created", client.create(
            rt, modified, ns, dry_run=dry_run == "server", field_manager="kubectl-client-side-apply"
        )
    if dry_run == "client":  # as kubectl: no patch is computed, an existing object "configured"
        return "configured", current
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    original = json.loads(annotations[LAST_APPLIED]) if annotations.get(LAST_APPLIED) else None
    strategic = supports_strategic(rt.kind, rt.api_version)
    patch = three_way_merge_patch(original, modified, current, rt.kind if strategic else None)
    if not patch:
        return "unchanged", current
    result = api.patch(
        client,
        rt,
        name,
        ns,
        patch,
        "strategic" if strategic else "merge",
        dry_run=dry_run == "server",
        field_manager="kubectl-client-side-apply",
    )
    return "configured", result


def _check_prune_flags(args: argparse.Namespace) -> None:
    if args.all and args.selector:
        raise CliError("cannot set --all and --selector at the same time")
    if args.prune and not (args.all or args.selector):
        raise CliError(
            "all resources selected for prune without explicitly passing --all. To prune all "
            "resources, pass the --all flag. If you did not mean to prune all resources, "
            "specify a label selector"
        )


def selected(items: list[Manifest], selector: str | None) -> list[Manifest]:
    """The manifests whose labels match ``-l`` (all of them without one)."""
    if not selector:
        return items
    try:
        sel = LabelSelector.parse(selector)
    except ValueError as e:
        raise CliError(f"unable to parse selector {selector!r}: {e}") from None
    out = [m for m in items if sel.matches((m.obj.get("metadata") or {}).get("labels"))]
    if not out:
        raise CliError("no objects passed to apply")
    return out


class _Visited:
    """What an apply wrote, for prune: object identities and namespaces in first-seen order."""

    def __init__(self) -> None:
        self.objects: set[Applied] = set()
        self.namespaces: list[str] = []

    def add(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") if rt.namespaced else None
        self.objects.add(Applied(rt.group, rt.kind, ns, meta.get("name", "")))
        if ns and ns not in self.namespaces:
            self.namespaces.append(ns)


def _prune_after(session: Session, args: argparse.Namespace, visited: _Visited) -> bool:
    return prune(
        session,
        visited.objects,
        visited.namespaces,
        selector=args.selector,
        allowlist=args.prune_allowlist,
        dry_run=args.dry_run,
    )


def run_apply(session: Session, args: argparse.Namespace) -> int:
    _check_prune_flags(args)
    if args.server_side:
        return _server_side(session, args)
    fmt = OutputFormat.parse(args.output.removeprefix("=") if args.output else None)
    items = selected(manifests.load(args.filename, args.recursive), args.selector)
    failed = False
    visited = _Visited()
    for m in items:
        try:
            verdict, obj = apply_one(session, m, args.dry_run)
        except errors.ApiError as e:
            action = "creating" if isinstance(e, errors.AlreadyExists) else "applying"
            session.warn(format_api_error(e, f'error when {action} "{m.source}": '))
            failed = True
            continue
        visited.add(session.resources.for_kind(m.obj["apiVersion"], m.obj["kind"]), obj)
        _report(session, fmt, m, obj, verdict, args.dry_run)
    if args.prune and not failed:  # as kubectl: never prune after a failed apply
        failed = not _prune_after(session, args, visited)
    return 1 if failed else 0


def _report(
    session: Session,
    fmt: OutputFormat,
    m: Manifest,
    obj: dict[str, Any],
    verdict: str,
    dry_run: str,
) -> None:
    rt = session.resources.for_kind(m.obj["apiVersion"], m.obj["kind"])
    ref = f"{qualified_kind(rt)}/{m.obj['metadata']['name']}"
    if fmt.kind and fmt.kind != "name":
        session.out.write(render_objects(fmt, [api.with_type(rt, obj)], [ref], True))
    elif fmt.kind == "name":
        session.print(ref)
    else:
        session.print(f"{ref} {verdict}{dry_run_suffix(dry_run)}")


def _server_side(session: Session, args: argparse.Namespace) -> int:
    failed = False
    visited = _Visited()
    for m in selected(manifests.load(args.filename, args.recursive), args.selector):
        obj = m.obj
        rt = session.resources.for_kind(obj["apiVersion"], obj["kind"])
        ns = target_namespace(session, rt, obj)
        name = obj["metadata"].get("name", "")
        try:
            after = session.client.patch(
                rt,
                name,
                obj,
                ns,
                patch_type="apply",
                field_manager=args.field_manager or "kubectl",
                force=args.force_conflicts or None,
            )
        except errors.ApiError as e:
            session.warn(format_api_error(e, f'error when applying "{m.source}": '))
            failed = True
            continue
        visited.add(rt, after)
        session.print(f"{qualified_kind(rt)}/{name} serverside-applied")  # kubectl's, always
    if args.prune and not failed:
        failed = not _prune_after(session, args, visited)
    return 1 if failed else 0


def create_from_files(session: Session, args: argparse.Namespace) -> int:
    """``tug create -f``: POST every object; an existing one is an error."""
    fmt = OutputFormat.parse(args.output.removeprefix("=") if args.output else None)
    failed = False
    for m in manifests.load(args.filename, args.recursive):
        obj = json.loads(json.dumps(m.obj))
        rt = session.resources.for_kind(obj["apiVersion"], obj["kind"])
        ns = target_namespace(session, rt, obj)
        try:
            if args.dry_run == "client":
                created = obj
            else:
                created = session.client.create(
                    rt, obj, ns, dry_run=args.dry_run == "server", field_manager="kubectl-create"
                )
        except errors.ApiError as e:
            session.warn(format_api_error(e, f'error when creating "{m.source}": '))
            failed = True
            continue
        name = (created.get("metadata") or {}).get("name", "")
        ref = f"{qualified_kind(rt)}/{name}"
        if fmt.kind:
            session.out.write(render_objects(fmt, [api.with_type(rt, created)], [ref], True))
        else:
            session.print(f"{ref} created{dry_run_suffix(args.dry_run)}")
    return 1 if failed else 0
