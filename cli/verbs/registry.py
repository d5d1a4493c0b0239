"""``tug registry up|down|status``: a private registry on 127.0.0.1 (see
:mod:`kubelet.images.registry`). Its files live in ``--data-dir`` (default
``<TUG_DATA_DIR or ~/.tugboat>/registry``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from cli.config import Session
from cli.errors import CliError


def register(sub: Any) -> None:
    p = sub.add_parser("registry", help="run a private image registry on 127.0.0.1")
    verbs = p.add_subparsers(dest="registry_verb", metavar="VERB", parser_class=type(p))
    default = str(Path(os.environ.get("TUG_DATA_DIR", "~/.tugboat")) / "registry")
    up = verbs.add_parser("up", help="start the registry")
    up.add_argument("--port", type=int, default=5000)
    down = verbs.add_parser("down", help="stop the registry (its data stays)")
    st = verbs.add_parser("status", help="is it running, and what does it hold")
    for q, func in ((up, run_up), (down, run_down), (st, run_status)):
        q.add_argument("--data-dir", default=default)
        q.set_defaults(func=func)
    p.set_defaults(func=lambda _s, _a: (_ for _ in ()).throw(CliError("tug registry: name a verb")))


def run_up(session: Session, args: argparse.Namespace) -> int:
    from kubelet.images.registry import RegistryError, start

    try:
        info = start(Path(args.data_dir), args.port)
    except RegistryError as e:
        raise CliError(str(e)) from None
    session.print(f"registry running at {info.address} (pid {info.pid}, data {info.dir})")
    return 0


def run_down(session: Session, args: argparse.Namespace) -> int:
    from kubelet.images.registry import stop

    session.print("registry stopped" if stop(Path(args.data_dir)) else "registry not running")
    return 0


def run_status(session: Session, args: argparse.Namespace) -> int:
    from kubelet.images.registry import catalog, ping, status

    info = status(Path(args.data_dir).expanduser().resolve())
    if info is None:
        session.print("registry not running")
        return 1
    why = ping(info.address)
    repos = catalog(info.address) if why is None else []
    session.print(f"registry running at {info.address} (pid {info.pid}): {why or 'healthy'}")
    for repo in repos:
        session.print(f"  {repo}")
    return 0
