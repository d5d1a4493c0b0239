"""``tug create -f`` and the generators: namespace, deployment, configmap, secret generic;
also ``tug run`` (a Pod) and ``tug expose`` (a Service in front of a workload)."""

from __future__ import annotations

import argparse
import base64
import re
from pathlib import Path
from typing import Any

from cli import api
from cli.config import Session
from cli.errors import CliError
from cli.output import OutputFormat, render_objects
from cli.resources import qualified_kind
from cli.verbs.apply import add_file_flags, create_from_files, dry_run_suffix
from machinery import kinds


def register(sub: Any) -> None:
    p = sub.add_parser("create", help="create a resource from a file or from arguments")
    add_file_flags(p)
    _common(p)
    p.set_defaults(func=lambda s, a: create_from_files(s, a) if a.filename else _usage())
    gen = p.add_subparsers(dest="generator", metavar="KIND", parser_class=type(p))

    g = gen.add_parser("namespace", aliases=["ns"])
    g.add_argument("name")
    _common(g)
    g.set_defaults(func=create_namespace)

    g = gen.add_parser("deployment", aliases=["deploy"])
    g.add_argument("name")
    g.add_argument("--image", action="append", required=True)
    g.add_argument("--replicas", type=int, default=1)
    g.add_argument("--port", type=int)
    _common(g)
    g.set_defaults(func=create_deployment)

    g = gen.add_parser("configmap", aliases=["cm"])
    g.add_argument("name")
    _data_flags(g)
    g.set_defaults(func=create_configmap)

    g = gen.add_parser("secret")
    kinds_ = g.add_subparsers(dest="secret_type", metavar="TYPE", parser_class=type(p))
    gs = kinds_.add_parser("generic")
    gs.add_argument("name")
    gs.add_argument("--type", default="Opaque")
    _data_flags(gs)
    gs.set_defaults(func=create_secret)

    r = sub.add_parser("run", help="run a pod")
    r.add_argument("name")
    r.add_argument("--image", required=True)
    r.add_argument("--port", type=int)
    r.add_argument("--env", action="append", default=[])
    r.add_argument("-l", "--labels")
    r.add_argument("--restart", default="Always", choices=["Always", "OnFailure", "Never"])
    r.add_argument("--command", action="store_true")
    r.add_argument("args", nargs="*", help="arguments (or, with --command, the command) after --")
    _common(r)
    r.set_defaults(func=run_pod)

    e = sub.add_parser("expose", help="expose a workload as a Service")
    e.add_argument("args", nargs="+", metavar="TYPE NAME | TYPE/NAME")
    e.add_argument("--port", required=True)
    e.add_argument("--target-port")
    e.add_argument("--protocol", default="TCP")
    e.add_argument("--type", default="ClusterIP")
    e.add_argument("--name")
    e.add_argument("--selector")
    _common(e)
    e.set_defaults(func=expose)


def _usage() -> int:
    raise CliError(
        "must specify one of -f and -k, or a kind to create (namespace, deployment, "
        "configmap, secret generic)"
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run", nargs="?", const="client", default="none", choices=["none", "client", "server"]
    )
    p.add_argument("-o", "--output")


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-literal", action="append", default=[])
    p.add_argument("--from-file", action="append", default=[])
    p.add_argument("--from-env-file", action="append", default=[])
    _common(p)


def submit(
    session: Session, args: argparse.Namespace, obj: dict[str, Any], verb: str = "created"
) -> int:
    """Create ``obj`` (or only print it with ``--dry-run=client``) and report like kubectl."""
    rt = session.resources.for_kind(obj["apiVersion"], obj["kind"])
    ns = session.namespace if rt.namespaced else None
    if rt.namespaced:
        obj["metadata"].setdefault("namespace", ns)
    dry = getattr(args, "dry_run", "none")
    result = (
        obj
        if dry == "client"
        else session.client.create(
            rt, obj, ns, dry_run=dry == "server", field_manager="kubectl-create"
        )
    )
    ref = f"{qualified_kind(rt)}/{result['metadata']['name']}"
    fmt = OutputFormat.parse(args.output.removeprefix("=") if args.output else None)
    if fmt.kind:
        session.out.write(render_objects(fmt, [api.with_type(rt, result)], [ref], True))
    else:
        session.print(f"{ref} {verb}{dry_run_suffix(dry)}")
    return 0


def create_namespace(session: Session, args: argparse.Namespace) -> int:
    return submit(
        session,
        args,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": args.name},
            "spec": {},
            "status": {},
        },
    )


def container_name(image: str) -> str:
    """kubectl's container name for an image: its last path part, without tag or digest."""
    base = image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
    return re.sub(r"[^a-z0-9-]", "-", base.lower()).strip("-") or "container"


