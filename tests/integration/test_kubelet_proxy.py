"""``pods/log`` and ``pods/exec`` through the API server's proxy to a node agent (fake runtime),
with plain HTTP / WebSocket clients and with the real kubectl."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from kubelet.agent import AgentConfig, NodeAgent
from kubelet.cri.client import AsyncRuntimeClient
from kubelet.cri.fake import FakeRuntime, FakeServer
from kubelet.server import RunningServer, serve
from machinery.client import AsyncClient
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess, free_port

PODS, NODES = lookup("pods"), lookup("nodes")
KUBECTL = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "kubectl"


async def eventually(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout} s")


@dataclass
class Cluster:
    api: ApiServerProcess
    client: AsyncClient
    fake: FakeRuntime
    agent: NodeAgent


@pytest.fixture
async def cluster(fresh_api: ApiServerProcess, tmp_path: Path) -> AsyncIterator[Cluster]:
    client = fresh_api.async_client()
    fake = FakeRuntime(pod_cidr="10.244.9.0/24")
    server = FakeServer(fake)
    runtime = AsyncRuntimeClient(await server.start())
    config = AgentConfig(
        node_name="node-p", pleg_period=0.05, log_root=str(tmp_path / "logs"), port=free_port()
    )
    agent = NodeAgent(client, runtime, config)
    await agent.start()
    http: RunningServer = await serve(agent, "127.0.0.1", config.port)
    yield Cluster(fresh_api, client, fake, agent)
    await http.stop()
    await agent.stop()
    await runtime.close()
    await server.stop()
    await client.aclose()


async def run_pod(c: Cluster, name: str, containers: list[str], **meta: Any) -> str:
    """Create a pod with sleeping containers; returns the first container's runtime id."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **meta},
        "spec": {
            "nodeName": "node-p",
            "containers": [
                {"name": n, "image": "busybox:1.35", "command": ["sleep", "3600"]}
                for n in containers
            ],
        },
    }
    await c.client.create(PODS, body, "default")

    async def started() -> dict | None:
        p = await c.client.get(PODS, name, "default")
        statuses = (p.get("status") or {}).get("containerStatuses") or []
        ok = statuses and all("running" in s["state"] for s in statuses)
        return p if ok else None

    pod = await eventually(started)
    return pod["status"]["containerStatuses"][0]["containerID"].split("//")[1]


def cid_of(pod: dict, container: str) -> str:
    s = next(s for s in pod["status"]["containerStatuses"] if s["name"] == container)
    return s["containerID"].split("//")[1]


async def test_logs_proxied_with_options_and_errors(cluster: Cluster) -> None:
    c = cluster
    cid = await run_pod(c, "talk", ["main", "side"])
    pod = await c.client.get(PODS, "talk", "default")
    c.fake.write_log(cid, "one\ntwo\nthree\n")
    c.fake.write_log(cid_of(pod, "side"), "from side\n")
    base = "/api/v1/namespaces/default/pods/talk/log"
    async with httpx.AsyncClient(base_url=c.api.url) as web:
        cases = [
            ({}, 200, "one\ntwo\nthree\n"),  # first container by default
            ({"tailLines": "2"}, 200, "two\nthree\n"),
            ({"container": "side"}, 200, "from side\n"),
            ({"limitBytes": "6"}, 200, "one\ntw"),
        ]
        for params, code, text in cases:
            r = await web.get(base, params=params)
            assert (r.status_code, r.text) == (code, text), params
            assert r.headers["content-type"].startswith("text/plain")
        r = await web.get(base, params={"container": "nope"})
        assert r.status_code == 400
        assert r.json()["message"] == "container nope is not valid for pod talk"
        r = await web.get(base, params={"previous": "true"})
        assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
        r = await web.get("/api/v1/namespaces/default/pods/absent/log")
        assert r.status_code == 404


