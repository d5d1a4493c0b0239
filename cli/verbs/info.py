"""``tug version|cluster-info|api-resources|explain`` and ``tug config view|get-contexts|
use-context|current-context``."""

from __future__ import annotations

import argparse
import copy
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from cli.config import Session, read_raw, write_raw
from cli.errors import CliError
from cli.output import OutputFormat, pad_columns, to_json, to_yaml
from machinery import errors


def register(sub: Any) -> None:
    p = sub.add_parser("version", help="print the client and server versions")
    p.add_argument("--client", action="store_true")
    p.add_argument("-o", "--output")
    p.set_defaults(func=run_version)
    p = sub.add_parser("cluster-info", help="display the control plane address")
    p.set_defaults(func=run_cluster_info)
    p = sub.add_parser("api-resources", help="list the server's resource types")
    p.add_argument("--namespaced", default=None)
    p.add_argument("--api-group")
    p.add_argument("-o", "--output")
    p.add_argument("--no-headers", action="store_true")
    p.set_defaults(func=run_api_resources)
    p = sub.add_parser("explain", help="describe the fields of a resource")
    p.add_argument("path")
    p.add_argument("--recursive", action="store_true")
    p.set_defaults(func=run_explain)

    c = sub.add_parser("config", help="view and change kubeconfig files")
    cs = c.add_subparsers(dest="action", metavar="ACTION", parser_class=type(c))
    v = cs.add_parser("view")
    v.add_argument("--minify", action="store_true")
    v.add_argument("--raw", action="store_true")
    v.add_argument("-o", "--output", default="yaml")
    v.set_defaults(func=run_config_view)
    g = cs.add_parser("get-contexts")
    g.add_argument("name", nargs="?")
    g.add_argument("-o", "--output")
    g.set_defaults(func=run_get_contexts)
    u = cs.add_parser("use-context")
    u.add_argument("name")
    u.set_defaults(func=run_use_context)
    cc = cs.add_parser("current-context")
    cc.set_defaults(func=run_current_context)


def client_version() -> str:
    try:
        return "v" + version("tugboat")
    except PackageNotFoundError:
        return "v0.0.0"


def run_version(session: Session, args: argparse.Namespace) -> int:
    info: dict[str, Any] = {"clientVersion": {"gitVersion": client_version()}}
    if not args.client:
        info["serverVersion"] = session.client.request("GET", "/version").json()
    if args.output in ("json", "yaml"):
        session.out.write(to_json(info) if args.output == "json" else to_yaml(info))
        return 0
    session.print(f"Client Version: {info['clientVersion']['gitVersion']}")
    if "serverVersion" in info:
        session.print(f"Server Version: {info['serverVersion'].get('gitVersion')}")
    return 0


def run_cluster_info(session: Session, args: argparse.Namespace) -> int:
    session.client.request("GET", "/version")  # reachable?
    session.print(f"Kubernetes control plane is running at {session.server}")
    try:
        from machinery.kinds import lookup

        session.client.get(lookup("services"), "kube-dns", "kube-system")
        session.print(
            f"CoreDNS is running at {session.server}/api/v1/namespaces/kube-system/"
            "services/kube-dns:dns/proxy"
        )
    except errors.ApiError:
        pass
    session.print("\nTo further debug and diagnose cluster problems, use 'tug cluster-info dump'.")
    return 0


def run_api_resources(session: Session, args: argparse.Namespace) -> int:
    rows = []
    for rt in session.resources.types:
        if args.api_group is not None and rt.group != args.api_group:
            continue
        if args.namespaced is not None and rt.namespaced != (args.namespaced == "true"):
            continue
        rows.append(rt)
    seen: set[tuple[str, str]] = set()
    unique = []
    for rt in rows:  # one (preferred) version per resource, as kubectl lists them
        if (rt.group, rt.plural) not in seen:
            seen.add((rt.group, rt.plural))
            unique.append(rt)
    unique.sort(key=lambda r: (r.group, r.plural))
    if args.output == "name":
        for rt in unique:
            session.print(rt.plural + (f".{rt.group}" if rt.group else ""))
        return 0
    wide = args.output == "wide"
    header = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"] + (
        ["VERBS", "CATEGORIES"] if wide else []
    )
    lines = [] if args.no_headers else [header]
    for rt in unique:
        line = [
            rt.plural,
            ",".join(rt.short_names),
            rt.api_version,
            "true" if rt.namespaced else "false",
            rt.kind,
        ]
        if wide:
            line += ["[" + " ".join(sorted(rt.verbs)) + "]", ",".join(rt.categories)]
        lines.append(line)
    session.out.write(pad_columns(lines))
    return 0


# ------------------------------------------------------------------------------ explain


def _schema_doc(session: Session, rt: Any) -> dict[str, Any]:
    index = session.client.request("GET", "/openapi/v3").json()
    key = f"api/{rt.version}" if not rt.group else f"apis/{rt.group}/{rt.version}"
    entry = (index.get("paths") or {}).get(key)
    if not entry:
        raise CliError(f"couldn't find the OpenAPI document for {rt.api_version}")
    return session.client.request("GET", entry["serverRelativeURL"]).json()


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while seen < 20:
        seen += 1
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = {
                **((doc.get("components") or {}).get("schemas") or {}).get(name, {}),
                **{k: v for k, v in schema.items() if k != "$ref"},
            }
        elif schema.get("allOf") and len(schema["allOf"]) == 1:
            schema = {**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}}
        else:
            return schema
    return schema


