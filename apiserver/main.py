"""Command line of the API server: ``tug apiserver --port 6443 --data-dir D``."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys

import uvicorn

from apiserver.app import create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tug apiserver", description="Run the tugboat API server.")
    p.add_argument("--port", type=int, default=6443)
    p.add_argument("--bind-address", default="127.0.0.1")
    p.add_argument("--data-dir", default=os.path.expanduser("~/.tugboat"))
    p.add_argument(
        "--storage", default=None, help="SQLAlchemy URL (default: sqlite:///DATA_DIR/state.db)"
    )
    p.add_argument(
        "--history", type=int, default=50000, help="revisions kept for watches before 410 Expired"
    )
    p.add_argument("--log-level", default="warning")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.makedirs(args.data_dir, exist_ok=True)
    storage = args.storage or f"sqlite:///{os.path.join(args.data_dir, 'state.db')}"
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    # The watch cache keeps every object alive, so the default thresholds make the cyclic GC
    # rescan a large, long-lived heap every few hundred allocations; objects are JSON trees
    # without cycles, so collecting less often costs little memory and ~20% CPU per write.
    gc.set_threshold(100_000, 50, 100)
    server_url = f"http://{args.bind_address}:{args.port}"
    try:
        from machinery.kubeconfig import write_kubeconfig

        write_kubeconfig(os.path.join(args.data_dir, "kubeconfig"), server_url)
    except ImportError:  # pragma: no cover - machinery always ships it
        pass
    config = uvicorn.Config(
        create_app(storage, history=args.history),
        host=args.bind_address,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run()
    return 0
