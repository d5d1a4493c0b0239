"""Node agents (fake runtime) against a real API server: registration, lease, pods, logs, exec,
hollow nodes, restart re-adoption and orphan cleanup."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from kubelet.agent import AgentConfig, NodeAgent
from kubelet.cri.client import AsyncRuntimeClient
from kubelet.cri.fake import FakeRuntime, FakeServer
from kubelet.hollow import HollowNodes
from kubelet.node import LEASE_NAMESPACE, LEASES
from kubelet.server import serve
from machinery import errors
from machinery.client import AsyncClient
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess

PODS, NODES = lookup("pods"), lookup("nodes")


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except errors.NotFound:
            last = None
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout} s (last: {last!r})")


@dataclass
class Node:
    agent: NodeAgent
    fake: FakeRuntime
    server: FakeServer
    client: AsyncClient


def pod_body(name: str, node: str, command: list[str], **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "image": "busybox:1.35", "command": command}],
            **spec,
        },
    }


@pytest.fixture
async def node(fresh_api: ApiServerProcess, tmp_path) -> AsyncIterator[Node]:
    client = fresh_api.async_client()
    fake = FakeRuntime(pod_cidr="10.244.7.0/24")
    server = FakeServer(fake)
    endpoint = await server.start()
    runtime = AsyncRuntimeClient(endpoint)
    config = AgentConfig(
        node_name="node-1", pleg_period=0.05, log_root=str(tmp_path / "logs"), port=0
    )
    agent = NodeAgent(client, runtime, config)
    await agent.start()
    yield Node(agent, fake, server, client)
    await agent.stop()
    await runtime.close()
    await server.stop()
    await client.aclose()


async def running(client: AsyncClient, name: str) -> dict | None:
    pod = await client.get(PODS, name, "default")
    return pod if (pod.get("status") or {}).get("phase") == "Running" else None


async def test_node_registers_with_lease_and_ready_status(node: Node) -> None:
    n = await node.client.get(NODES, "node-1")
    labels = n["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "node-1"
    assert labels["kubernetes.io/os"] == "linux"
    status = n["status"]
    types = [c["type"] for c in status["conditions"]]
    assert types == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    assert set(status["capacity"]) == {"cpu", "memory", "pods", "ephemeral-storage"}
    assert status["nodeInfo"]["containerRuntimeVersion"] == "tugboat-fake://0.1.0"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 0
    assert n["spec"]["podCIDR"] == "10.244.0.0/24"  # first free /24 (no --pod-cidr)
    lease = await eventually(lambda: node.client.get(LEASES, "node-1", LEASE_NAMESPACE))
    assert lease["spec"]["holderIdentity"] == "node-1"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["uid"] == n["metadata"]["uid"]


async def test_pod_runs_restarts_and_is_deleted(node: Node) -> None:
    c = node.client
    await c.create(PODS, pod_body("web", "node-1", ["sleep", "3600"]), "default")
    pod = await eventually(lambda: running(c, "web"))
    assert pod["status"]["podIP"].startswith("10.244.7.")
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("//")[1]

    node.fake.exit_container(cid, 3)  # the runtime poller notices, the worker restarts it

    async def restarted() -> dict | None:
        p = await c.get(PODS, "web", "default")
        s = p["status"]["containerStatuses"][0]
        return s if s["restartCount"] == 1 and "running" in s["state"] else None

    main = await eventually(restarted)
    assert main["lastState"]["terminated"]["exitCode"] == 3

    await c.delete(PODS, "web", "default")  # graceful: the agent finishes the deletion

    async def gone() -> bool:
        try:
            await c.get(PODS, "web", "default")
        except errors.NotFound:
            return True
        return False

    await eventually(gone)
    assert node.fake.containers == {} and node.fake.sandboxes == {}


async def test_agent_restart_readopts_and_removes_orphans(
    fresh_api: ApiServerProcess, node: Node, tmp_path
) -> None:
    c = node.client
    await c.create(PODS, pod_body("keep", "node-1", ["sleep", "3600"]), "default")
    await c.create(PODS, pod_body("drop", "node-1", ["sleep", "3600"]), "default")
    await eventually(lambda: running(c, "keep"))
    await eventually(lambda: running(c, "drop"))
    await node.agent.stop()  # the agent dies; its containers keep running
    before = {cid for cid, x in node.fake.containers.items()}
    # Deleted while the agent is down (force: nobody would confirm a graceful delete).
    await c.delete(PODS, "drop", "default", grace_period_seconds=0)
    creates = node.fake.calls["CreateContainer"]

    runtime = AsyncRuntimeClient(node.server.endpoint)
    config = AgentConfig(
        node_name="node-1", pleg_period=0.05, log_root=str(tmp_path / "logs"), port=0
    )
    again = NodeAgent(c, runtime, config)
    await again.start()
    try:
        keep = await c.get(PODS, "keep", "default")
        keep_uid = keep["metadata"]["uid"]

        async def only_keep_left() -> bool:
            uids = {s.config.metadata.uid for s in node.fake.sandboxes.values()}
            return uids == {keep_uid}

        await eventually(only_keep_left)
        assert node.fake.calls["CreateContainer"] == creates  # nothing restarted
        assert set(node.fake.containers) < before
        keep = await c.get(PODS, "keep", "default")
        assert keep["status"]["containerStatuses"][0]["restartCount"] == 0
    finally:
        await again.stop()
        await runtime.close()


async def test_returning_agent_removes_the_pods_moved_away(node: Node, tmp_path) -> None:
    """Node failure and recovery: while node-1's agent is away its pods are evicted (a graceful
    delete that nobody confirms, as node-lifecycle does it) or force-deleted (as pod GC does
    it), and recreated on node-2. The returning agent tears their sandboxes and containers
    down and finishes the evicted pod's deletion; it leaves node-2's replacements alone."""
    c = node.client
    fake2 = FakeRuntime(pod_cidr="10.244.8.0/24")
    server2 = FakeServer(fake2)
    runtime2 = AsyncRuntimeClient(await server2.start())
    config2 = AgentConfig(
        node_name="node-2", pleg_period=0.05, log_root=str(tmp_path / "logs2"), port=0
    )
    agent2 = NodeAgent(c, runtime2, config2)
    await agent2.start()
    again: NodeAgent | None = None
    runtime1 = AsyncRuntimeClient(node.server.endpoint)
    try:
        for name in ("evicted", "collected"):
            await c.create(PODS, pod_body(name, "node-1", ["sleep", "3600"]), "default")
        uids = {}
        for name in ("evicted", "collected"):
            pod = await eventually(lambda name=name: running(c, name))
            uids[name] = pod["metadata"]["uid"]
        await node.agent.stop()  # the agent dies; its containers keep running

        evicted = uids["evicted"]
        await c.delete(PODS, "evicted", "default", preconditions={"uid": evicted})
        await c.delete(PODS, "collected", "default", grace_period_seconds=0)
        for name in ("evicted-2", "collected-2"):  # recreated elsewhere by their controllers
            await c.create(PODS, pod_body(name, "node-2", ["sleep", "3600"]), "default")
            await eventually(lambda name=name: running(c, name))
        assert (await c.get(PODS, "evicted", "default"))["metadata"]["deletionTimestamp"]

        def pods_on(fake: FakeRuntime) -> set[str]:
            sandboxes = {s.config.metadata.uid for s in fake.sandboxes.values()}
            containers = {
                fake.sandboxes[x.sandbox_id].config.metadata.uid
                for x in fake.containers.values()
                if x.sandbox_id in fake.sandboxes
            }
            return sandboxes | containers

        assert pods_on(node.fake) == set(uids.values())  # still there while the agent is away
        node2_pods = pods_on(fake2)

        again = NodeAgent(c, runtime1, node.agent.config)
        await again.start()

        async def cleaned_up() -> bool:
            return not pods_on(node.fake) and not node.fake.containers

        await eventually(cleaned_up)

        async def evicted_gone() -> bool:
            try:
                await c.get(PODS, "evicted", "default")
            except errors.NotFound:
                return True
            return False

        await eventually(evicted_gone)
        assert pods_on(fake2) == node2_pods and len(node2_pods) == 2
    finally:
        if again is not None:
            await again.stop()
        await runtime1.close()
        await agent2.stop()
        await runtime2.close()
        await server2.stop()


async def test_logs_and_exec_through_the_node_server(node: Node) -> None:
    c = node.client
    await c.create(PODS, pod_body("talk", "node-1", ["sleep", "3600"]), "default")
    pod = await eventually(lambda: running(c, "talk"))
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("//")[1]
    node.fake.write_log(cid, "one\ntwo\nthree\n")
    http = await serve(node.agent, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{http.port}"
    try:
        async with httpx.AsyncClient(base_url=base) as web:
            r = await web.get("/containerLogs/default/talk/main")
            assert (r.status_code, r.text) == (200, "one\ntwo\nthree\n")
            r = await web.get("/containerLogs/default/talk/main", params={"tailLines": "1"})
            assert r.text == "three\n"
            r = await web.get("/containerLogs/default/talk/main", params={"limitBytes": "5"})
            assert r.text == "one\nt"
            r = await web.get(
                "/containerLogs/default/talk/main", params={"timestamps": "true", "tailLines": "1"}
            )
            stamp, _, text = r.text.partition(" ")
            assert text == "three\n" and stamp.endswith("Z")
            r = await web.get("/containerLogs/default/talk/nope")
            assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
            r = await web.get("/containerLogs/default/talk/main", params={"previous": "true"})
            assert r.status_code == 400
            assert "previous terminated container" in r.json()["message"]
            r = await web.get("/containerLogs/default/absent/main")
            assert r.status_code == 404

        node.fake.set_exec_result(cid, stdout=b"hello\n", stderr=b"warn\n", exit_code=3)
        url = f"ws://127.0.0.1:{http.port}/exec/default/talk/main?command=sh&command=-c"
        async with websockets.connect(url, subprotocols=["v5.channel.k8s.io"]) as ws:
            assert ws.subprotocol == "v5.channel.k8s.io"
            frames = [frame async for frame in ws]
        by_channel = {f[0]: f[1:] for f in frames}
        assert by_channel[1] == b"hello\n" and by_channel[2] == b"warn\n"
        status = json.loads(by_channel[3])
        assert status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    finally:
        await http.stop()


async def test_hollow_nodes_register_and_run_pods(fresh_api: ApiServerProcess) -> None:
    client = fresh_api.async_client()
    hollow = HollowNodes(client, 20, prefix="hollow-")
    await hollow.start()
    try:

        async def all_ready() -> bool:
            nodes = (await client.list(NODES))["items"]
            ready = [
                n
                for n in nodes
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n["status"]["conditions"]
                )
            ]
            return len(ready) == 20

        await eventually(all_ready)
        for i in range(0, 20, 5):
            await client.create(
                PODS, pod_body(f"h{i}", f"hollow-{i}", ["sleep", "3600"]), "default"
            )
        for i in range(0, 20, 5):
            pod = await eventually(lambda i=i: running(client, f"h{i}"))
            assert pod["status"]["hostIP"] == "127.0.0.1"
        cidrs = {(await client.get(NODES, f"hollow-{i}"))["spec"]["podCIDR"] for i in range(20)}
        assert len(cidrs) == 20  # no two nodes share a pod CIDR
    finally:
        await hollow.stop()
        await client.aclose()
