"""A pod on containerd reaches the API server through the ``kubernetes`` Service (10.96.0.1:443).

An API server of this module's own advertises the e2e bridge's gateway address (a host address
pods reach; hack/start-containerd.sh makes the bridge before any pod): it publishes itself as the
Service's endpoint, the iptables proxy (own chain prefix) maps 10.96.0.1:443 to it, and a busybox
pod fetches ``/version`` through the ClusterIP it finds in ``KUBERNETES_SERVICE_HOST``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from kubelet.proxy.iptables import IptablesBackend, IptablesConfig
from kubelet.proxy.proxier import Proxier
from machinery.informer import InformerFactory
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess, start_apiserver
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    container,
    container_id,
    delete_all_pods,
    eventually,
    pod,
    running,
    start_node,
)

pytestmark = pytest.mark.e2e

POD = lookup("pods")


@pytest.fixture
def advertised_api(
    tmp_path: Path, containerd_runtime: ContainerdRuntime
) -> Iterator[ApiServerProcess]:
    gateway = str(next(ipaddress.ip_network(containerd_runtime.pod_cidr).hosts()))
    server = start_apiserver(tmp_path, extra=["--advertise-address", gateway])
    yield server
    server.stop()


async def test_pod_reaches_the_api_server_by_the_kubernetes_service(
    advertised_api: ApiServerProcess, containerd_runtime: ContainerdRuntime
) -> None:
    client = advertised_api.async_client()
    node = await start_node(client, containerd_runtime, prefix="kapi")
    factory = InformerFactory(client)
    prefix = "TK" + secrets.token_hex(2).upper()
    backend = IptablesBackend(
        IptablesConfig(prefix=prefix, localnet_interfaces=(containerd_runtime.bridge,))
    )
    proxier = Proxier(factory, backend, min_sync_period=0.02)
    await factory.start()
    assert await factory.wait_synced(10)
    task = asyncio.create_task(proxier.run())
    try:
        body = pod(
            "kapi",
            node.name,
            [container("c", containerd_runtime.busybox_image, command=["sleep", "3600"])],
        )
        await client.create(POD, body)
        await eventually("pod running", lambda: running(client, "kapi"), 90)
        obj = await client.get(POD, "kapi", "default")
        assert node.runtime is not None

        async def version() -> dict | None:
            res = await node.runtime.exec_sync(
                container_id(obj),
                # what in-cluster clients do: the Service's variables, then the ClusterIP
                [
                    "sh",
                    "-c",
                    "wget -q -O - http://$KUBERNETES_SERVICE_HOST:$KUBERNETES_PORT_443_TCP_PORT/version",
                ],
                timeout=10,
            )
            return orjson.loads(res.stdout) if res.exit_code == 0 else None

        got = await eventually("/version through 10.96.0.1:443", version, 30)
        assert got and got["gitVersion"].endswith("-tugboat"), got
    finally:
        try:
            await delete_all_pods(client, node.name)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await factory.stop()
            await node.stop()
            await client.aclose()
