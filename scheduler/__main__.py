"""``tug scheduler --server URL [--kubeconfig F] [--leader-elect] [--metrics-port P]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from typing import Any

from machinery.client import AsyncClient
from scheduler import health
from scheduler.pods import DEFAULT_SCHEDULER_NAME
from scheduler.scheduler import MAX_BINDS_IN_FLIGHT, Scheduler

LEASE_NAME = "kube-scheduler"
LEASE_NAMESPACE = "kube-system"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tug scheduler", description="Run the tugboat scheduler.")
    p.add_argument("--server", help="API server URL (default: from the kubeconfig)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument(
        "--leader-elect",
        action="store_true",
        help=f"campaign for the {LEASE_NAMESPACE}/{LEASE_NAME} Lease before scheduling",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve /healthz and /metrics on 127.0.0.1:PORT (0: off)",
    )
    p.add_argument("--scheduler-name", default=DEFAULT_SCHEDULER_NAME)
    p.add_argument(
        "--percentage-of-nodes-to-score",
        type=int,
        default=0,
        help="0: adaptive, like kube-scheduler",
    )
    p.add_argument(
        "--binds-in-flight",
        type=int,
        default=MAX_BINDS_IN_FLIGHT,
        help="pods/binding POSTs on the wire at once",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def make_client(args: argparse.Namespace) -> AsyncClient:
    if args.server:
        return AsyncClient(args.server)
    return AsyncClient.from_kubeconfig(args.kubeconfig)


async def run(args: argparse.Namespace) -> None:
    client = make_client(args)
    sched = Scheduler(
        client,
        name=args.scheduler_name,
        percentage_of_nodes_to_score=args.percentage_of_nodes_to_score,
        max_binds_in_flight=args.binds_in_flight,
    )
    server = None
    if args.metrics_port:
        server = await health.serve(args.metrics_port, sched.metrics.registry)
    try:
        if args.leader_elect:
            from machinery.leaderelection import LeaderElector

            identity = f"{socket.gethostname()}_{id(sched):x}"
            elector = LeaderElector(client, LEASE_NAME, LEASE_NAMESPACE, identity=identity)
            await elector.run(sched.run)
        else:
            await sched.run()
    finally:
        if server is not None:
            server.close()
        await sched.recorder.aclose()
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        _event_loop_runner()(run(args))
    except KeyboardInterrupt:
        pass
    return 0


def _event_loop_runner() -> Any:
    """``uvloop.run`` when uvloop is installed (it comes with ``uvicorn[standard]``): the
    scheduler spends much of its time in socket I/O and callbacks; ``asyncio.run`` otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


if __name__ == "__main__":
    sys.exit(main())
