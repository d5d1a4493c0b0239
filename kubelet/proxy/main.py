"""``tug proxy``: the service proxy of one machine (all node bridges share its network namespace).

    tug proxy --server URL [--mode iptables|compute [--rules-file F]] [--chain-prefix TUG]
              [--cluster-cidr 10.244.0.0/16] [--service-cidr 10.96.0.0/16]
              [--localnet-interface IFACE ...]

``--mode compute`` (hollow nodes, tests) computes and renders the rules without touching the
kernel; ``--rules-file`` writes what it would install to a file (``tug up --runtime fake`` uses
``D/nodes/proxy-rules``). On SIGTERM/SIGINT the iptables mode removes every rule and chain it
installed, the compute mode its rules file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from machinery.client import AsyncClient
from machinery.informer import InformerFactory

from .iptables import IptablesBackend, IptablesConfig
from .proxier import Backend, ComputeOnlyBackend, Proxier

log = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tug proxy", description="Run the service proxy.")
    p.add_argument("--server", help="API server URL (default: from the kubeconfig)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--mode", choices=["iptables", "compute"], default="iptables")
    p.add_argument(
        "--rules-file", help="compute mode: write the rendered rules here after every sync"
    )
    p.add_argument("--chain-prefix", default="TUG", help="prefix of every chain (TUG-SERVICES...)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16")
    p.add_argument("--service-cidr", default="10.96.0.0/16")
    p.add_argument(
        "--localnet-interface",
        action="append",
        default=[],
        help="set route_localnet=1 on this interface (NodePorts on 127.0.0.1); repeatable",
    )
    p.add_argument("--min-sync-period", type=float, default=0.05)
    p.add_argument("--sync-period", type=float, default=30.0)
    p.add_argument("--cleanup", action="store_true", help="remove the rules and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def _backend(args: argparse.Namespace) -> Backend:
    config = IptablesConfig(
        prefix=args.chain_prefix,
        cluster_cidr=args.cluster_cidr or None,
        service_cidr=args.service_cidr or None,
        localnet_interfaces=tuple(args.localnet_interface),
    )
    if args.mode == "compute":
        return ComputeOnlyBackend(config=config, rules_file=args.rules_file)
    if args.rules_file:
        raise SystemExit("--rules-file needs --mode compute")
    if not IptablesBackend.available(config):
        raise SystemExit("iptables-restore not found: install iptables or use --mode compute")
    return IptablesBackend(config)


async def _main(args: argparse.Namespace) -> None:
    backend = _backend(args)
    if args.cleanup:
        await backend.cleanup()
        return
    if args.server:
        client = AsyncClient(args.server, user_agent="tug-proxy")
    else:
        client = AsyncClient.from_kubeconfig(args.kubeconfig, user_agent="tug-proxy")
    proxier = Proxier(
        InformerFactory(client),
        backend,
        min_sync_period=args.min_sync_period,
        sync_period=args.sync_period,
    )
    stop = asyncio.Event()  # signals only set it: a second SIGTERM cannot cut the cleanup short
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(proxier.run())
    try:
        done, _ = await asyncio.wait(
            [task, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED"
        )
        if task in done:
            await task  # it ended on its own: raise its error
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # run() removes the rules on the way out
        log.info("shut down; rules removed")
    finally:
        await proxier.factory.stop()
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
