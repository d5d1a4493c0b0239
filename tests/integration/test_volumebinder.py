"""The PersistentVolume binder and the storage object protection against the real API server
(admission, finalizers, status subresource, resourceVersion preconditions), run by the
controller-manager with several workers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from controllers.manager import ControllerManager
from machinery import errors
from machinery.kinds import lookup

NS, PVCS, PVS, EVENTS, PODS = (
    lookup(n)
    for n in ("namespaces", "persistentvolumeclaims", "persistentvolumes", "events", "pods")
)
_seq = itertools.count()


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(errors.NotFound):
            if result := await check():
                return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def env(api):
    client = api.async_client()
    manager = ControllerManager(
        client,
        workers=4,
        controllers=["persistentvolume-binder", "storage-object-protection"],
        leader_elect=False,
        resync_period=None,
    )
    task = asyncio.create_task(manager.run())

    async def synced() -> bool:
        return manager.synced

    await eventually(synced, "caches to sync")
    ns = f"pvb-{os.getpid()}-{next(_seq)}"
    await client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        yield client, ns
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


def volume(name: str, cls: str) -> dict:
    spec = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": f"/tmp/{name}"},
        "storageClassName": cls,
    }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": spec,
    }


def claim(name: str, ns: str) -> dict:
    """A claim of class ``ns``: volumes other tests leave in the shared API server never fit."""
    spec = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "storageClassName": ns,
    }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


async def test_claims_racing_for_one_volume_then_release(env) -> None:
    client, ns = env
    pv = f"{ns}-pv"
    for name in ("a", "b", "c"):
        await client.create(PVCS, claim(name, ns), ns)
    await client.create(PVS, volume(pv, ns))

    async def phases() -> dict[str, str] | None:
        items = (await client.list(PVCS, ns))["items"]
        got = {c["metadata"]["name"]: c["status"]["phase"] for c in items}
        return got if "Bound" in got.values() else None

    await eventually(phases, "a claim bound")
    await asyncio.sleep(1)  # the losers' retries, after their 409s
    got = await phases()
    assert got is not None
    winners = [n for n, p in got.items() if p == "Bound"]
    assert len(winners) == 1, got
    stored = await client.get(PVS, pv)
    assert stored["spec"]["claimRef"]["name"] == winners[0]
    assert stored["status"]["phase"] == "Bound"

    async def failed_binding() -> bool:
        items = (await client.list(EVENTS, ns))["items"]
        return any(e["reason"] == "FailedBinding" for e in items)

    await eventually(failed_binding, "FailedBinding events")

    await client.delete(PVCS, winners[0], ns)

    async def released() -> bool:
        return (await client.get(PVS, pv))["status"]["phase"] == "Released"

    await eventually(released, "the volume released")
    await client.delete(PVS, pv)


async def test_claim_goes_after_its_pod_and_its_volume_after_release(env) -> None:
    client, ns = env
    pv = f"{ns}-pv"
    await client.create(PVCS, claim("data", ns), ns)
    await client.create(PVS, volume(pv, ns))
    volumes = [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]
    user = {"metadata": {"name": "user"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    user["spec"]["volumes"] = volumes
    await client.create(PODS, user, ns)

    async def bound() -> bool:
        return (await client.get(PVCS, "data", ns))["status"]["phase"] == "Bound"

    await eventually(bound, "the claim bound")
    await client.delete(PVCS, "data", ns)
    kept = await client.get(PVCS, "data", ns)  # the finalizer holds it while the pod exists
    assert kept["metadata"]["deletionTimestamp"]
    assert kept["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]

    await client.delete(PODS, "user", ns, grace_period_seconds=0)

    async def gone(rt, name, namespace=None) -> bool:
        try:
            await client.get(rt, name, namespace)
        except errors.NotFound:
            return True
        return False

    await eventually(lambda: gone(PVCS, "data", ns), "the claim gone after its pod")

    async def released() -> bool:
        return (await client.get(PVS, pv))["status"]["phase"] == "Released"

    await eventually(released, "the volume released")
    await client.delete(PVS, pv)
    await eventually(lambda: gone(PVS, pv), "the released volume gone")
