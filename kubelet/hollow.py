"""Hollow nodes: K node agents in one process, each on its own fake runtime.

Everything a real agent does happens (registration, Lease every 10 s, status, pod workers,
pod status through the API), against :class:`~kubelet.cri.fake.FakeRuntime` instances served
by one in-process :class:`~kubelet.cri.fake.FakeServer`. To stay cheap at 1,000 nodes the
agents share one HTTP client, one gRPC channel (the node is picked per call by metadata), one
pod informer (``spec.nodeName!=``, dispatched by node name) and one event recorder, and their
runtime poller runs every ``pleg_period`` (5 s) instead of every second.

Pod CIDRs: the first nodes get the free /24s of 10.244.0.0/16 (found with one list at start);
beyond 256 nodes the rest get none (their fake runtimes use 10.244.0.0/24 regardless).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import replace
from typing import Any

import grpc.aio

from machinery.informer import Informer
from machinery.kinds import lookup

from .agent import AgentConfig, NodeAgent
from .cri import api_pb2_grpc as pb_grpc
from .cri.client import _CHANNEL_OPTIONS, AsyncRuntimeClient, _target
from .cri.fake import FakeRuntime, FakeServer
from .metrics import serve_shared
from .node import CLUSTER_CIDR, NODES, Machine, Pressure
from .podworker import NullRecorder, Recorder

log = logging.getLogger(__name__)

PODS = lookup("pods")
HOLLOW_LABEL = "tugboat.io/hollow"


class SharedChannelRuntimeClient(AsyncRuntimeClient):
    """A runtime client for one hollow node that reuses a channel shared by all of them."""

    def __init__(self, endpoint: str, channel: grpc.aio.Channel, node: str) -> None:
        super().__init__(endpoint, node=node)
        self._shared = channel
        self._shared_stubs = (
            pb_grpc.RuntimeServiceStub(channel),
            pb_grpc.ImageServiceStub(channel),
        )

    def _stubs(self) -> tuple[pb_grpc.RuntimeServiceStub, pb_grpc.ImageServiceStub]:
        return self._shared_stubs

    async def close(self) -> None:  # the channel belongs to the hollow cluster
        return None


def hollow_machine() -> Machine:
    """What a hollow node reports: a modest fixed machine."""
    return Machine(
        cpu=4,
        memory=16 * 1024**3,
        ephemeral_storage=100 * 1024**3,
        machine_id="hollow",
        kernel="hollow",
        os_image="tugboat hollow node",
    )


class HollowNodes:
    """``count`` hollow agents named ``<prefix><i>``. ``await start()``, later ``stop()``."""

    def __init__(
        self,
        client: Any,
        count: int,
        *,
        prefix: str = "hollow-node-",
        template: AgentConfig | None = None,
        recorder: Recorder | None = None,
        address: str = "127.0.0.1:0",
    ) -> None:
        self.client = client
        self.count = count
        self.prefix = prefix
        self.template = template or AgentConfig(
            node_name="", pleg_period=5.0, resync=None, port=0, log_root="/tmp/tugboat-hollow"
        )
        self.recorder = recorder or NullRecorder()
        self.server = FakeServer(address=address)
        self.runtimes: dict[str, FakeRuntime] = {}
        self.agents: dict[str, NodeAgent] = {}
        self.informer: Informer | None = None
        self._channel: grpc.aio.Channel | None = None
        self._informer_task: asyncio.Task[None] | None = None
        self.metrics_http: Any = None

    def names(self) -> list[str]:
        return [f"{self.prefix}{i}" for i in range(self.count)]

    async def _free_cidrs(self) -> list[str]:
        nodes = await self.client.list_all(NODES)
        used = {(n.get("spec") or {}).get("podCIDR") for n in nodes.get("items") or []}
        subnets = ipaddress.ip_network(CLUSTER_CIDR).subnets(new_prefix=24)
        return [str(s) for s in subnets if str(s) not in used]

    async def start(self) -> None:
        endpoint = await self.server.start()
        self._channel = grpc.aio.insecure_channel(_target(endpoint), options=_CHANNEL_OPTIONS)
        cidrs = iter(await self._free_cidrs())
        self.metrics_http = await serve_shared(
            lambda: [a.sampler for a in self.agents.values() if a.sampler is not None]
        )
        template = replace(self.template, port=self.template.port or self.metrics_http.port)
        machine = hollow_machine()
        for name in self.names():
            cidr = next(cidrs, "")
            runtime = FakeRuntime(pod_cidr=cidr or "10.244.0.0/24")
            self.runtimes[name] = self.server.add(name, runtime)
            config = replace(
                template,
                node_name=name,
                pod_cidr=cidr,
                labels={**self.template.labels, HOLLOW_LABEL: "true"},
            )
            self.agents[name] = NodeAgent(
                self.client,
                SharedChannelRuntimeClient(endpoint, self._channel, name),
                config,
                recorder=self.recorder,
                machine=machine,
                pressure=Pressure,
                own_informer=False,
            )
        await asyncio.gather(*(agent.start() for agent in self.agents.values()))
        self.informer = Informer(self.client, PODS, field_selector="spec.nodeName!=")
        self.informer.add_handler(self._on_pod, lambda _old, new: self._on_pod(new), self._gone)
        self._informer_task = asyncio.create_task(self.informer.run(), name="hollow informer")
        await self.informer.wait_synced()
        for agent in self.agents.values():
            agent.mark_synced()

    def _agent_of(self, pod: dict) -> NodeAgent | None:
        return self.agents.get((pod.get("spec") or {}).get("nodeName") or "")

    def _on_pod(self, pod: dict) -> None:
        agent = self._agent_of(pod)
        if agent is not None:
            agent.pod_event(pod)

    def _gone(self, pod: dict) -> None:
        agent = self._agent_of(pod)
        if agent is not None:
            agent.pod_deleted(pod)

    async def stop(self) -> None:
        if self._informer_task is not None:
            self._informer_task.cancel()
            await asyncio.gather(self._informer_task, return_exceptions=True)
        await asyncio.gather(*(a.stop() for a in self.agents.values()), return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()
        await self.server.stop()
        if self.metrics_http is not None:
            await self.metrics_http.stop()

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()
