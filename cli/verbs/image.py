"""``tug image build|push|load|ls|rm``: images in the cluster's containerd instances.

The containerd sockets are ``--socket`` (repeatable), else every node of the ``tug up`` cluster
in ``--data-dir`` (``cluster.json``). ``build`` loads the result into each; the build cache
lives in ``<data-dir>/build-cache`` (see :mod:`kubelet.images.build`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from cli.config import Session
from cli.errors import CliError


def register(sub: Any) -> None:
    p = sub.add_parser("image", help="build, push, load, list and remove images")
    verbs = p.add_subparsers(dest="image_verb", metavar="VERB", parser_class=type(p))
    b = verbs.add_parser("build", help="build an image from a Dockerfile")
    b.add_argument("context")
    b.add_argument("-t", "--tag", required=True)
    b.add_argument("-f", "--file", help="the Dockerfile (default CONTEXT/Dockerfile)")
    b.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(func=run_build)
    pu = verbs.add_parser("push", help="push an image to a registry")
    pu.add_argument("source")
    pu.add_argument("dest", nargs="?", help="HOST:PORT/NAME:TAG (default: SOURCE)")
    pu.set_defaults(func=run_push)
    ld = verbs.add_parser("load", help="import OCI archives into containerd")
    ld.add_argument("archives", nargs="+")
    ld.set_defaults(func=run_load)
    ls = verbs.add_parser("ls", help="list images")
    ls.set_defaults(func=run_ls)
    rm = verbs.add_parser("rm", help="remove images")
    rm.add_argument("names", nargs="+")
    rm.set_defaults(func=run_rm)
    for q in (b, pu, ld, ls, rm):
        add_runtime_flags(q)
    p.set_defaults(func=lambda _s, _a: (_ for _ in ()).throw(CliError("tug image: name a verb")))


def add_runtime_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=os.environ.get("TUG_DATA_DIR", "~/.tugboat"),
        help="the tug up cluster's directory (default ~/.tugboat or $TUG_DATA_DIR)",
    )
    p.add_argument("--socket", action="append", default=[], help="containerd socket(s)")


def sockets(args: argparse.Namespace) -> list[str]:
    """``--socket`` values, else the sockets of the cluster's nodes (maybe none)."""
    if args.socket:
        return [s.removeprefix("unix://") for s in args.socket]
    from cli.cluster.common import DataDir

    spec = DataDir.at(args.data_dir).cluster() or {}
    return [n["socket"] for n in spec.get("nodes") or []]


def builder(args: argparse.Namespace, say: Any = None) -> Any:
    from kubelet.images.build import Builder

    cache = Path(args.data_dir).expanduser() / "build-cache"
    return Builder(cache, sockets(args), say)


def _build_args(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        key, eq, value = v.partition("=")
        out[key] = value if eq else os.environ.get(key, "")
    return out


def run_build(session: Session, args: argparse.Namespace) -> int:
    from kubelet.images.build import BuildError

    if not Path(args.context).is_dir():
        raise CliError(f"build context {args.context} is not a directory")
    say = None if args.quiet else session.warn
    b = builder(args, say)
    try:
        result = b.build(
            Path(args.context),
            args.tag,
            Path(args.file) if args.file else None,
            _build_args(args.build_arg),
        )
    except BuildError as e:
        raise CliError(str(e)) from None
    where = f"loaded into {len(b.sockets)} node(s)" if b.sockets else "not loaded (no nodes)"
    session.warn(
        f"built {result.name} in {result.seconds:.2f}s "
        f"({result.cached_steps}/{len(result.steps)} steps cached), {where}"
    )
    session.print(result.digest)
    return 0


def run_push(session: Session, args: argparse.Namespace) -> int:
    from kubelet.images.registry import RegistryError, push

    found = sockets(args)
    try:
        dest = push(
            args.source, args.dest or args.source, builder(args), found[0] if found else None
        )
    except RegistryError as e:
        raise CliError(str(e)) from None
    session.print(f"pushed {dest}")
    return 0


def run_load(session: Session, args: argparse.Namespace) -> int:
    from kubelet.images.oci import read_archive
    from kubelet.images.store import StoreError, load_image

    targets = _require_sockets(args)
    for archive in args.archives:
        try:
            name = read_archive(archive).name
            for s in targets:
                done = load_image(s, archive)
                session.print(f"{name}: {'loaded' if done else 'present'} ({s})")
        except (OSError, KeyError, ValueError) as e:
            raise CliError(f"{archive}: not an OCI archive ({e})") from None
        except StoreError as e:
            raise CliError(str(e)) from None
    return 0


def run_ls(session: Session, args: argparse.Namespace) -> int:
    from kubelet.images.store import StoreError, list_images

    rows: dict[tuple[str, str], list[str]] = {}
    for i, s in enumerate(_require_sockets(args)):
        try:
            for image in list_images(s):
                rows.setdefault((image.name, image.digest), []).append(str(i))
        except StoreError as e:
            raise CliError(str(e)) from None
    width = max((len(n) for n, _ in rows), default=4)
    session.print(f"{'NAME':{width}}  {'DIGEST':19}  NODES")
    for (name, digest), nodes in sorted(rows.items()):
        session.print(f"{name:{width}}  {digest[:19]}  {','.join(nodes)}")
    return 0


def run_rm(session: Session, args: argparse.Namespace) -> int:
    from kubelet.images.build import normalize
    from kubelet.images.store import StoreError, remove_image

    for name in args.names:
        for s in _require_sockets(args):
            try:
                remove_image(s, normalize(name))
            except StoreError as e:
                raise CliError(str(e)) from None
        session.print(f"removed {normalize(name)}")
    return 0


def _require_sockets(args: argparse.Namespace) -> list[str]:
    found = sockets(args)
    if not found:
        raise CliError(
            f"no containerd to talk to: pass --socket, or start a cluster (tug up) in "
            f"{args.data_dir}"
        )
    return found
