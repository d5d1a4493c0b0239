"""``tug delete``: by name, ``TYPE/NAME``, ``-f``, ``-l`` or ``--all``; waits for the objects to
be gone unless ``--wait=false`` (kubectl's default)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from cli import api, manifests
from cli.app import format_api_error
from cli.config import Session
from cli.errors import CliError
from cli.targets import Target, parse_targets
from machinery import errors

CASCADE = {
    "background": "Background",
    "foreground": "Foreground",
    "orphan": "Orphan",
    "true": "Background",
    "false": "Orphan",
}


def _bool(value: str) -> bool:
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise CliError(f'invalid argument "{value}": expected true or false')


def register(sub: Any) -> None:
    p = sub.add_parser("delete", help="delete resources")
    p.add_argument("args", nargs="*")
    p.add_argument("-f", "--filename", action="append", default=[])
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("-l", "--selector")
    p.add_argument("--field-selector")
    p.add_argument("--all", action="store_true")
    p.add_argument("--cascade", default="background", nargs="?", const="background")
    p.add_argument("--grace-period", type=int, default=-1)
    p.add_argument("--now", action="store_true", help="grace period 1")
    p.add_argument("--force", action="store_true")
    p.add_argument("--wait", type=_bool, nargs="?", const=True, default=True)
    p.add_argument("--timeout", default="0", help="how long to wait (0: a week)")
    p.add_argument("--ignore-not-found", action="store_true")
    p.add_argument("-o", "--output", help="name")
    p.add_argument(
        "--dry-run", nargs="?", const="client", default="none", choices=["none", "client", "server"]
    )
    p.set_defaults(func=run)


def _seconds(value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return float(value[:-1]) * units[value[-1]] if value[-1:] in units else float(value)
    except (ValueError, KeyError):
        raise CliError(f'invalid argument "{value}" for "--timeout" flag') from None


def run(session: Session, args: argparse.Namespace) -> int:
    policy = CASCADE.get(args.cascade.lower())
    if policy is None:
        raise CliError(
            f'invalid cascade value ({args.cascade}). Must be "background", '
            '"foreground", or "orphan"'
        )
    grace = grace_period(session, args)
    ns = None if session.flags.all_namespaces else session.namespace
    jobs: list[tuple[Any, str, str | None]] = []  # (rt, name, namespace)
    if args.filename:
        for m in manifests.load(args.filename, args.recursive):
            rt = session.resources.for_kind(m.obj["apiVersion"], m.obj["kind"])
            own = (m.obj.get("metadata") or {}).get("namespace")
            jobs.append(
                (
                    rt,
                    m.obj["metadata"]["name"],
                    (own or session.namespace) if rt.namespaced else None,
                )
            )
    else:
        if not args.args:
            raise CliError("You must provide one or more resources by argument or filename.")
        targets, _ = parse_targets(session.resources, args.args)
        selecting = args.all or args.selector or args.field_selector
        for t in targets:
            jobs += _expand(session, t, ns, args, bool(selecting))
    if not jobs and not args.filename and (args.all or args.selector or args.field_selector):
        session.print("No resources found")
        return 0
    failed = False
    deleted: list[tuple[Any, str, str | None, str | None]] = []
    for rt, name, obj_ns in jobs:
        try:
            if args.dry_run == "client":
                result: dict[str, Any] = {}
            else:
                result = _delete(session, rt, name, obj_ns, policy, grace, args.dry_run == "server")
        except errors.NotFound as e:
            if not args.ignore_not_found:
                session.warn(format_api_error(e))
                failed = True
            continue
        except errors.ApiError as e:
            session.warn(format_api_error(e))
            failed = True
            continue
        kind = rt.kind.lower() + (f".{rt.group}" if rt.group else "")
        if args.output == "name":
            session.print(f"{kind}/{name}")
        else:
            suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
            verb = "force deleted" if args.force and grace == 0 else "deleted"
            session.print(f'{kind} "{name}" {verb}{suffix}')
        uid = (
            (result.get("metadata") or {}).get("uid")
            if result.get("kind") != "Status"
            else ((result.get("details") or {}).get("uid"))
        )
        deleted.append((rt, name, obj_ns, uid))
    if args.wait and args.dry_run == "none":
        timeout = _seconds(args.timeout)
        for rt, name, obj_ns, uid in deleted:
            if not api.wait_deleted(session.client, rt, name, obj_ns, uid, timeout):
                raise CliError(f"timed out waiting for the condition on {rt.plural}/{name}")
    return 1 if failed else 0


def grace_period(session: Session, args: argparse.Namespace) -> int:
    """The gracePeriodSeconds to send (-1: the object's default), as kubectl settles it:
    ``--now`` is 1; ``--grace-period=0`` is 1 unless ``--force``; ``--force`` alone is 0 (with
    kubectl's warning) and refuses a positive grace period."""
    grace = args.grace_period
    if args.now:
        if grace != -1:
            raise CliError("--now and --grace-period cannot be specified together")
        grace = 1
    if grace == 0 and not args.force:
        grace = 1
    if args.force and grace < 0:
        grace = 0
    if args.force and grace > 0:
        raise CliError("--force and --grace-period greater than 0 cannot be specified together")
    if args.force:
        session.warn(
            "Warning: Immediate deletion does not wait for confirmation that the running "
            "resource has been terminated. The resource may continue to run on the cluster "
            "indefinitely."
        )
    return grace


def _expand(
    session: Session, t: Target, ns: str | None, args: argparse.Namespace, selecting: bool
) -> list[tuple[Any, str, str | None]]:
    if t.names:
        if selecting and args.all:
            raise CliError("name cannot be provided when a selector or --all is specified")
        return [(t.rt, n, (ns or session.namespace) if t.rt.namespaced else None) for n in t.names]
    if not selecting:
        raise CliError("resource(s) were provided, but no name was specified")
    objs = api.list_objects(
        session.client, t.rt, ns, label_selector=args.selector, field_selector=args.field_selector
    )
    return [(t.rt, o["metadata"]["name"], o["metadata"].get("namespace")) for o in objs]


def _delete(
    session: Session, rt: Any, name: str, ns: str | None, policy: str, grace: int, dry_run: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": policy,
    }
    if grace >= 0:
        body["gracePeriodSeconds"] = grace
    if dry_run:
        body["dryRun"] = ["All"]
    resp = session.client.request(
        "DELETE",
        rt.path(ns, name),
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    return resp.json() if resp.content else {}
