"""``tug cordon|uncordon|drain`` (drain evicts through ``pods/eviction``) and ``tug wait``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from cli import api
from cli.config import Session
from cli.errors import CliError
from cli.verbs.modify import ref_text, resolve_refs
from machinery import errors, kinds


def register(sub: Any) -> None:
    for verb in ("cordon", "uncordon"):
        p = sub.add_parser(
            verb, help=f"mark a node as {'un' if verb == 'cordon' else ''}schedulable"
        )
        p.add_argument("nodes", nargs="*")
        p.add_argument("-l", "--selector")
        p.set_defaults(func=run_cordon, unschedulable=verb == "cordon")
    p = sub.add_parser("drain", help="cordon a node and evict its pods")
    p.add_argument("nodes", nargs="+")
    p.add_argument("--ignore-daemonsets", action="store_true")
    p.add_argument("--delete-emptydir-data", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--grace-period", type=int, default=-1)
    p.add_argument("--timeout", default="0")
    p.add_argument("--disable-eviction", action="store_true")
    p.set_defaults(func=run_drain)
    p = sub.add_parser("wait", help="wait for a condition on resources")
    p.add_argument("args", nargs="+")
    p.add_argument("--for", dest="for_", required=True)
    p.add_argument("--timeout", default="30s")
    p.add_argument("-l", "--selector")
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=run_wait)


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except (ValueError, KeyError):
        raise CliError(f'invalid argument "{text}" for "--timeout" flag') from None


def _nodes(session: Session, names: list[str], selector: str | None) -> list[str]:
    if names:
        return names
    if not selector:
        raise CliError("resource(s) were provided, but no name was specified")
    return [
        o["metadata"]["name"]
        for o in api.list_objects(
            session.client, kinds.lookup("nodes"), None, label_selector=selector
        )
    ]


def cordon(session: Session, name: str, unschedulable: bool) -> None:
    rt = kinds.lookup("nodes")
    node = session.client.get(rt, name)
    verb = "cordoned" if unschedulable else "uncordoned"
    if bool((node.get("spec") or {}).get("unschedulable")) == unschedulable:
        session.print(f"node/{name} already {verb}")
        return
    api.patch(
        session.client,
        rt,
        name,
        None,
        {"spec": {"unschedulable": True if unschedulable else None}},
        "strategic",
        field_manager="kubectl-cordon",
    )
    session.print(f"node/{name} {verb}")


def run_cordon(session: Session, args: argparse.Namespace) -> int:
    for name in _nodes(session, args.nodes, args.selector):
        cordon(session, name, args.unschedulable)
    return 0


def run_drain(session: Session, args: argparse.Namespace) -> int:
    pods_rt = kinds.lookup("pods")
    timeout = _seconds(args.timeout)
    for name in args.nodes:
        cordon(session, name, True)
        pods = api.list_objects(
            session.client, pods_rt, None, field_selector=f"spec.nodeName={name}"
        )
        evict, problems = [], []
        for pod in pods:
            owners = pod["metadata"].get("ownerReferences") or []
            if any(o.get("kind") == "DaemonSet" and o.get("controller") for o in owners):
                if not args.ignore_daemonsets:
                    problems.append(
                        f"cannot delete DaemonSet-managed Pods (use "
                        f"--ignore-daemonsets to ignore): "
                        f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
                    )
                continue
            if not any(o.get("controller") for o in owners) and not args.force:
                problems.append(
                    "cannot delete Pods that declare no controller (use --force to "
                    f"override): {pod['metadata']['namespace']}/"
                    f"{pod['metadata']['name']}"
                )
                continue
            evict.append(pod)
        if problems:
            raise CliError(
                'unable to drain node "'
                + name
                + '" due to error: '
                + "; ".join(problems)
                + ", continuing command..."
            )
        for pod in evict:
            meta = pod["metadata"]
            body: dict[str, Any] = {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            }
            if args.grace_period >= 0:
                body["deleteOptions"] = {"gracePeriodSeconds": args.grace_period}
            if args.disable_eviction:
                session.client.delete(
                    pods_rt,
                    meta["name"],
                    meta["namespace"],
                    grace_period_seconds=None if args.grace_period < 0 else args.grace_period,
                )
            else:
                session.client.create(
                    pods_rt, body, meta["namespace"], subresource="eviction", name=meta["name"]
                )
            session.print(f"evicting pod {meta['namespace']}/{meta['name']}")
        for pod in evict:
            meta = pod["metadata"]
            if not api.wait_deleted(
                session.client, pods_rt, meta["name"], meta["namespace"], meta.get("uid"), timeout
            ):
                raise CliError(f"drain did not complete within {args.timeout}")
            session.print(f"pod/{meta['name']} evicted")
        session.print(f"node/{name} drained")
    return 0


def _condition_met(obj: dict[str, Any], spec: str) -> bool:
    name, _, want = spec.partition("=")
    want = want or "True"
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type", "").lower() == name.lower():
            return str(c.get("status", "")).lower() == want.lower()
    return False


def run_wait(session: Session, args: argparse.Namespace) -> int:
    spec = args.for_
    if spec != "delete" and not spec.startswith(("condition=", "jsonpath=")):
        raise CliError(f"unrecognized condition: {spec!r}")
    timeout = _seconds(args.timeout)
    deadline = time.monotonic() + timeout
    refs = resolve_refs(session, args.args, args.selector, args.all)
    if not refs:
        raise CliError("no matching resources found")
    for rt, name, ns in refs:
        ref = ref_text(rt, name)
        if spec == "delete":
            if not api.wait_deleted(
                session.client, rt, name, ns, None, max(deadline - time.monotonic(), 0.001)
            ):
                raise CliError(f"timed out waiting for the condition on {rt.plural}/{name}")
            session.print(f"{ref} condition met")
            continue
        delay = 0.05
        while True:
            try:
                obj = session.client.get(rt, name, ns)
            except errors.NotFound:
                raise CliError(f'{rt.plural} "{name}" not found') from None
            if _met(obj, spec):
                session.print(f"{ref} condition met")
                break
            if time.monotonic() >= deadline:
                raise CliError(f"timed out waiting for the condition on {rt.plural}/{name}")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    return 0


def _met(obj: dict[str, Any], spec: str) -> bool:
    if spec.startswith("condition="):
        return _condition_met(obj, spec.removeprefix("condition="))
    from machinery.printers import jsonpath_values

    expr, _, want = spec.removeprefix("jsonpath=").partition("=")
    expr = expr.strip("'\"")
    values = jsonpath_values(obj, expr if expr.startswith(("{", ".")) else "." + expr)
    if not want:
        return bool(values)
    return any(str(v).lower() == want.lower() for v in values)
