"""``tug rollout status|history|undo|pause|resume|restart`` for Deployments, with kubectl's
semantics (COMPAT.md section 6): the client decides, the controller keeps the fields."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from cli import api
from cli.config import Session
from cli.errors import CliError
from cli.verbs.modify import ref_text, resolve_refs
from machinery import errors, kinds
from machinery.printers import format_label_selector

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
Obj = dict[str, Any]


def register(sub: Any) -> None:
    r = sub.add_parser("rollout", help="manage the rollout of a deployment")
    rs = r.add_subparsers(dest="action", metavar="ACTION", parser_class=type(r))
    p = rs.add_parser("status")
    p.add_argument("args", nargs="+")
    p.add_argument("-w", "--watch", default="true")
    p.add_argument("--timeout", default="0")
    p.add_argument("--revision", type=int, default=0)
    p.set_defaults(func=run_status)
    p = rs.add_parser("history")
    p.add_argument("args", nargs="+")
    p.add_argument("--revision", type=int, default=0)
    p.set_defaults(func=run_history)
    p = rs.add_parser("undo")
    p.add_argument("args", nargs="+")
    p.add_argument("--to-revision", type=int, default=0)
    p.set_defaults(func=run_undo)
    for action, func in (("pause", run_pause), ("resume", run_resume), ("restart", run_restart)):
        p = rs.add_parser(action)
        p.add_argument("args", nargs="+")
        p.set_defaults(func=func)


def _deployments(session: Session, args: argparse.Namespace) -> list[tuple[Any, str, str | None]]:
    refs = resolve_refs(session, args.args)
    for rt, _, _ in refs:
        if rt.kind != "Deployment":
            raise CliError(f"no rollout support for {rt.kind} (only deployments)")
    return refs


def status_message(dep: Obj) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: (message, done). Raises CliError on a deadline."""
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    name = meta.get("name")
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return "Waiting for deployment spec update to be observed...", False
    for c in status.get("conditions") or []:
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            raise CliError(f'deployment "{name}" exceeded its progress deadline')
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < want:
        return (
            f'Waiting for deployment "{name}" rollout to finish: {updated} out of {want} new '
            "replicas have been updated..."
        ), False
    if total > updated:
        return (
            f'Waiting for deployment "{name}" rollout to finish: {total - updated} old '
            "replicas are pending termination..."
        ), False
    if available < updated:
        return (
            f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} '
            "updated replicas are available..."
        ), False
    return f'deployment "{name}" successfully rolled out', True


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text)
    except (ValueError, KeyError):
        raise CliError(f'invalid argument "{text}" for "--timeout" flag') from None


def run_status(session: Session, args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn

    timeout = _seconds(args.timeout)
    deadline = time.monotonic() + timeout if timeout > 0 else None
    for rt, name, ns in _deployments(session, args):
        dep = session.client.get(rt, name, ns)
        msg, done = status_message(dep)
        if done or args.watch == "false":
            session.print(msg)
            continue
        console = progress_console(session)
        last = ""
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} updated, {task.fields[ready]} ready"),
            console=console or _null_console(),
            transient=True,
            disable=console is None,
        ) as bar:
            task = bar.add_task(name, total=1, ready=0)
            _show(bar, task, dep)
            rv = dep["metadata"].get("resourceVersion")
            while not done:
                if msg != last:
                    session.print(msg)
                    last = msg
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise CliError("timed out waiting for the condition")
                try:
                    for etype, obj in session.client.watch(
                        rt,
                        ns,
                        resource_version=rv,
                        field_selector=f"metadata.name={name}",
                        timeout_seconds=int(remaining or 300) or 1,
                        allow_bookmarks=False,
                    ):
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if etype == "DELETED":
                            raise CliError(f'deployment "{name}" was deleted')
                        dep = obj
                        _show(bar, task, dep)
                        msg, done = status_message(dep)
                        if done:
                            break
                        if msg != last:
                            session.print(msg)
                            last = msg
                except errors.Gone:
                    dep = session.client.get(rt, name, ns)
                    rv = dep["metadata"].get("resourceVersion")
                    msg, done = status_message(dep)
        session.print(msg)
    return 0


def progress_console(session: Session) -> Any:
    """A rich Console on the session's stderr when that is a terminal, else None (no bar)."""
    if not (hasattr(session.err, "isatty") and session.err.isatty()):
        return None
    from rich.console import Console

    return Console(file=session.err)


def _show(bar: Any, task: Any, dep: Obj) -> None:
    """Redraw the bar with the Deployment's updated and ready replicas (out of spec.replicas)."""
    status = dep.get("status") or {}
    bar.update(
        task,
        completed=status.get("updatedReplicas", 0),
        total=max(1, (dep.get("spec") or {}).get("replicas", 1)),
        ready=status.get("readyReplicas", 0),
    )
    bar.refresh()