async def test_default_container_annotation_and_unbound_pod(cluster: Cluster) -> None:
    c = cluster
    annotations = {"kubectl.kubernetes.io/default-container": "side"}
    await run_pod(c, "annotated", ["main", "side"], annotations=annotations)
    pod = await c.client.get(PODS, "annotated", "default")
    c.fake.write_log(cid_of(pod, "side"), "side wins\n")
    unbound = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "floating"},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.35"}]},
    }
    await c.client.create(PODS, unbound, "default")
    async with httpx.AsyncClient(base_url=c.api.url) as web:
        r = await web.get("/api/v1/namespaces/default/pods/annotated/log")
        assert r.text == "side wins\n"
        r = await web.get("/api/v1/namespaces/default/pods/floating/log")
        assert r.status_code == 400
        assert r.json()["message"] == "pod floating does not have a host assigned"


async def test_follow_streams_new_lines_as_written(cluster: Cluster) -> None:
    c = cluster
    cid = await run_pod(c, "chatty", ["main"])
    c.fake.write_log(cid, "first\n")
    url = "/api/v1/namespaces/default/pods/chatty/log"
    async with (
        httpx.AsyncClient(base_url=c.api.url, timeout=10) as web,
        web.stream("GET", url, params={"follow": "true"}) as r,
    ):
        assert r.status_code == 200
        lines = r.aiter_lines()
        assert await asyncio.wait_for(anext(lines), 5) == "first"
        c.fake.write_log(cid, "second\n")  # arrives while the request is open
        assert await asyncio.wait_for(anext(lines), 5) == "second"
        c.fake.exit_container(cid, 0)  # the container ends: so does the stream
        rest = [line async for line in lines]
        assert rest == []


async def test_exec_websocket_relayed_both_ways(cluster: Cluster) -> None:
    c = cluster
    cid = await run_pod(c, "shell", ["main"])
    c.fake.set_exec_result(cid, stdout=b"hello\n", stderr=b"warn\n", exit_code=3)
    ws_base = c.api.url.replace("http://", "ws://")
    path = "/api/v1/namespaces/default/pods/shell/exec?command=sh&command=-c&stdout=true"
    for protocol in ("v5.channel.k8s.io", "v4.channel.k8s.io"):
        async with websockets.connect(ws_base + path, subprotocols=[protocol]) as ws:
            assert ws.subprotocol == protocol
            frames = [f async for f in ws]
        by_channel = {f[0]: f[1:] for f in frames}
        assert (by_channel[1], by_channel[2]) == (b"hello\n", b"warn\n")
        status = json.loads(by_channel[3])
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]

    bad = "/api/v1/namespaces/default/pods/shell/exec?command=ls&container=nope"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(ws_base + bad, subprotocols=["v5.channel.k8s.io"]):
            pass
    assert refused.value.response.status_code == 400
    assert b"container nope is not valid" in refused.value.response.body
    with pytest.raises(websockets.InvalidStatus) as missing:
        async with websockets.connect(
            ws_base + "/api/v1/namespaces/default/pods/ghost/exec?command=ls"
        ):
            pass
    assert missing.value.response.status_code == 404


