"""The controller-manager: every controller on shared informers, behind leader election.

``tug controller-manager --server URL [--kubeconfig F] [--workers N] [--leader-elect]
[--concurrent-deployment-syncs N ...]``

Contract: only the holder of the Lease ``kube-system/tug-controller-manager`` runs controllers.
On winning it builds one :class:`~machinery.informer.InformerFactory`, lets every controller
register its informers and handlers, waits for the caches to sync, then runs each controller's
workers (:func:`machinery.controller.run_workers`): as many as its kube-controller-manager flag
says (``--concurrent-deployment-syncs`` ..., :data:`CONCURRENCY_FLAGS`), else ``--workers``.
On losing the lease every worker and informer is stopped and the process campaigns again from
scratch. A standby keeps serving ``/healthz``. ``/metrics`` serves the Prometheus default
registry: work-queue depth, reconcile latency and outcomes, errors (labelled by controller).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controllers.deployment import DeploymentController
from controllers.endpointslice import EndpointSliceController
from controllers.garbagecollector import GarbageCollector
from controllers.hpa import HorizontalPodAutoscalerController
from controllers.localpath import DEFAULT_BASE_DIR, LocalPathProvisioner
from controllers.namespace import NamespaceController
from controllers.nodelifecycle import NodeLifecycleController
from controllers.replicaset import ReplicaSetController
from controllers.resourcequota import ResourceQuotaController
from controllers.rootcacert import RootCACertPublisher
from controllers.serviceaccount import ServiceAccountController
from controllers.storageprotection import StorageProtection
from controllers.volumebinder import VolumeBinder
from machinery import errors
from machinery.client import AsyncClient
from machinery.controller import run_workers
from machinery.events import EventRecorder
from machinery.informer import InformerFactory
from machinery.kinds import lookup
from machinery.kubeconfig import load_kubeconfig
from machinery.leaderelection import LeaderElector

log = logging.getLogger(__name__)

LEASE_NAME = "tug-controller-manager"
LEASE_NAMESPACE = "kube-system"

# name → (factory taking (informer factory, recorder), event source component)
CONTROLLERS: dict[str, tuple[Callable[..., Any], str]] = {
    "replicaset": (ReplicaSetController.from_factory, "replicaset-controller"),
    "deployment": (DeploymentController.from_factory, "deployment-controller"),
    "garbagecollector": (GarbageCollector.from_factory, "garbage-collector-controller"),
    "namespace": (NamespaceController.from_factory, "namespace-controller"),
    "nodelifecycle": (NodeLifecycleController.from_factory, "node-controller"),
    "endpointslice": (EndpointSliceController.from_factory, "endpointslice-controller"),
    "horizontalpodautoscaler": (
        HorizontalPodAutoscalerController.from_factory,
        "horizontal-pod-autoscaler",
    ),
    "localpath": (LocalPathProvisioner.from_factory, "tugboat.io/local-path"),
    "persistentvolume-binder": (VolumeBinder.from_factory, "persistentvolume-controller"),
    "resourcequota": (ResourceQuotaController.from_factory, "resourcequota-controller"),
    "storage-object-protection": (StorageProtection.from_factory, "storage-object-protection"),
    "serviceaccount": (ServiceAccountController.from_factory, "service-account-controller"),
    "root-ca-cert-publisher": (RootCACertPublisher.from_factory, "root-ca-cert-publisher"),
}

# controller name → kube-controller-manager's flag for its worker count (an alias may follow)
CONCURRENCY_FLAGS: dict[str, tuple[str, ...]] = {
    "deployment": ("--concurrent-deployment-syncs",),
    "replicaset": ("--concurrent-replicaset-syncs",),
    "garbagecollector": ("--concurrent-gc-syncs",),
    "namespace": ("--concurrent-namespace-syncs",),
    "endpointslice": (
        "--concurrent-service-endpoint-syncs",
        "--concurrent-endpointslice-syncs",
    ),
    "horizontalpodautoscaler": ("--concurrent-horizontal-pod-autoscaler-syncs",),
    "resourcequota": ("--concurrent-resource-quota-syncs",),
}


def _dest(controller: str) -> str:
    return f"concurrent_{controller.replace('-', '_')}"


def worker_counts(args: argparse.Namespace) -> dict[str, int]:
    """Pure: each controller's worker count from the parsed flags (``--workers`` by default)."""
    counts = {}
    for name in CONTROLLERS:
        given = getattr(args, _dest(name), None) if name in CONCURRENCY_FLAGS else None
        counts[name] = given if given is not None else args.workers
    return counts