def _type_name(schema: dict[str, Any]) -> str:
    t = schema.get("type")
    if t == "array":
        return f"[]{_type_name(schema.get('items') or {})}"
    if t == "object" and schema.get("additionalProperties"):
        return f"map[string]{_type_name(schema['additionalProperties'])}"
    if "$ref" in schema:
        return "Object"
    return {"object": "Object", None: "Object"}.get(t, t)


def run_explain(session: Session, args: argparse.Namespace) -> int:
    kind, *fields = args.path.split(".")
    rt = session.resources.resolve(kind)
    doc = _schema_doc(session, rt)
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    schemas = (doc.get("components") or {}).get("schemas") or {}
    root = next(
        (s for s in schemas.values() if gvk in (s.get("x-kubernetes-group-version-kind") or [])),
        None,
    )
    if root is None:
        raise CliError(f'couldn\'t find resource for "{rt.api_version}, Kind={rt.kind}"')
    schema = _resolve(doc, root)
    for f in fields:
        if schema.get("type") == "array":
            schema = _resolve(doc, schema.get("items") or {})
        props = schema.get("properties") or {}
        if f not in props:
            raise CliError(f'field "{f}" does not exist')
        schema = _resolve(doc, props[f])
    if schema.get("type") == "array":
        schema = {**_resolve(doc, schema.get("items") or {}), "type": "array"}
    session.print(f"GROUP:      {rt.group}" if rt.group else f"KIND:       {rt.kind}")
    if rt.group:
        session.print(f"KIND:       {rt.kind}")
    session.print(f"VERSION:    {rt.version}\n")
    if fields:
        session.print(f"FIELD: {fields[-1]} <{_type_name(schema)}>\n")
    session.print("DESCRIPTION:")
    session.print("    " + (schema.get("description") or "<empty>").replace("\n", "\n    "))
    props = schema.get("properties") or {}
    if props:
        session.print("\nFIELDS:")
        required = set(schema.get("required") or [])
        for name, sub in props.items():
            sub_r = _resolve(doc, sub)
            req = " -required-" if name in required else ""
            session.print(f"  {name}\t<{_type_name(sub if '$ref' not in sub else sub_r)}>{req}")
            desc = (sub_r.get("description") or sub.get("description") or "").strip()
            if desc:
                session.print("    " + desc.splitlines()[0])
            session.print()
    return 0


# ------------------------------------------------------------------------------ config


def run_config_view(session: Session, args: argparse.Namespace) -> int:
    doc = copy.deepcopy(session.kubeconfig_doc())
    doc.setdefault("apiVersion", "v1")
    doc.setdefault("kind", "Config")
    if args.minify:
        current = session.flags.context or doc.get("current-context")
        ctx = next((c for c in doc.get("contexts") or [] if c.get("name") == current), None)
        if ctx is None:
            raise CliError("current-context must exist in order to minify")
        cluster, user = ctx["context"].get("cluster"), ctx["context"].get("user")
        doc["contexts"] = [ctx]
        doc["clusters"] = [c for c in doc.get("clusters") or [] if c.get("name") == cluster]
        doc["users"] = [u for u in doc.get("users") or [] if u.get("name") == user]
        doc["current-context"] = current
    if not args.raw:
        for entry in doc.get("users") or []:
            for key in ("token", "client-certificate-data", "client-key-data", "password"):
                if key in (entry.get("user") or {}):
                    entry["user"][key] = "REDACTED" if key == "token" else "DATA+OMITTED"
        for entry in doc.get("clusters") or []:
            if "certificate-authority-data" in (entry.get("cluster") or {}):
                entry["cluster"]["certificate-authority-data"] = "DATA+OMITTED"
    fmt = OutputFormat.parse(args.output)
    session.out.write(to_json(doc) if fmt.kind == "json" else to_yaml(doc))
    return 0


def run_get_contexts(session: Session, args: argparse.Namespace) -> int:
    doc = session.kubeconfig_doc()
    current = doc.get("current-context")
    contexts = doc.get("contexts") or []
    if args.name:
        contexts = [c for c in contexts if c.get("name") == args.name]
        if not contexts:
            raise CliError(f"context {args.name} not found")
    if args.output == "name":
        for c in contexts:
            session.print(c.get("name", ""))
        return 0
    lines = [["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]]
    for c in contexts:
        ctx = c.get("context") or {}
        lines.append(
            [
                "*" if c.get("name") == current else "",
                c.get("name", ""),
                ctx.get("cluster", ""),
                ctx.get("user", ""),
                ctx.get("namespace", ""),
            ]
        )
    session.out.write(pad_columns(lines))
    return 0


def run_use_context(session: Session, args: argparse.Namespace) -> int:
    contexts = session.kubeconfig_doc().get("contexts") or []
    if not any(c.get("name") == args.name for c in contexts):
        raise CliError(f'no context exists with the name: "{args.name}"')
    path = session.kubeconfig_path  # with several files, the first that exists (as kubectl)
    doc = read_raw(path)
    doc["current-context"] = args.name
    write_raw(path, doc)
    session.print(f'Switched to context "{args.name}".')
    return 0


def run_current_context(session: Session, args: argparse.Namespace) -> int:
    current = session.kubeconfig_doc().get("current-context")
    if not current:
        raise CliError("current-context is not set")
    session.print(current)
    return 0
