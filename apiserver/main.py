"""Command line of the API server: ``tug apiserver --port 6443 --data-dir D``."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import os
import socket
import sys

import uvicorn

from apiserver import cache, tolerations
from apiserver.app import create_app
from apiserver.auth import flags as security_flags
from apiserver.limits import LimitConfig, Limits
from apiserver.portforward import WebSocketProtocol
from apiserver.service_alloc import (
    DEFAULT_NODE_PORTS,
    DEFAULT_SERVICE_CIDR,
    IPAllocator,
    parse_port_range,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tug apiserver", description="Run the tugboat API server.")
    p.add_argument("--port", type=int, default=6443)
    p.add_argument("--bind-address", default="127.0.0.1")
    p.add_argument(
        "--advertise-address",
        default=None,
        help="address pods reach this server at: published as an endpoint of the kubernetes "
        "Service, and listened on as well when --bind-address is a loopback address",
    )
    p.add_argument("--data-dir", default=os.path.expanduser("~/.tugboat"))
    p.add_argument(
        "--storage", default=None, help="SQLAlchemy URL (default: sqlite:///DATA_DIR/state.db)"
    )
    p.add_argument(
        "--history", type=int, default=50000, help="revisions kept for watches before 410 Expired"
    )
    p.add_argument(
        "--watch-buffer-size",
        type=int,
        default=cache.WATCHER_BUFFER,
        help="events a watch may have waiting for its client before it is closed as too slow",
    )
    for taint in ("not-ready", "unreachable"):
        p.add_argument(
            f"--default-{taint}-toleration-seconds",
            type=int,
            default=tolerations.DEFAULT_TOLERATION_SECONDS,
            help=f"tolerationSeconds of the toleration for node.kubernetes.io/{taint}:NoExecute "
            "added to every pod that has none",
        )
    p.add_argument(
        "--max-requests-inflight",
        type=int,
        default=400,
        help="reads served at once before 429 (0: no limit; watches are not counted)",
    )
    p.add_argument(
        "--max-mutating-requests-inflight",
        type=int,
        default=200,
        help="writes served at once before 429 (0: no limit)",
    )
    p.add_argument(
        "--max-watches", type=int, default=10000, help="open watches before 429 (0: no limit)"
    )
    p.add_argument(
        "--client-qps",
        type=float,
        default=0.0,
        help="requests a second per client address, a token bucket (0: off)",
    )
    p.add_argument("--client-burst", type=int, default=100, help="token bucket size per client")
    p.add_argument(
        "--service-cluster-ip-range",
        type=_service_cidr,
        default=DEFAULT_SERVICE_CIDR,
        help="CIDR ClusterIPs are allocated from (its first address is the kubernetes Service's)",
    )
    p.add_argument(
        "--service-node-port-range",
        type=_port_range,
        default=DEFAULT_NODE_PORTS,
        help="range node ports are allocated from, e.g. 30000-32767",
    )
    p.add_argument("--log-level", default="warning")
    security_flags.add_flags(p)
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
    cache.WATCHER_BUFFER = args.watch_buffer_size
    tolerations.configure(
        args.default_not_ready_toleration_seconds, args.default_unreachable_toleration_seconds
    )
    sec = security_flags.resolve(
        args, (args.bind_address, args.advertise_address), ws=WebSocketProtocol
    )
    server_url = f"{sec.scheme}://{args.bind_address}:{args.port}"
    try:
        from machinery.kubeconfig import write_kubeconfig

        write_kubeconfig(
            os.path.join(args.data_dir, "kubeconfig"),
            server_url,
            ca_data=sec.ca_data,
            cert_data=sec.admin_cert,
            key_data=sec.admin_key,
        )
    except ImportError:  # pragma: no cover - machinery always ships it
        pass
    advertise = (args.advertise_address, args.port) if args.advertise_address else None
    config = uvicorn.Config(
        Limits(
            create_app(
                storage,
                history=args.history,
                advertise=advertise,
                security=sec.security,
                service_cidr=args.service_cluster_ip_range,
                node_ports=args.service_node_port_range,
            ),
            limits(args),
        ),
        host=args.bind_address,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        # No proxy is configured in front of the server: client addresses are the peers'
        # (uvicorn would otherwise rewrite them from X-Forwarded-For on every request).
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        **({"ws": WebSocketProtocol} | sec.uvicorn),
    )
    uvicorn.Server(config).run(sockets=listen_sockets(args))
    return 0


def _service_cidr(text: str) -> str:
    try:
        IPAllocator(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _port_range(text: str) -> str:
    try:
        parse_port_range(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def listen_sockets(args: argparse.Namespace) -> list[socket.socket]:
    """The bind address, plus the advertise address when the bind address would not let pods
    reach this server (loopback)."""
    hosts = [args.bind_address]
    loopback = ipaddress.ip_address(args.bind_address).is_loopback
    if args.advertise_address and loopback and args.advertise_address != args.bind_address:
        hosts.append(args.advertise_address)
    out = []
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, args.port))
        sock.listen(2048)
        sock.set_inheritable(True)
        out.append(sock)
    return out


def limits(args: argparse.Namespace) -> LimitConfig:
    """The request limits the flags ask for."""
    return LimitConfig(
        max_requests_inflight=args.max_requests_inflight,
        max_mutating_requests_inflight=args.max_mutating_requests_inflight,
        max_watches=args.max_watches,
        client_qps=args.client_qps,
        client_burst=args.client_burst,
    )