def kubectl(
    api: ApiServerProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": api.kubeconfig}
    return subprocess.run(
        [str(KUBECTL), *args], capture_output=True, text=True, timeout=30, env=env, input=stdin
    )


@pytest.mark.skipif(shutil.which(str(KUBECTL)) is None, reason="kubectl not fetched")
async def test_real_kubectl_logs_and_exec(cluster: Cluster) -> None:
    c = cluster
    cid = await run_pod(c, "kube", ["main", "side"])
    c.fake.write_log(cid, "alpha\nbeta\ngamma\n")
    out = await asyncio.to_thread(kubectl, c.api, "logs", "kube", "--tail=2")
    assert (out.returncode, out.stdout) == (0, "beta\ngamma\n"), out.stderr
    out = await asyncio.to_thread(kubectl, c.api, "logs", "kube", "-c", "side")
    assert (out.returncode, out.stdout) == (0, ""), out.stderr
    out = await asyncio.to_thread(
        kubectl, c.api, "exec", "kube", "--", "sh", "-c", "echo hi; exit 0"
    )
    assert (out.returncode, out.stdout) == (0, "hi\n"), out.stderr
    out = await asyncio.to_thread(kubectl, c.api, "exec", "kube", "--", "sh", "-c", "exit 7")
    assert out.returncode == 7, out.stderr


async def test_logs_of_a_pod_its_node_agent_has_not_started(cluster: Cluster) -> None:
    """A second Node object points at node-p's agent, which never runs pods bound to node-q:
    the pod exists, its node agent answers for it, but has not started it."""
    c = cluster
    port = c.agent.config.port
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-q"}}
    await c.client.create(NODES, node)
    status = {
        "status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        }
    }
    await c.client.patch(NODES, "node-q", status, subresource="status")
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pending"},
        "spec": {"nodeName": "node-q", "containers": [{"name": "main", "image": "busybox"}]},
    }
    await c.client.create(PODS, body, "default")
    async with httpx.AsyncClient(base_url=c.api.url) as web:
        r = await web.get("/api/v1/namespaces/default/pods/pending/log")
    assert (r.status_code, r.json()["reason"]) == (400, "BadRequest")
    assert r.json()["message"] == (
        'container "main" in pod "pending" is waiting to start: ContainerCreating'
    )


async def test_logs_of_a_container_whose_image_cannot_be_pulled(cluster: Cluster) -> None:
    c = cluster
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unpulled"},
        "spec": {
            "nodeName": "node-p",
            "containers": [{"name": "main", "image": "example.invalid/nothing:1"}],
        },
    }
    await c.client.create(PODS, body, "default")
    pull_failures = {
        'container "main" in pod "unpulled" is waiting to start: image can\'t be pulled',
        'container "main" in pod "unpulled" is waiting to start: trying and failing to pull image',
    }
    async with httpx.AsyncClient(base_url=c.api.url) as web:

        async def refused() -> dict | None:
            r = await web.get("/api/v1/namespaces/default/pods/unpulled/log")
            return r.json() if r.json().get("message") in pull_failures else None

        status = await eventually(refused)
    assert (status["code"], status["reason"]) == (400, "BadRequest")


async def test_exec_refused_by_the_node_agent_reads_as_kubernetes(cluster: Cluster) -> None:
    """The API server accepts, then ends the session with the agent's refusal as a Status, as
    Kubernetes' stream translator does (so kubectl prints it instead of retrying over SPDY)."""
    c = cluster
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unstarted"},
        "spec": {
            "nodeName": "node-p",
            "containers": [{"name": "main", "image": "example.invalid/nothing:1"}],
        },
    }
    await c.client.create(PODS, body, "default")

    async def seen() -> bool:
        return c.agent.find_pod("default", "unstarted") is not None

    await eventually(seen)  # known to the agent, its container never started
    ws_base = c.api.url.replace("http://", "ws://")
    path = "/api/v1/namespaces/default/pods/unstarted/exec?command=ls&stdout=true"
    async with websockets.connect(ws_base + path, subprotocols=["v5.channel.k8s.io"]) as ws:
        assert ws.subprotocol == "v5.channel.k8s.io"
        frames = [f async for f in ws]
    assert len(frames) == 1 and frames[0][0] == 3
    status = json.loads(frames[0][1:])
    assert (status["status"], status["reason"], status["code"]) == ("Failure", "InternalError", 500)
    assert status["message"] == (
        'Internal error occurred: unable to upgrade connection: container not found ("main")'
    )
    # kubectl's retry over SPDY (a plain POST) gets the API server's own checks
    async with httpx.AsyncClient(base_url=c.api.url) as web:
        r = await web.post(
            "/api/v1/namespaces/default/pods/unstarted/exec",
            params={"command": "ls", "container": "nope"},
        )
    assert (r.status_code, r.json()["message"]) == (
        400,
        "container nope is not valid for pod unstarted",
    )