def create_deployment(session: Session, args: argparse.Namespace) -> int:
    labels = {"app": args.name}
    containers: list[dict[str, Any]] = [
        {"name": container_name(img), "image": img, "resources": {}} for img in args.image
    ]
    if args.port is not None:
        containers[0]["ports"] = [{"containerPort": args.port}]
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": args.name, "labels": labels},
        "spec": {
            "replicas": args.replicas,
            "selector": {"matchLabels": labels},
            "strategy": {},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
        "status": {},
    }
    return submit(session, args, obj)


def _kv(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CliError(f"invalid {flag} {text!r}: expected key=value")
    return key, value


def collect_data(args: argparse.Namespace) -> dict[str, bytes]:
    """The key → bytes map of ``--from-literal``, ``--from-file`` and ``--from-env-file``."""
    data: dict[str, bytes] = {}

    def put(key: str, value: bytes) -> None:
        if key in data:
            raise CliError(f'cannot add key "{key}", another key by that name already exists')
        data[key] = value

    for lit in args.from_literal:
        k, v = _kv(lit, "--from-literal")
        put(k, v.encode())
    for spec in args.from_file:
        key, sep, path = spec.partition("=")
        if not sep:
            key, path = "", spec
        p = Path(path)
        if p.is_dir():
            for f in sorted(p.iterdir()):
                if f.is_file():
                    put(f.name, f.read_bytes())
        elif p.is_file():
            put(key or p.name, p.read_bytes())
        else:
            raise CliError(f"error reading {path}: no such file or directory")
    for path in args.from_env_file:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as e:
            raise CliError(f"error reading {path}: {e.strerror}") from None
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#"):
                k, v = _kv(line, "--from-env-file line")
                put(k.strip(), v.encode())
    return data


def create_configmap(session: Session, args: argparse.Namespace) -> int:
    data, binary = {}, {}
    for k, v in collect_data(args).items():
        try:
            data[k] = v.decode()
        except UnicodeDecodeError:
            binary[k] = base64.b64encode(v).decode()
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": args.name}}
    if data:
        obj["data"] = data
    if binary:
        obj["binaryData"] = binary
    return submit(session, args, obj)


def create_secret(session: Session, args: argparse.Namespace) -> int:
    data = {k: base64.b64encode(v).decode() for k, v in collect_data(args).items()}
    obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": args.name},
        "type": args.type,
        "data": data,
    }
    return submit(session, args, obj)


def run_pod(session: Session, args: argparse.Namespace) -> int:
    rest = list(args.args) + list(getattr(args, "after_dashes", []))
    labels = (
        dict(_kv(kv, "--labels") for kv in args.labels.split(","))
        if args.labels
        else {"run": args.name}
    )
    container: dict[str, Any] = {"name": args.name, "image": args.image, "resources": {}}
    if rest:
        container["command" if args.command else "args"] = rest
    if args.port is not None:
        container["ports"] = [{"containerPort": args.port}]
    if args.env:
        container["env"] = [
            dict(zip(("name", "value"), _kv(e, "--env"), strict=True)) for e in args.env
        ]
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": args.name, "labels": labels},
        "spec": {
            "containers": [container],
            "restartPolicy": args.restart,
            "dnsPolicy": "ClusterFirst",
        },
        "status": {},
    }
    return submit(session, args, obj)


def _selector_of(rt: kinds.ResourceType, obj: dict[str, Any]) -> dict[str, str]:
    spec = obj.get("spec") or {}
    if rt.kind == "Pod":
        return dict((obj.get("metadata") or {}).get("labels") or {})
    if rt.kind == "Service":
        return dict(spec.get("selector") or {})
    selector = spec.get("selector") or {}
    if selector.get("matchExpressions"):
        raise CliError("couldn't convert expressions in the selector to a Service selector")
    return dict(selector.get("matchLabels") or selector)


def expose(session: Session, args: argparse.Namespace) -> int:
    if len(args.args) == 1 and "/" in args.args[0]:
        kind, name = args.args[0].split("/", 1)
    elif len(args.args) == 2:
        kind, name = args.args
    else:
        raise CliError("you must provide one resource by argument: TYPE NAME or TYPE/NAME")
    rt = session.resources.resolve(kind)
    obj = session.client.get(rt, name, session.namespace)
    selector = (
        dict(_kv(kv, "--selector") for kv in args.selector.split(","))
        if args.selector
        else _selector_of(rt, obj)
    )
    if not selector:
        raise CliError(
            f"couldn't retrieve selectors via --selector flag or introspection: "
            f"the {rt.kind} {name!r} has none"
        )
    ports = []
    for i, port in enumerate(str(args.port).split(",")):
        entry: dict[str, Any] = {"port": int(port), "protocol": args.protocol}
        target = args.target_port or port
        entry["targetPort"] = int(target) if str(target).isdigit() else target
        if "," in str(args.port):
            entry["name"] = f"port-{i + 1}"
        ports.append(entry)
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": args.name or name,
            "labels": dict((obj.get("metadata") or {}).get("labels") or {}),
        },
        "spec": {"ports": ports, "selector": selector, "type": args.type},
        "status": {},
    }
    return submit(session, args, svc, verb="exposed")
