"""The node agent's fast start path on containerd: Service variables from its Service watch, and
a status written right after StartContainer that agrees with what CRI reports.

API server (session ``api``) + one node agent; no scheduler.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from kubelet import labels as L
from kubelet.env import ServiceCache
from machinery.client import AsyncClient
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    PODS,
    RealNode,
    container,
    container_id,
    eventually,
    node_session,
    pod,
    running,
)

pytestmark = pytest.mark.e2e
SERVICES = lookup("services")


@pytest.fixture
async def node(
    api: ApiServerProcess, containerd_runtime: ContainerdRuntime
) -> AsyncIterator[tuple[AsyncClient, RealNode]]:
    async with node_session(api, containerd_runtime, "e2e-start") as pair:
        yield pair


async def test_service_variables_and_status_right_after_start(
    node: tuple[AsyncClient, RealNode], containerd_runtime: ContainerdRuntime
) -> None:
    client, n = node
    assert n.agent is not None and n.agent.ctx is not None and n.runtime is not None
    cache = n.agent.ctx.services
    assert cache is not None
    name = f"cache-{uuid.uuid4().hex[:6]}"
    svc = await client.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "redis", "port": 6379}]},
        },
        "default",
    )
    try:
        # The Service must be known before the pod starts (as in Kubernetes): wait for the watch.
        await eventually("service in the agent's cache", lambda: _cached(cache, name))
        main = container("main", containerd_runtime.busybox_image, command=["sleep", "3600"])
        await client.create(PODS, pod("envs", n.name, [main]), "default")
        p = await eventually("envs running", lambda: running(client, "envs"), timeout=60)

        cid = container_id(p)
        result = await n.runtime.exec_sync(cid, ["env"], timeout=10)
        variables = dict(
            line.split("=", 1) for line in result.stdout.decode().splitlines() if "=" in line
        )
        prefix = name.upper().replace("-", "_")
        assert variables[f"{prefix}_SERVICE_HOST"] == svc["spec"]["clusterIP"]
        assert variables[f"{prefix}_SERVICE_PORT_REDIS"] == "6379"

        # The status written right after StartContainer is what CRI reports.
        st = await n.runtime.container_status(cid)
        cs = p["status"]["containerStatuses"][0]
        started = datetime.fromtimestamp(st.started_at // 10**9, UTC)
        assert cs["state"]["running"]["startedAt"] == started.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert cs["imageID"] == st.image_ref
        sandbox = await n.runtime.list_pod_sandbox(labels={L.POD_UID: p["metadata"]["uid"]})
        ip = (await n.runtime.pod_sandbox_status(sandbox[0].id)).network.ip
        assert p["status"]["podIP"] == ip
    finally:
        await client.delete(SERVICES, name, "default")


async def _cached(cache: ServiceCache, name: str) -> bool:
    return cache.synced and cache.get("default", name) is not None
