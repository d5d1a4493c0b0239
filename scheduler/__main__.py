"""``tug scheduler --server URL [--kubeconfig F] [--leader-elect] [--metrics-port P]``.

The ``--leader-elect-*`` timers carry kube-scheduler's names and defaults (15 s, 10 s, 2 s)."""

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
        "--leader-elect-lease-duration",
        type=float,
        default=15,
        help="seconds a standby waits after the last renewal before taking the lease",
    )
    p.add_argument(
        "--leader-elect-renew-deadline",
        type=float,
        default=10,
        help="seconds the leader keeps retrying a renewal before it stops leading",
    )
    p.add_argument(
        "--leader-elect-retry-period",
        type=float,
        default=2,
        help="seconds between two attempts to acquire or renew",
    )
    p.add_argument("--identity", help="leader election identity (default: host_id)")
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
    args = p.parse_args(argv)
    lease, renew, retry = (
        args.leader_elect_lease_duration,
        args.leader_elect_renew_deadline,
        args.leader_elect_retry_period,
    )
    if not lease > renew > retry * 1.2:
        p.error("need --leader-elect-lease-duration > --leader-elect-renew-deadline > 1.2 x retry")
    return args


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

            identity = args.identity or f"{socket.gethostname()}_{id(sched):x}"
            elector = LeaderElector(
                client,
                LEASE_NAME,
                LEASE_NAMESPACE,
                identity=identity,
                lease_duration=args.leader_elect_lease_duration,
                renew_deadline=args.leader_elect_renew_deadline,
                retry_period=args.leader_elect_retry_period,
            )
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
