"""``tug kubelet``: run a node agent (or K hollow ones).

    tug kubelet --server URL [--kubeconfig F] --node-name N
        --runtime-endpoint unix:///run/containerd/containerd.sock [--port P]
    tug kubelet --server URL --node-name N --runtime fake          # one node, fake runtime
    tug kubelet --server URL --runtime fake --hollow-nodes K      # K hollow nodes

With a real runtime the agent serves logs, exec and stats on ``--port`` (10250); SIGTERM or
SIGINT stops the agent and leaves every container running (a restarted agent re-adopts them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from typing import Any

from machinery.client import AsyncClient
from machinery.events import EventRecorder

from .agent import AgentConfig, NodeAgent
from .cri.client import DEFAULT_ENDPOINT, AsyncRuntimeClient
from .cri.fake import FakeRuntime, FakeServer
from .hollow import HollowNodes

log = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tug kubelet", description="Run a tugboat node agent.")
    p.add_argument("--server", help="API server URL (default: from the kubeconfig)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--node-name", default=socket.gethostname())
    p.add_argument("--node-ip", default="127.0.0.1", help="InternalIP; the server binds it")
    p.add_argument("--runtime-endpoint", default=DEFAULT_ENDPOINT)
    p.add_argument("--runtime", choices=["cri", "fake"], default="cri")
    p.add_argument("--hollow-nodes", type=int, default=0, help="run K hollow nodes (fake)")
    p.add_argument("--hollow-prefix", default="hollow-node-")
    p.add_argument("--port", type=int, default=10250, help="node agent HTTP port (0: none)")
    p.add_argument("--pod-cidr", help="this node's pod CIDR (as configured in the runtime's CNI)")
    p.add_argument("--log-root", default="/var/log/tugboat/pods")
    p.add_argument("--cgroup-root", default="/tugboat")
    p.add_argument("--root-dir", default="/var/lib/tugboat/kubelet", help="pod volumes live here")
    p.add_argument("--cluster-dns", default="10.96.0.10", help="comma-separated; empty: host's")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument(
        "--local-registries",
        default="",
        help="comma-separated HOST[:PORT]s reachable from here: imagePullPolicy Always re-pulls "
        "present images from them (loopback HOST:PORT always counts)",
    )
    p.add_argument("--node-labels", default="", help="k=v,k2=v2")
    p.add_argument("--lease-period", type=float, default=10.0)
    p.add_argument("--status-period", type=float, default=60.0)
    p.add_argument("--pleg-period", type=float, default=1.0)
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def agent_config(args: argparse.Namespace) -> AgentConfig:
    labels = dict(kv.split("=", 1) for kv in args.node_labels.split(",") if "=" in kv)
    return AgentConfig(
        node_name=args.node_name,
        node_ip=args.node_ip,
        port=args.port,
        pod_cidr=args.pod_cidr,
        log_root=args.log_root,
        cgroup_root=args.cgroup_root,
        root_dir=args.root_dir,
        cluster_dns=tuple(x for x in args.cluster_dns.split(",") if x),
        cluster_domain=args.cluster_domain,
        local_registries=tuple(x for x in args.local_registries.split(",") if x),
        labels=labels,
        lease_period=args.lease_period,
        status_period=args.status_period,
        pleg_period=args.pleg_period,
    )


async def run(args: argparse.Namespace) -> None:
    if args.server:
        client = AsyncClient(args.server, user_agent="tug-kubelet")
    else:
        client = AsyncClient.from_kubeconfig(args.kubeconfig, user_agent="tug-kubelet")
    config = agent_config(args)
    closers: list[Any] = []
    try:
        if args.hollow_nodes:
            recorder = EventRecorder(client, "kubelet", "hollow")
            config.pleg_period = max(config.pleg_period, 5.0)
            config.resync = None
            hollow = HollowNodes(
                client,
                args.hollow_nodes,
                prefix=args.hollow_prefix,
                template=config,
                recorder=recorder,
            )
            await hollow.run()
            return
        if args.runtime == "fake":
            server = FakeServer(FakeRuntime(pod_cidr=args.pod_cidr or "10.244.0.0/24"))
            endpoint = await server.start()
            closers.append(server.stop)
        else:
            endpoint = args.runtime_endpoint
        runtime = AsyncRuntimeClient(endpoint)
        closers.append(runtime.close)
        recorder = EventRecorder(client, "kubelet", args.node_name)
        agent = NodeAgent(client, runtime, config, recorder=recorder)
        await agent.start()
        if args.port:
            from .server import serve

            http = await serve(agent, args.node_ip, args.port)
            closers.append(http.stop)
        log.info("node agent %s running (runtime %s)", args.node_name, endpoint)
        try:
            await asyncio.Event().wait()
        finally:
            await agent.stop()
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                await close()
        await client.aclose()


async def _main(args: argparse.Namespace) -> None:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
    with contextlib.suppress(asyncio.CancelledError):
        await run(args)


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
