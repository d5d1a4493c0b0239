"""Node agents on the e2e containerd: a :class:`RealNode` (agent + its HTTP server) and helpers
shared by ``tests/e2e/test_kubelet_*.py``.

A node is named uniquely per test, so tests sharing the session's API server and containerd
never see each other's pods (the agent only touches CRI objects labelled with its node name).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubelet.agent import AgentConfig, NodeAgent
from kubelet.cgroups import candidate_paths
from kubelet.cri.cgroups import remove_cgroup
from kubelet.cri.client import AsyncRuntimeClient
from kubelet.images.store import load_image
from kubelet.server import RunningServer, serve
from machinery import errors
from machinery.client import AsyncClient
from machinery.events import EventRecorder
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess, free_port
from tests.e2e.conftest import START_SCRIPT, ContainerdRuntime

PODS, NODES = lookup("pods"), lookup("nodes")
CGROUP_MOUNT = Path("/sys/fs/cgroup")


async def eventually(
    what: str, check: Callable[[], Awaitable[Any]], timeout: float = 30.0, poll: float = 0.1
) -> Any:
    """Poll ``check`` until it returns something truthy (NotFound counts as falsy)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except errors.NotFound:
            last = None
        if last:
            return last
        await asyncio.sleep(poll)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


async def page_text(http: httpx.AsyncClient, url: str) -> str:
    """The body of a 200 answer from ``url``, else "" — also while nothing listens there yet
    (a NodePort or ClusterIP is programmed a moment after its endpoints become ready)."""
    try:
        r = await http.get(url)
    except httpx.TransportError:
        return ""
    return r.text if r.status_code == 200 else ""


def agent_config(runtime: ContainerdRuntime, name: str, **overrides: Any) -> AgentConfig:
    config = AgentConfig(
        node_name=name,
        node_ip="127.0.0.1",
        port=free_port(),
        pod_cidr=runtime.pod_cidr,
        log_root=str(runtime.log_root),
        cgroup_root=runtime.cgroup_root,
        pleg_period=0.2,
        status_check_period=1.0,
        lease_period=2.0,
    )
    return replace(config, **overrides)


@dataclass
class RealNode:
    """One node agent on containerd, with its logs/exec server on ``config.port``."""

    client: AsyncClient
    endpoint: str
    config: AgentConfig
    agent: NodeAgent | None = None
    runtime: AsyncRuntimeClient | None = None
    http: RunningServer | None = None

    @property
    def name(self) -> str:
        return self.config.node_name

    async def start(self) -> RealNode:
        self.runtime = AsyncRuntimeClient(self.endpoint)
        self.agent = NodeAgent(self.client, self.runtime, self.config)
        await self.agent.start()
        self.http = await serve(self.agent, self.config.node_ip, self.config.port)
        return self

    async def stop(self) -> None:
        """Stop the agent (its containers keep running, as when the process dies)."""
        if self.http is not None:
            await self.http.stop()
        if self.agent is not None:
            await self.agent.stop()
        if self.runtime is not None:
            await self.runtime.close()
        self.agent = self.runtime = self.http = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()


async def start_node(
    client: AsyncClient, runtime: ContainerdRuntime, prefix: str = "e2e", **overrides: Any
) -> RealNode:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    return await RealNode(
        client, runtime.endpoint, agent_config(runtime, name, **overrides)
    ).start()


@contextlib.asynccontextmanager
async def node_session(
    api: ApiServerProcess,
    runtime: ContainerdRuntime,
    prefix: str,
    *,
    record_events: bool = False,
    **overrides: Any,
) -> AsyncIterator[tuple[AsyncClient, RealNode]]:
    """A client of ``api`` and a node agent on ``runtime`` (with ``record_events``, the agent
    writes its Events, as ``tug kubelet`` does); at the end the node's pods are deleted (and
    waited for), then the agent, its event writer and the client stop."""
    client = api.async_client()
    n = await start_node(client, runtime, prefix=prefix, **overrides)
    recorder = None
    if record_events:
        assert n.agent is not None and n.agent.ctx is not None
        recorder = n.agent.ctx.recorder = EventRecorder(client, "kubelet", n.name)
    try:
        yield client, n
    finally:
        try:
            await delete_all_pods(client, n.name)
        finally:
            await n.stop()
            if recorder is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(recorder.aclose(), 5)
            await client.aclose()