def _null_console() -> Any:
    import io

    from rich.console import Console

    return Console(file=io.StringIO())


def owned_replica_sets(session: Session, dep: Obj) -> list[Obj]:
    """Replica sets whose controller reference is this Deployment (by uid), by revision."""
    rt = kinds.lookup("replicasets")
    sel = format_label_selector((dep.get("spec") or {}).get("selector"))
    uid = dep["metadata"].get("uid")
    rss = api.list_objects(session.client, rt, dep["metadata"].get("namespace"), label_selector=sel)
    out = [
        rs
        for rs in rss
        if any(
            r.get("uid") == uid and r.get("controller")
            for r in rs["metadata"].get("ownerReferences") or []
        )
    ]
    return sorted(out, key=_revision)


def _revision(obj: Obj) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def run_history(session: Session, args: argparse.Namespace) -> int:
    for rt, name, ns in _deployments(session, args):
        dep = session.client.get(rt, name, ns)
        rss = owned_replica_sets(session, dep)
        if args.revision:
            match = [rs for rs in rss if _revision(rs) == args.revision]
            if not match:
                raise CliError(f"unable to find the specified revision {args.revision}")
            from cli.output import to_yaml

            session.print(f"{ref_text(rt, name)} with revision #{args.revision}")
            session.out.write(to_yaml(_template_for_undo(match[0])))
            continue
        session.print(f"{ref_text(rt, name)} ")
        lines = [["REVISION", "CHANGE-CAUSE"]]
        for rs in rss:
            cause = (rs["metadata"].get("annotations") or {}).get(CHANGE_CAUSE, "<none>")
            lines.append([str(_revision(rs)), cause])
        width = max(len(cells[0]) for cells in lines) + 2  # kubectl's tabwriter: padding 2
        session.out.write("".join(f"{r.ljust(width)}{c}\n" for r, c in lines) + "\n")
    return 0


def _template_for_undo(rs: Obj) -> Obj:
    template = dict((rs.get("spec") or {}).get("template") or {})
    meta = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != "pod-template-hash"}
    meta["labels"] = labels
    template["metadata"] = meta
    return template


def run_undo(session: Session, args: argparse.Namespace) -> int:
    for rt, name, ns in _deployments(session, args):
        dep = session.client.get(rt, name, ns)
        if (dep.get("spec") or {}).get("paused"):
            raise CliError(
                f"you cannot rollback a paused deployment; resume it first with "
                f"'tug rollout resume {ref_text(rt, name)}' and try again"
            )
        rss = owned_replica_sets(session, dep)
        current = _revision(dep)
        if args.to_revision:
            match = [rs for rs in rss if _revision(rs) == args.to_revision]
            if not match:
                raise CliError(f"unable to find specified revision {args.to_revision} in history")
        else:
            match = [rs for rs in rss if _revision(rs) != current and _revision(rs) > 0][-1:]
            if not match:
                raise CliError("no rollout history found for deployment " + repr(name))
        target = match[0]
        if _revision(target) == current:
            session.print(
                f"{ref_text(rt, name)} skipped rollback (current template already "
                "matches revision " + str(current) + ")"
            )
            continue
        annotations = {k: v for k, v in (dep["metadata"].get("annotations") or {}).items()}
        for k, v in (target["metadata"].get("annotations") or {}).items():
            if k == CHANGE_CAUSE:
                annotations[k] = v
        ops = [
            {"op": "replace", "path": "/spec/template", "value": _template_for_undo(target)},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]
        api.patch(session.client, rt, name, ns, ops, "json", field_manager="kubectl-rollout")
        session.print(f"{ref_text(rt, name)} rolled back")
    return 0


def _patch_each(
    session: Session, args: argparse.Namespace, body: Obj, past: str, noop: Any = None
) -> int:
    for rt, name, ns in _deployments(session, args):
        if noop is not None:
            dep = session.client.get(rt, name, ns)
            if noop(dep):
                raise CliError(
                    f"{ref_text(rt, name)} is already {'paused' if past == 'paused' else 'resumed'}"
                )
        api.patch(session.client, rt, name, ns, body, "strategic", field_manager="kubectl-rollout")
        session.print(f"{ref_text(rt, name)} {past}")
    return 0


def run_pause(session: Session, args: argparse.Namespace) -> int:
    return _patch_each(
        session,
        args,
        {"spec": {"paused": True}},
        "paused",
        noop=lambda d: bool((d.get("spec") or {}).get("paused")),
    )


def run_resume(session: Session, args: argparse.Namespace) -> int:
    return _patch_each(
        session,
        args,
        {"spec": {"paused": None}},
        "resumed",
        noop=lambda d: not (d.get("spec") or {}).get("paused"),
    )


def run_restart(session: Session, args: argparse.Namespace) -> int:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}
        }
    }
    return _patch_each(session, args, body, "restarted")