class ControllerManager:
    def __init__(
        self,
        client: AsyncClient,
        *,
        workers: int = 5,
        controllers: list[str] | None = None,
        leader_elect: bool = True,
        identity: str | None = None,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
        resync_period: float | None = 300.0,
        options: dict[str, dict[str, Any]] | None = None,
        worker_counts: dict[str, int] | None = None,
    ) -> None:
        self.client = client
        self.workers = workers
        self.worker_counts = worker_counts or {}  # controller name → workers (else ``workers``)
        self.enabled = controllers or list(CONTROLLERS)
        self.leader_elect = leader_elect
        self.identity = identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        self.lease = (lease_duration, renew_deadline, retry_period)
        self.resync_period = resync_period
        self.options = options or {}  # controller name → keyword arguments of its factory
        self.leading = False
        self.synced = False

    async def run(self) -> None:
        """Campaign and lead until cancelled (or just lead, without leader election)."""
        if not self.leader_elect:
            await self.run_controllers()
            return
        await self._ensure_namespace()
        elector = LeaderElector(
            self.client, LEASE_NAME, LEASE_NAMESPACE, self.identity, *self.lease
        )
        while True:
            await elector.run(self.run_controllers)
            log.warning("lost leadership; campaigning again")

    async def run_controllers(self) -> None:
        """Start informers and workers; stop them all when cancelled."""
        self.leading = True
        factory = InformerFactory(self.client, resync_period=self.resync_period)
        recorders = []
        ctls = []
        for name in self.enabled:
            make, component = CONTROLLERS[name]
            recorder = EventRecorder(self.client, component, socket.gethostname())
            recorders.append(recorder)
            ctls.append(make(factory, recorder, **self.options.get(name, {})))
        try:
            await factory.start()
            await factory.wait_synced()
            self.synced = True
            log.info("caches synced; starting %s", ", ".join(c.name for c in ctls))
            async with asyncio.TaskGroup() as tg:
                for ctl in ctls:
                    tg.create_task(
                        run_workers(
                            ctl.queue,
                            ctl.reconcile,
                            self.worker_counts.get(ctl.name, self.workers),
                            name=ctl.name,
                        )
                    )
        finally:
            self.leading = self.synced = False
            for ctl in ctls:
                ctl.queue.shutdown()
                if (aclose := getattr(ctl, "aclose", None)) is not None:
                    await aclose()  # informers a controller started itself
            await factory.stop()
            for recorder in recorders:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(recorder.aclose(), 2)

    async def _ensure_namespace(self) -> None:
        """Create the lease's namespace if missing, waiting for the API server to answer."""
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NAMESPACE}}
        delay = 0.2
        while True:
            try:
                await self.client.create(lookup("namespaces"), ns)
                return
            except (errors.AlreadyExists, errors.Forbidden):
                return
            except (httpx.HTTPError, errors.ApiError) as e:
                log.warning("API server not usable yet (%s); retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


# -- /healthz and /metrics -------------------------------------------------------------------


async def serve_health(manager: ControllerManager, host: str, port: int) -> asyncio.Server:
    """A minimal HTTP/1.0 server for probes and Prometheus scrapes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 10)
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) > 1 else "/"
            if path in ("/healthz", "/livez"):
                code, ctype, body = 200, "text/plain", b"ok"
            elif path == "/readyz":
                ready = manager.synced or not manager.leading
                code, ctype, body = (
                    (200, "text/plain", b"ok")
                    if ready
                    else (503, "text/plain", b"caches not synced")
                )
            elif path == "/metrics":
                code, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest()
            else:
                code, ctype, body = 404, "text/plain", b"not found"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[code]
            writer.write(
                f"HTTP/1.0 {code} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="tug controller-manager", description="Run the tugboat controllers."
    )
    p.add_argument("--server", help="API server URL (default: from the kubeconfig)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument(
        "--workers", type=int, default=5, help="workers per controller without a flag of its own"
    )
    for name, flags in CONCURRENCY_FLAGS.items():
        p.add_argument(
            *flags,
            dest=_dest(name),
            type=int,
            metavar="N",
            help=f"workers of the {name} controller (default: --workers)",
        )
    p.add_argument(
        "--controllers", default=",".join(CONTROLLERS), help="comma-separated controllers to run"
    )
    p.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="campaign for the lease before running (default on)",
    )
    p.add_argument("--leader-elect-lease-duration", type=float, default=15)
    p.add_argument("--leader-elect-renew-deadline", type=float, default=10)
    p.add_argument("--leader-elect-retry-period", type=float, default=2)
    p.add_argument("--identity", help="leader election identity (default: host_uuid)")
    p.add_argument("--bind-address", default="127.0.0.1")
    p.add_argument(
        "--port", type=int, default=10257, help="port for /healthz and /metrics (0: do not serve)"
    )
    p.add_argument(
        "--node-monitor-grace-period",
        type=float,
        default=40.0,
        help="seconds without a node heartbeat before the node is Ready=Unknown",
    )
    p.add_argument(
        "--node-monitor-period", type=float, default=5.0, help="seconds between node checks"
    )
    p.add_argument(
        "--horizontal-pod-autoscaler-sync-period",
        type=float,
        default=15.0,
        help="seconds between two evaluations of an autoscaler",
    )
    p.add_argument(
        "--horizontal-pod-autoscaler-downscale-stabilization",
        type=float,
        default=300.0,
        help="scale-down stabilisation window (seconds) of autoscalers without behavior",
    )
    p.add_argument("--horizontal-pod-autoscaler-tolerance", type=float, default=0.1)
    p.add_argument(
        "--local-path-dir",
        default=DEFAULT_BASE_DIR,
        help="where the local-path provisioner puts PersistentVolume data",
    )
    p.add_argument(
        "--root-ca-file",
        help="CA bundle published as kube-root-ca.crt in every namespace "
        "(default: the CA of the kubeconfig; none over plain HTTP)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def root_ca(args: argparse.Namespace) -> bytes | None:
    """``--root-ca-file``, else the CA the kubeconfig trusts (kube-controller-manager's
    fallback), else None (``--server`` without one: a plain-HTTP API server)."""
    if args.root_ca_file:
        try:
            with open(args.root_ca_file, "rb") as f:
                return f.read()
        except OSError as e:
            raise SystemExit(f"cannot read --root-ca-file: {e}") from None
    if args.server:
        return None
    cfg = load_kubeconfig(args.kubeconfig)
    if cfg.ca_data:
        return cfg.ca_data
    if cfg.ca_file:
        with open(cfg.ca_file, "rb") as f:
            return f.read()
    return None


async def _main(args: argparse.Namespace) -> None:
    if args.server:
        client = AsyncClient(args.server, user_agent="tug-controller-manager")
    else:
        client = AsyncClient.from_kubeconfig(args.kubeconfig, user_agent="tug-controller-manager")
    unknown = set(args.controllers.split(",")) - set(CONTROLLERS)
    if unknown:
        raise SystemExit(f"unknown controllers: {', '.join(sorted(unknown))}")
    manager = ControllerManager(
        client,
        workers=args.workers,
        worker_counts=worker_counts(args),
        controllers=args.controllers.split(","),
        leader_elect=args.leader_elect,
        identity=args.identity,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
        options={
            "nodelifecycle": {
                "grace_period": args.node_monitor_grace_period,
                "monitor_period": args.node_monitor_period,
            },
            "horizontalpodautoscaler": {
                "sync_period": args.horizontal_pod_autoscaler_sync_period,
                "downscale_window": args.horizontal_pod_autoscaler_downscale_stabilization,
                "tolerance": args.horizontal_pod_autoscaler_tolerance,
            },
            "localpath": {"base_dir": args.local_path_dir},
            "root-ca-cert-publisher": {"root_ca": root_ca(args)},
        },
    )
    server = await serve_health(manager, args.bind_address, args.port) if args.port else None
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
    try:
        await manager.run()
    except asyncio.CancelledError:
        log.info("shutting down")
    finally:
        if server is not None:
            server.close()
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