KUBECTL = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "kubectl"


def require_kubectl() -> None:
    if not KUBECTL.exists():
        pytest.skip("kubectl not fetched (hack/get-kubectl.sh)")


def kubectl(
    api: ApiServerProcess, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """The real kubectl against ``api`` (its output as text)."""
    return subprocess.run(
        [str(KUBECTL), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "KUBECONFIG": api.kubeconfig},
        input=stdin,
    )


async def delete_all_pods(client: AsyncClient, node: str, timeout: float = 60.0) -> None:
    """Delete the node's pods gracefully and wait until the agent has finished them."""
    pods = (await client.list_all(PODS, field_selector=f"spec.nodeName={node}"))["items"]
    for p in pods:
        m = p["metadata"]
        try:
            await client.delete(PODS, m["name"], m["namespace"], grace_period_seconds=1)
        except errors.NotFound:
            pass

    async def none_left() -> bool:
        left = await client.list_all(PODS, field_selector=f"spec.nodeName={node}")
        return not left["items"]

    await eventually(f"pods of {node} gone", none_left, timeout)


def pod(name: str, node: str, containers: list[dict], **spec: Any) -> dict:
    spec.setdefault("terminationGracePeriodSeconds", 2)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": containers, **spec},
    }


def container(name: str, image: str, **fields: Any) -> dict:
    return {"name": name, "image": image, **fields}


async def status_of(client: AsyncClient, name: str, namespace: str = "default") -> dict:
    return (await client.get(PODS, name, namespace)).get("status") or {}


async def running(client: AsyncClient, name: str, namespace: str = "default") -> dict | None:
    """The pod once it is Running with every container running, else ``None``."""
    p = await client.get(PODS, name, namespace)
    status = p.get("status") or {}
    statuses = status.get("containerStatuses") or []
    if (
        status.get("phase") == "Running"
        and statuses
        and all("running" in s["state"] for s in statuses)
    ):
        return p
    return None


def container_id(pod_obj: dict, index: int = 0) -> str:
    return pod_obj["status"]["containerStatuses"][index]["containerID"].split("://", 1)[1]


def pod_cgroup_dirs(cgroup_root: str, uid: str) -> list[Path]:
    """The pod's cgroup directories that exist, in every mounted hierarchy (any QoS class)."""
    return [
        p / path.strip("/")
        for path in candidate_paths(cgroup_root, uid)
        for p in CGROUP_MOUNT.iterdir()
        if (p / path.strip("/")).is_dir()
    ]


@contextlib.contextmanager
def extra_containerd(
    base: Path, bridge: str, pod_cidr: str, cgroup_root: str, images: list[Path]
) -> Iterator[ContainerdRuntime]:
    """Another containerd instance of our own (bridge, pod CIDR, cgroup root) holding
    ``images``; stopped and cleaned up on exit."""
    start = [str(START_SCRIPT), "--bridge", bridge, "--pod-cidr", pod_cidr, str(base)]
    subprocess.run(["bash", *start], check=True, timeout=60)
    runtime = ContainerdRuntime(
        dir=base,
        socket=str(base / "containerd.sock"),
        endpoint=f"unix://{base / 'containerd.sock'}",
        pod_cidr=pod_cidr,
        bridge=bridge,
        log_root=base / "pod-logs",
        cgroup_root=cgroup_root,
    )
    try:
        for archive in images:
            load_image(runtime.socket, archive)
        yield runtime
    finally:
        subprocess.run(
            ["bash", str(START_SCRIPT), "--stop", "--bridge", bridge, str(base)],
            check=False,
            timeout=180,
        )
        remove_cgroup(runtime.cgroup_root)
