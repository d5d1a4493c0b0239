"""Verbs that change existing objects: label, annotate, patch, scale, set image, edit."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import tempfile
from typing import Any

import yaml

from cli import api
from cli.config import Session
from cli.errors import CliError
from cli.output import to_yaml
from cli.resources import qualified_kind
from cli.targets import parse_targets
from machinery import errors
from machinery.kinds import ResourceType

Ref = tuple[ResourceType, str, str | None]  # type, name, namespace


def register(sub: Any) -> None:
    for verb, past in (("label", "labeled"), ("annotate", "annotated")):
        p = sub.add_parser(verb, help=f"update the {verb}s on resources")
        p.add_argument("args", nargs="+", metavar="TYPE NAME... KEY=VAL... KEY-")
        p.add_argument("--overwrite", action="store_true")
        p.add_argument("-l", "--selector")
        p.add_argument("--all", action="store_true")
        p.add_argument("--dry-run", nargs="?", const="client", default="none")
        p.set_defaults(
            func=run_metadata, field="labels" if verb == "label" else "annotations", past=past
        )

    p = sub.add_parser("patch", help="update fields of a resource")
    p.add_argument("args", nargs="+", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("-p", "--patch", required=True)
    p.add_argument("--type", default="strategic", choices=["strategic", "merge", "json"])
    p.add_argument("--subresource")
    p.add_argument("--dry-run", nargs="?", const="client", default="none")
    p.set_defaults(func=run_patch)

    p = sub.add_parser("scale", help="set a new size for a deployment or replica set")
    p.add_argument("args", nargs="+", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--replicas", type=int, required=True)
    p.add_argument("--current-replicas", type=int, default=-1)
    p.set_defaults(func=run_scale)

    s = sub.add_parser("set", help="set specific features on objects")
    ss = s.add_subparsers(dest="what", metavar="image", parser_class=type(s))
    p = ss.add_parser("image", help="update the image of a pod template")
    p.add_argument("args", nargs="+", metavar="TYPE/NAME CONTAINER=IMAGE...")
    p.set_defaults(func=run_set_image)

    p = sub.add_parser("edit", help="edit a resource in $KUBE_EDITOR / $EDITOR")
    p.add_argument("args", nargs="+", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("-o", "--output", default="yaml", choices=["yaml", "json"])
    p.set_defaults(func=run_edit)


def resolve_refs(
    session: Session, args: list[str], selector: str | None = None, all_: bool = False
) -> list[Ref]:
    """The objects ``TYPE NAME...``/``TYPE/NAME...`` (or a selected/whole list) name."""
    targets, _ = parse_targets(session.resources, args)
    ns = None if session.flags.all_namespaces else session.namespace
    refs: list[Ref] = []
    for t in targets:
        if t.names:
            refs += [(t.rt, n, session.namespace if t.rt.namespaced else None) for n in t.names]
        elif selector or all_:
            for o in api.list_objects(session.client, t.rt, ns, label_selector=selector):
                refs.append((t.rt, o["metadata"]["name"], o["metadata"].get("namespace")))
        else:
            raise CliError("resource(s) were provided, but no name was specified")
    return refs


def ref_text(rt: ResourceType, name: str) -> str:
    return f"{qualified_kind(rt)}/{name}"


def run_metadata(session: Session, args: argparse.Namespace) -> int:
    resources = [a for a in args.args if "=" not in a and not a.endswith("-")]
    changes: dict[str, str | None] = {}
    for a in args.args:
        if "=" in a:
            k, _, v = a.partition("=")
            changes[k] = v
        elif a.endswith("-") and a not in resources:
            changes[a[:-1]] = None
    if not changes:
        raise CliError(f"at least one {args.field[:-1]} update is required")
    refs = resolve_refs(session, resources, args.selector, args.all)
    for rt, name, ns in refs:
        current = (session.client.get(rt, name, ns).get("metadata") or {}).get(args.field) or {}
        if not args.overwrite:
            for k, v in changes.items():
                if v is not None and k in current and current[k] != v:
                    raise CliError(
                        f"'{k}' already has a value ({current[k]}), and --overwrite is false"
                    )
        effective = {
            k: v
            for k, v in changes.items()
            if (v is None and k in current) or (v is not None and current.get(k) != v)
        }
        if effective and args.dry_run == "none":
            api.patch(
                session.client,
                rt,
                name,
                ns,
                {"metadata": {args.field: effective}},
                "merge",
                field_manager=f"kubectl-{'label' if args.field == 'labels' else 'annotate'}",
            )
        verb = args.past if effective else f"not {args.past}"
        session.print(f"{ref_text(rt, name)} {verb}")
    return 0


def run_patch(session: Session, args: argparse.Namespace) -> int:
    try:
        body = yaml.safe_load(args.patch)
    except yaml.YAMLError as e:
        raise CliError(f"unable to parse {args.patch!r}: {e}") from None
    if args.type == "json" and not isinstance(body, list):
        raise CliError("unable to parse the patch: a json patch must be a list of operations")
    for rt, name, ns in resolve_refs(session, args.args):
        before = session.client.get(rt, name, ns, subresource=args.subresource)
        if args.dry_run == "client":
            session.print(f"{ref_text(rt, name)} patched (dry run)")
            continue
        ptype = args.type
        if ptype == "strategic" and not _builtin(rt):
            raise CliError(
                f"strategic merge patch is not supported for {rt.kind}; use --type merge"
            )
        after = api.patch(
            session.client,
            rt,
            name,
            ns,
            body,
            ptype,
            dry_run=args.dry_run == "server",
            subresource=args.subresource,
        )
        same = before.get("metadata", {}).get("resourceVersion") == after.get("metadata", {}).get(
            "resourceVersion"
        )
        session.print(f"{ref_text(rt, name)} patched{' (no change)' if same else ''}")
    return 0


def _builtin(rt: ResourceType) -> bool:
    from machinery.patch import supports_strategic

    return supports_strategic(rt.kind, rt.api_version)


def run_scale(session: Session, args: argparse.Namespace) -> int:
    if args.replicas < 0:
        raise CliError(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"
        )
    for rt, name, ns in resolve_refs(session, args.args):
        if "scale" not in rt.subresources:
            raise CliError(f"cannot scale {rt.plural}: no scale subresource")
        if args.current_replicas >= 0:
            cur = session.client.get(rt, name, ns, subresource="scale")
            have = (cur.get("spec") or {}).get("replicas", 0)
            if have != args.current_replicas:
                raise CliError(f"Expected replicas to be {args.current_replicas}, was {have}")
        api.patch(
            session.client,
            rt,
            name,
            ns,
            {"spec": {"replicas": args.replicas}},
            "merge",
            subresource="scale",
            field_manager="kubectl-scale",
        )
        session.print(f"{ref_text(rt, name)} scaled")
    return 0


def pod_spec_path(rt: ResourceType) -> list[str]:
    """Where the pod spec lives in an object of this kind."""
    if rt.kind == "Pod":
        return ["spec"]
    if rt.kind == "CronJob":
        return ["spec", "jobTemplate", "spec", "template", "spec"]
    return ["spec", "template", "spec"]


def _nest(path: list[str], leaf: dict[str, Any]) -> dict[str, Any]:
    for key in reversed(path):
        leaf = {key: leaf}
    return leaf


def run_set_image(session: Session, args: argparse.Namespace) -> int:
    resources = [a for a in args.args if "=" not in a]
    images = dict(a.split("=", 1) for a in args.args if "=" in a)
    if not images:
        raise CliError("at least one image update is required")
    for rt, name, ns in resolve_refs(session, resources):
        obj = session.client.get(rt, name, ns)
        spec: Any = obj
        for key in pod_spec_path(rt):
            spec = (spec or {}).get(key) or {}
        updates = []
        for field in ("initContainers", "containers"):
            for c in spec.get(field) or []:
                new = images.get(c["name"], images.get("*"))
                if new is not None:
                    updates.append((field, {"name": c["name"], "image": new}))
        unknown = [k for k in images if k != "*" and not any(u[1]["name"] == k for u in updates)]
        if unknown:
            raise CliError(f'unable to find container named "{unknown[0]}"')
        leaf: dict[str, Any] = {}
        for field, entry in updates:
            leaf.setdefault(field, []).append(entry)
        api.patch(
            session.client,
            rt,
            name,
            ns,
            _nest(pod_spec_path(rt), leaf),
            "strategic",
            field_manager="kubectl-set",
        )
        session.print(f"{ref_text(rt, name)} image updated")
    return 0


def run_edit(session: Session, args: argparse.Namespace) -> int:
    editor = os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi"
    for rt, name, ns in resolve_refs(session, args.args):
        obj = api.with_type(rt, session.client.get(rt, name, ns))
        text = to_yaml(obj) if args.output == "yaml" else json.dumps(obj, indent=4)
        with tempfile.NamedTemporaryFile(
            "w+", suffix=f".{args.output}", prefix="tug-edit-", delete=False
        ) as f:
            f.write(text)
            path = f.name
        try:
            rc = subprocess.call([*shlex.split(editor), path])
            if rc != 0:
                raise CliError(f'there was a problem with the editor "{editor}"')
            with open(path) as f:
                edited_text = f.read()
        finally:
            os.unlink(path)
        try:
            edited = yaml.safe_load(edited_text)
        except yaml.YAMLError as e:
            raise CliError(f"the edited file is not valid YAML: {e}") from None
        if not edited or edited == obj:
            session.print("Edit cancelled, no changes made.")
            continue
        try:
            session.client.update(rt, edited)
        except errors.ApiError as e:
            raise CliError(f"{ref_text(rt, name)} could not be edited: {e.message}") from None
        session.print(f"{ref_text(rt, name)} edited")
    return 0
