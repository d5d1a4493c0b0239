"""``tug compose convert|up|down -f docker-compose.yml``: compose files on the cluster.

``convert`` prints the manifests (YAML stream) and the warnings (stderr); ``up`` builds the
services that have ``build`` (``tug image build``, loaded into every node), then applies the
manifests like ``tug apply`` into ``-n`` (default: the context's namespace), warning when the
claims of named volumes have no default StorageClass to bind them; ``down`` deletes what carries
the project label (PersistentVolumeClaims only with ``-v``, as ``docker compose down -v``
removes volumes); pods a Deployment owns are left to the garbage collector (deleting them would
only make their ReplicaSet replace them).
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from cli.compose.convert import PROJECT_LABEL, ComposeError, convert, dns_name, services_of
from cli.compose.load import ComposeFile, load
from cli.config import Session
from cli.errors import CliError
from cli.manifests import Manifest
from cli.resources import qualified_kind
from cli.verbs.image import add_runtime_flags, builder
from machinery import errors
from machinery.volumes import DEFAULT_CLASS

DOWN_KINDS = ("Deployment", "Pod", "Service")


def register(sub: Any) -> None:
    p = sub.add_parser("compose", help="run docker-compose files on the cluster")
    verbs = p.add_subparsers(dest="compose_verb", metavar="VERB", parser_class=type(p))
    for verb, func, text in (
        ("convert", run_convert, "print the manifests a compose file becomes"),
        ("up", run_up, "build, then apply the manifests"),
        ("down", run_down, "delete what up created"),
    ):
        q = verbs.add_parser(verb, help=text)
        q.add_argument("-f", "--file", default="docker-compose.yml")
        q.add_argument("-p", "--project-name")
        if verb == "down":
            q.add_argument("-v", "--volumes", action="store_true", help="delete the PVCs too")
        if verb != "convert":
            add_runtime_flags(q)
        q.set_defaults(func=func)
    p.set_defaults(func=lambda _s, _a: (_ for _ in ()).throw(CliError("tug compose: name a verb")))


def _load(args: argparse.Namespace) -> ComposeFile:
    try:
        return load(args.file, args.project_name)
    except ComposeError as e:
        raise CliError(f"{args.file}: {e}") from None


def _convert(cf: ComposeFile, images: dict[str, str] | None = None) -> Any:
    try:
        return convert(cf.doc, cf.project, images=images, base_dir=str(cf.base_dir.resolve()))
    except ComposeError as e:
        raise CliError(f"{cf.path}: {e}") from None


def run_convert(session: Session, args: argparse.Namespace) -> int:
    cf = _load(args)
    result = _convert(cf)
    for w in [*cf.warnings, *result.warnings]:
        session.warn(f"warning: {w}")
    session.out.write(yaml.safe_dump_all(result.manifests, sort_keys=False))
    return 0


def build_services(session: Session, args: argparse.Namespace, cf: ComposeFile) -> dict[str, str]:
    """Build every service with ``build``; returns service → image reference (tagged with the
    manifest digest, so a changed build rolls the Deployment)."""
    from kubelet.images.build import BuildError

    images: dict[str, str] = {}
    b = None
    for name, svc in services_of(cf.doc).items():
        if "build" not in svc:
            continue
        b = b or builder(args, session.warn)
        spec = svc["build"] if isinstance(svc["build"], dict) else {"context": svc["build"]}
        context = (cf.base_dir / str(spec.get("context", "."))).resolve()
        dockerfile = context / str(spec.get("dockerfile", "Dockerfile"))
        build_args = {str(k): str(v) for k, v in _pairs(spec.get("args")).items()}
        repo = str(svc.get("image") or f"localhost/{cf.project}/{dns_name(name)}")
        repo = repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo
        session.warn(f"building {name} from {context}")
        try:
            first = b.build(context, f"{repo}:build", dockerfile, build_args, load=False)
            ref = f"{repo}:{first.digest.split(':', 1)[1][:12]}"
            result = b.build(context, ref, dockerfile, build_args)
        except BuildError as e:
            raise CliError(f"building {name}: {e}") from None
        images[name] = result.name
    return images


def _pairs(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return dict(str(i).partition("=")[::2] for i in value or [])


def run_up(session: Session, args: argparse.Namespace) -> int:
    from cli.verbs.apply import apply_one

    cf = _load(args)
    images = build_services(session, args, cf)
    result = _convert(cf, images)
    for w in [*cf.warnings, *result.warnings, *_unbindable_claims(session, result.manifests)]:
        session.warn(f"warning: {w}")
    failed = False
    for obj in result.manifests:
        m = Manifest(obj, str(cf.path))
        try:
            verdict, _ = apply_one(session, m, "none")
        except errors.ApiError as e:
            session.warn(f"Error from server ({e.reason}): {obj['kind']} {e.message}")
            failed = True
            continue
        rt = session.resources.for_kind(obj["apiVersion"], obj["kind"])
        session.print(f"{qualified_kind(rt)}/{obj['metadata']['name']} {verdict}")
    return 1 if failed else 0


def _unbindable_claims(session: Session, manifests: list[dict[str, Any]]) -> list[str]:
    """A warning when the claims of named volumes have no default StorageClass to bind them
    (``tug up`` provides ``local-path``; another cluster may not)."""
    claims = [o["metadata"]["name"] for o in manifests if o["kind"] == "PersistentVolumeClaim"]
    if not claims:
        return []
    rt = session.resources.for_kind("storage.k8s.io/v1", "StorageClass")
    try:
        classes = session.client.list_all(rt).get("items") or []
    except errors.ApiError:
        return []  # not allowed to list classes: nothing to say
    if any((c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true" for c in classes):
        return []
    return [
        f"volumes: PersistentVolumeClaims {', '.join(claims)} stay Pending: the cluster has no "
        "default StorageClass to provision them (tug up runs local-path)"
    ]


def _controlled(obj: dict[str, Any]) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return any(r.get("controller") for r in refs)


def run_down(session: Session, args: argparse.Namespace) -> int:
    cf = _load(args)
    kinds = [*DOWN_KINDS, "PersistentVolumeClaim"] if args.volumes else list(DOWN_KINDS)
    versions = {"Deployment": "apps/v1"}
    selector = f"{PROJECT_LABEL}={cf.project}"
    removed = 0
    for kind in kinds:
        rt = session.resources.for_kind(versions.get(kind, "v1"), kind)
        body = session.client.list_all(rt, session.namespace, label_selector=selector)
        for obj in body.get("items") or []:
            name = obj["metadata"]["name"]
            if _controlled(obj):
                continue  # a Deployment's pod: the garbage collector removes it with its owner
            try:
                session.client.delete(rt, name, session.namespace)
            except errors.NotFound:
                continue
            session.print(f"{qualified_kind(rt)}/{name} deleted")
            removed += 1
    if not removed:
        session.print(f"nothing to delete for project {cf.project}")
    return 0
