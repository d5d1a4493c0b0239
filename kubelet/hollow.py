"""Hollow nodes: K node agents in one process, each on its own fake runtime.

Everything a real agent does happens (registration, Lease every 10 s, status, pod workers,
pod status through the API), against :class:`~kubelet.cri.fake.FakeRuntime` instances served
by one in-process :class:`~kubelet.cri.fake.FakeServer`. To stay cheap at 1,000 nodes the
agents share one HTTP client, one gRPC channel (the node is picked per call by metadata), one
pod informer (``spec.nodeName!=``, dispatched by node name) and one event recorder. One runtime
poller serves them all every ``pleg_period`` (5 s): it relists (two RPCs) only the nodes whose
fake runtime holds sandboxes or containers, or held some at the last pass — looked at in
process — instead of 1,000 pollers relisting empty runtimes (half the idle CPU at 300 nodes).

The shared client lets at most :data:`IN_FLIGHT` requests go to the API server at once (watches
aside); the others wait their turn in a FIFO semaphore. httpcore's pool re-scans every queued
request against every connection each time a request starts or ends, which at 1,000 agents
costs more CPU than everything else together; a short queue there keeps it cheap. At most
:data:`REGISTERING` agents register at once.

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
IN_FLIGHT = 8  # API requests at once: the cheapest per request in httpx (1.75 ms CPU vs 2.9 at 16)
REGISTERING = 32  # agents registering at once


class BoundedClient:
    """An API client whose request methods wait for one of ``limit`` slots; everything else
    (``watch``, ``server`` ...) is the wrapped client's."""

    BOUNDED = frozenset({"get", "list", "list_all", "create", "update", "patch", "delete"})

    def __init__(self, client: Any, limit: int = IN_FLIGHT) -> None:
        self._client = client
        self._slots = asyncio.Semaphore(limit)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in self.BOUNDED:
            return attr

        async def bounded(*args: Any, **kwargs: Any) -> Any:
            async with self._slots:
                return await attr(*args, **kwargs)

        return bounded


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
        self.client = BoundedClient(client)
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
        self._pleg_task: asyncio.Task[None] | None = None
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
                pleg_period=0,
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
        registering = asyncio.Semaphore(REGISTERING)

        async def start(agent: NodeAgent) -> None:
            async with registering:
                await agent.start()

        await asyncio.gather(*(start(agent) for agent in self.agents.values()))
        self.informer = Informer(self.client, PODS, field_selector="spec.nodeName!=")
        self.informer.add_handler(self._on_pod, lambda _old, new: self._on_pod(new), self._gone)
        self._informer_task = asyncio.create_task(self.informer.run(), name="hollow informer")
        await self.informer.wait_synced()
        for agent in self.agents.values():
            agent.mark_synced()
        self._pleg_task = asyncio.create_task(self._pleg(), name="hollow pleg")

    async def _pleg(self) -> None:
        """Relist, every ``pleg_period``, the nodes whose runtime holds (or held) anything."""
        busy: set[str] = set()
        while True:
            await asyncio.sleep(self.template.pleg_period)
            now = {n for n, rt in self.runtimes.items() if rt.sandboxes or rt.containers}
            for name in sorted(now | busy):
                try:
                    await self.agents[name].relist()
                except Exception as err:
                    log.warning("node %s: runtime relist failed: %s", name, err)
            busy = now

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
        tasks = [t for t in (self._informer_task, self._pleg_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
