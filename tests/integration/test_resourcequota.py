"""The quota controller in the real controller-manager against the real API server: usage
follows creations and deletions, a ``count/`` kind is watched on first use, and the real
``kubectl describe quota`` shows Used and Hard."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from controllers.manager import ControllerManager
from machinery import errors
from machinery.client import AsyncClient
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess

NS, PODS, QUOTAS, CMS, DEPLOYS, SECRETS = (
    lookup(n)
    for n in ("namespaces", "pods", "resourcequotas", "configmaps", "deployments", "secrets")
)
KUBECTL = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "kubectl"


async def eventually(what: str, check: Callable[[], Awaitable[Any]], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


@pytest.fixture
async def quota_ns(api: ApiServerProcess) -> AsyncIterator[tuple[AsyncClient, str]]:
    client = api.async_client()
    manager = ControllerManager(
        client, controllers=["resourcequota"], leader_elect=False, resync_period=None
    )
    task = asyncio.create_task(manager.run())

    async def synced() -> bool:
        if task.done():
            task.result()
        return manager.synced

    await eventually("caches synced", synced)
    ns = f"rq-{uuid.uuid4().hex[:6]}"
    await client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        yield client, ns
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


def pod(name: str, cpu: str, memory: str) -> dict:
    c = {
        "name": "main",
        "image": "busybox",
        "resources": {"requests": {"cpu": cpu}, "limits": {"memory": memory}},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [c]},
    }


async def test_usage_follows_the_namespace(
    api: ApiServerProcess, quota_ns: tuple[AsyncClient, str]
) -> None:
    client, ns = quota_ns
    hard = {
        "pods": "4",
        "requests.cpu": "2",
        "limits.memory": "1Gi",
        "configmaps": "10",
        "secrets": "10",
        "count/deployments.apps": "3",
    }
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}}
    await client.create(QUOTAS, {**quota, "spec": {"hard": hard}}, ns)

    async def used_is(expected: dict) -> dict | None:
        try:
            status = (await client.get(QUOTAS, "q", ns)).get("status") or {}
        except errors.NotFound:
            return None
        return status if status.get("used") == expected else None

    status = await eventually(
        "initial usage",
        lambda: used_is(
            {
                "pods": "0",
                "requests.cpu": "0",
                "limits.memory": "0",
                "configmaps": "0",
                "secrets": "0",
                "count/deployments.apps": "0",
            }
        ),
    )
    assert status["hard"] == hard

    await client.create(PODS, pod("a", "250m", "128Mi"), ns)
    await client.create(PODS, pod("b", "500m", "256Mi"), ns)
    await client.create(
        CMS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, ns
    )
    await client.create(
        SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}, ns
    )
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": template},
    }
    await client.create(DEPLOYS, deployment, ns)
    after = {
        "pods": "2",
        "requests.cpu": "750m",
        "limits.memory": "384Mi",
        "configmaps": "1",
        "secrets": "1",
        "count/deployments.apps": "1",
    }
    await eventually("usage after creations", lambda: used_is(after))

    await client.delete(PODS, "a", ns, grace_period_seconds=0)
    await client.patch(PODS, "b", {"status": {"phase": "Succeeded"}}, ns, subresource="status")
    await client.delete(DEPLOYS, "web", ns)
    drained = {**after, "pods": "0", "requests.cpu": "0", "limits.memory": "0"}
    drained["count/deployments.apps"] = "0"
    await eventually("usage after deletions", lambda: used_is(drained))

    if not KUBECTL.exists():
        pytest.skip("kubectl not fetched (hack/get-kubectl.sh)")
    env = {**os.environ, "KUBECONFIG": api.kubeconfig}
    out = await asyncio.to_thread(
        subprocess.run,
        [str(KUBECTL), "describe", "quota", "q", "-n", ns],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    rows = {tuple(line.split()) for line in out.stdout.splitlines()}
    assert ("limits.memory", "0", "1Gi") in rows
    assert ("configmaps", "1", "10") in rows
    assert ("count/deployments.apps", "0", "3") in rows
