"""The endpoints of the ``default/kubernetes`` Service: every live API server's address.

Each API server started with an advertise address holds a Lease in ``kube-system`` (label
:data:`LEASE_LABEL`, ``holderIdentity`` = ``IP:PORT``) and renews it every third of its
duration. After each renewal it rewrites the ``kubernetes`` Endpoints and EndpointSlice from the
leases that have not expired, so several API servers on one store agree without talking to each
other, and a server that died drops out within one lease duration (Kubernetes' "lease" endpoint
reconciler, with Lease objects instead of raw storage keys). On a clean stop a server deletes
its lease and rewrites the endpoints without itself.

All servers behind the Service must listen on the same port, as in Kubernetes: leases with
another port are ignored (and logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from apiserver.registry import Registry, WriteOptions
from machinery import errors
from machinery.kinds import lookup

log = logging.getLogger(__name__)

NAMESPACE = "default"
SERVICE = "kubernetes"
PORT_NAME = "https"
LEASE_NAMESPACE = "kube-system"
LEASE_LABEL = "tugboat.io/apiserver-endpoint"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def lease_name(address: str, port: int) -> str:
    """A stable, DNS-safe Lease name for one API server address."""
    return "apiserver-" + hashlib.sha256(f"{address}:{port}".encode()).hexdigest()[:16]


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def live_addresses(leases: list[dict[str, Any]], port: int, now: datetime) -> list[str]:
    """The sorted addresses of unexpired endpoint leases that serve ``port``."""
    out = set()
    for lease in leases:
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        address, _, holder_port = holder.rpartition(":")
        renewed = _parse_time(spec.get("renewTime"))
        if not address or renewed is None:
            continue
        if renewed + timedelta(seconds=spec.get("leaseDurationSeconds") or 0) < now:
            continue
        if holder_port != str(port):
            log.warning("API server %s serves another port than %d: left out", holder, port)
            continue
        out.add(address)
    return sorted(out)


def endpoints_object(addresses: list[str], port: int) -> dict[str, Any]:
    """The legacy ``kubernetes`` Endpoints for ``addresses`` (no subsets when empty)."""
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
    }
    if addresses:
        obj["subsets"] = [
            {
                "addresses": [{"ip": a} for a in addresses],
                "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
            }
        ]
    return obj


def endpoint_slice_object(addresses: list[str], port: int) -> dict[str, Any]:
    """The ``kubernetes`` EndpointSlice for ``addresses``."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": SERVICE,
            "namespace": NAMESPACE,
            "labels": {SERVICE_NAME_LABEL: SERVICE},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
    }


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc3339_micro(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EndpointsReconciler:
    """Keeps this API server's lease fresh and the ``kubernetes`` endpoints current."""

    def __init__(
        self, registry: Registry, address: str, port: int, lease_seconds: int = 15
    ) -> None:
        self.registry = registry
        self.address = address
        self.port = port
        self.lease_seconds = lease_seconds
        self.name = lease_name(address, port)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run the renew-and-reconcile loop in the background."""
        self._task = asyncio.create_task(self._loop(), name="kubernetes-endpoints")

    async def stop(self) -> None:
        """Stop renewing, give up the lease and drop this server from the endpoints."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(errors.ApiError):
            await self.registry.delete(
                lookup("leases"), LEASE_NAMESPACE, self.name, {}, WriteOptions()
            )
        with contextlib.suppress(errors.ApiError):
            await self.reconcile()

    async def _loop(self) -> None:
        while True:
            try:
                await self.renew()
                await self.reconcile()
            except errors.ApiError as err:
                log.warning("kubernetes endpoints: %s", err)
            await asyncio.sleep(self.lease_seconds / 3)

    async def renew(self) -> None:
        """Create or renew this server's lease."""
        rt = lookup("leases")
        now = _rfc3339_micro(_now())
        spec = {
            "holderIdentity": f"{self.address}:{self.port}",
            "leaseDurationSeconds": self.lease_seconds,
            "renewTime": now,
        }
        if self.registry.find(rt, LEASE_NAMESPACE, self.name) is None:
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": LEASE_NAMESPACE,
                    "labels": {LEASE_LABEL: "true"},
                },
                "spec": spec | {"acquireTime": now},
            }
            with contextlib.suppress(errors.AlreadyExists):
                await self.registry.create(rt, LEASE_NAMESPACE, lease, WriteOptions())
                return

        def change(cur: dict[str, Any]) -> dict[str, Any]:
            cur["spec"] = (cur.get("spec") or {}) | spec
            return cur

        await self.registry.mutate(rt, LEASE_NAMESPACE, self.name, change, WriteOptions())

    async def reconcile(self) -> None:
        """Rewrite the Endpoints and EndpointSlice when the live addresses changed."""
        leases = [
            e.obj
            for _, e in self.registry.list(lookup("leases"), LEASE_NAMESPACE)
            if ((e.obj.get("metadata") or {}).get("labels") or {}).get(LEASE_LABEL)
        ]
        addresses = live_addresses(leases, self.port, _now())
        await self._write(lookup("endpoints"), endpoints_object(addresses, self.port))
        await self._write(lookup("endpointslices"), endpoint_slice_object(addresses, self.port))

    async def _write(self, rt: Any, want: dict[str, Any]) -> None:
        cur = self.registry.find(rt, NAMESPACE, SERVICE)
        if cur is None:
            with contextlib.suppress(errors.AlreadyExists):
                await self.registry.create(rt, NAMESPACE, want, WriteOptions())
            return
        content = {k: v for k, v in want.items() if k not in ("apiVersion", "kind", "metadata")}
        if all(cur.obj.get(k) == v for k, v in content.items()) and (
            "subsets" in want or "subsets" not in cur.obj
        ):
            return

        def change(obj: dict[str, Any]) -> dict[str, Any]:
            obj.pop("subsets", None)
            obj.update(content)
            labels = want["metadata"].get("labels")
            if labels:
                obj["metadata"]["labels"] = (obj["metadata"].get("labels") or {}) | labels
            return obj

        await self.registry.mutate(rt, NAMESPACE, SERVICE, change, WriteOptions())
