"""Resource metrics of one node: CPU rate and memory working set per container, pod and node.

:class:`ResourceSampler` lists the node's container stats over CRI (``ListContainerStats``,
filtered by the ``tugboat.io/node`` label) every ``period`` (10 s). A container's CPU rate is
the change of its cumulative ``usage_core_nano_seconds`` between two samples divided by the
time between them (what metrics-server does; ``usage_nano_cores`` is 0 on containerd's first
sample), so a container appears once it has been seen twice. Memory is the working set.
The node's usage is the host's (``/proc/stat``, ``/proc/meminfo``) with a real runtime and the
sum of its pods with the fake one (hollow nodes), so a fake runtime's synthetic load
(``FakeRuntime.set_usage``) flows through unchanged.

Served by the node agent's HTTP server (:func:`routes`):

- ``GET /metrics/resource``: Prometheus text in the kubelet's names
  (``node_cpu_usage_seconds_total``, ``node_memory_working_set_bytes``,
  ``pod_cpu_usage_seconds_total``, ``pod_memory_working_set_bytes``,
  ``container_cpu_usage_seconds_total``, ``container_memory_working_set_bytes``,
  ``scrape_error``), cumulative counters with millisecond timestamps;
- ``GET /metrics/resource?format=json``: the rates, ``{"nodes": [NodeSample...]}`` (one node,
  or every hollow node of a process that shares one server), which the API server scrapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import labels as L

log = logging.getLogger(__name__)

DEFAULT_PERIOD = 10.0


@dataclass
class ContainerSample:
    name: str
    cpu_nano_cores: int
    memory_bytes: int
    cpu_seconds_total: float


@dataclass
class PodSample:
    namespace: str
    name: str
    uid: str
    containers: list[ContainerSample] = field(default_factory=list)

    @property
    def cpu_nano_cores(self) -> int:
        return sum(c.cpu_nano_cores for c in self.containers)

    @property
    def memory_bytes(self) -> int:
        return sum(c.memory_bytes for c in self.containers)


@dataclass
class NodeSample:
    """One sampling round: ``timestamp`` (epoch seconds) ends a ``window`` of seconds."""

    name: str
    timestamp: float
    window: float
    cpu_nano_cores: int
    memory_bytes: int
    cpu_seconds_total: float
    pods: list[PodSample] = field(default_factory=list)


class HostStats:
    """Cumulative busy CPU seconds and the memory working set of the whole machine."""

    def cpu_seconds(self) -> float:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / 100.0  # USER_HZ

    def memory_bytes(self) -> int:
        info: dict[str, int] = {}
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
        return info["MemTotal"] - info.get("MemAvailable", info.get("MemFree", 0))


class ResourceSampler:
    """Samples one node's runtime; :attr:`latest` is the newest complete round or None."""

    def __init__(
        self,
        runtime: Any,
        node: str,
        *,
        period: float = DEFAULT_PERIOD,
        host: HostStats | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = runtime
        self.node = node
        self.period = period
        self.host = host
        self.clock = clock
        self.latest: NodeSample | None = None
        self._prev: dict[str, tuple[float, int]] = {}  # container id → (ts, cumulative ns)
        self._prev_host: tuple[float, float] | None = None
        self.errors = 0
        self._rounds = 0

    async def sample(self) -> NodeSample | None:
        """One round; returns (and keeps) the new sample once rates can be computed."""
        stats = await self.runtime.list_container_stats(labels={L.NODE: self.node})
        now = self.clock()
        pods: dict[str, PodSample] = {}
        seen: dict[str, tuple[float, int]] = {}
        windows: list[float] = []
        for s in stats:
            attrs = s.attributes
            ts = s.cpu.timestamp / 1e9 if s.cpu.timestamp else now
            total = int(s.cpu.usage_core_nano_seconds.value)
            seen[attrs.id] = (ts, total)
            prev = self._prev.get(attrs.id)
            if prev is None or ts <= prev[0] or total < prev[1]:
                continue
            windows.append(ts - prev[0])
            rate = int((total - prev[1]) / (ts - prev[0]))
            lab = attrs.labels
            uid = lab.get(L.POD_UID, "")
            pod = pods.get(uid)
            if pod is None:
                pod = pods[uid] = PodSample(
                    lab.get(L.POD_NAMESPACE, ""), lab.get(L.POD_NAME, ""), uid
                )
            pod.containers.append(
                ContainerSample(
                    lab.get(L.CONTAINER_NAME, attrs.metadata.name),
                    rate,
                    int(s.memory.working_set_bytes.value),
                    total / 1e9,
                )
            )
        self._prev = seen
        node_cpu, node_mem, node_total = self._node_usage(now, pods.values())
        self._rounds += 1
        if self._rounds < 2:  # rates need two rounds
            return None
        window = max(windows) if windows else self.period
        self.latest = NodeSample(
            self.node, now, round(window, 3), node_cpu, node_mem, node_total, list(pods.values())
        )
        return self.latest

    def _node_usage(self, now: float, pods: Iterable[PodSample]) -> tuple[int, int, float]:
        pods = list(pods)
        if self.host is None:
            total = sum(c.cpu_seconds_total for p in pods for c in p.containers)
            return (
                sum(p.cpu_nano_cores for p in pods),
                sum(p.memory_bytes for p in pods),
                total,
            )
        busy = self.host.cpu_seconds()
        prev, self._prev_host = self._prev_host, (now, busy)
        rate = 0
        if prev is not None and now > prev[0]:
            rate = int((busy - prev[1]) / (now - prev[0]) * 1e9)
        return max(rate, 0), self.host.memory_bytes(), busy

    async def run(self) -> None:
        """Sample every ``period`` until cancelled (failures are logged and counted)."""
        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.errors += 1
                log.warning("node %s: resource sampling failed: %s", self.node, err)
            await asyncio.sleep(self.period)


# -- rendering ---------------------------------------------------------------------------------


def _labels(**kv: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in kv.items()
    )
    return "{" + inner + "}"


def prometheus_text(samples: Iterable[NodeSample], errors: int = 0) -> str:
    """The kubelet's ``/metrics/resource`` exposition for ``samples``."""
    samples = list(samples)
    out: list[str] = []

    def family(name: str, kind: str, help_: str, rows: list[tuple[str, float, float]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value, ts in rows:
            out.append(f"{name}{labels} {value:.9g} {int(ts * 1000)}")

    family(
        "container_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        [
            (
                _labels(container=c.name, namespace=p.namespace, pod=p.name),
                c.cpu_seconds_total,
                n.timestamp,
            )
            for n in samples
            for p in n.pods
            for c in p.containers
        ],
    )
    family(
        "container_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the container in bytes",
        [
            (
                _labels(container=c.name, namespace=p.namespace, pod=p.name),
                c.memory_bytes,
                n.timestamp,
            )
            for n in samples
            for p in n.pods
            for c in p.containers
        ],
    )
    family(
        "node_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        [("", n.cpu_seconds_total, n.timestamp) for n in samples],
    )
    family(
        "node_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the node in bytes",
        [("", n.memory_bytes, n.timestamp) for n in samples],
    )
    family(
        "pod_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        [
            (
                _labels(namespace=p.namespace, pod=p.name),
                sum(c.cpu_seconds_total for c in p.containers),
                n.timestamp,
            )
            for n in samples
            for p in n.pods
        ],
    )
    family(
        "pod_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the pod in bytes",
        [
            (_labels(namespace=p.namespace, pod=p.name), p.memory_bytes, n.timestamp)
            for n in samples
            for p in n.pods
        ],
    )
    out.append(
        "# HELP scrape_error [STABLE] 1 if there was an error while getting container "
        "metrics, 0 otherwise"
    )
    out.append("# TYPE scrape_error gauge")
    out.append(f"scrape_error {1 if errors or not samples else 0}")
    return "\n".join(out) + "\n"


def summary(samples: Iterable[NodeSample]) -> dict[str, Any]:
    """The JSON the API server scrapes: ``{"nodes": [...]}`` with rates."""
    return {"kind": "NodeResourceSummary", "nodes": [asdict(s) for s in samples]}


def routes(samplers: Callable[[], Iterable[ResourceSampler]]) -> list[Route]:
    """Starlette routes serving the newest samples of ``samplers()``."""

    async def resource(request: Request) -> Response:
        current = list(samplers())
        done = [s.latest for s in current if s.latest is not None]
        if request.query_params.get("format") == "json":
            return JSONResponse(summary(done))
        return PlainTextResponse(
            prometheus_text(done, sum(s.errors for s in current)),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    return [Route("/metrics/resource", resource)]


async def serve_shared(
    samplers: Callable[[], Iterable[ResourceSampler]], host: str = "127.0.0.1", port: int = 0
) -> Any:
    """One HTTP server for many samplers (hollow nodes); returns an object with ``port`` and
    ``stop()``. Node agents with their own server mount :func:`routes` instead."""
    config = uvicorn.Config(
        Starlette(routes=routes(samplers)),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(), name="shared resource metrics server")
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()
        if time.monotonic() > deadline:
            raise RuntimeError("resource metrics server did not start")
        await asyncio.sleep(0.01)
    return _Running(server, task)


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers (the process owns SIGTERM/SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Running:
    server: Any
    task: asyncio.Task[None]

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets if self.server.servers else []
        return int(sockets[0].getsockname()[1]) if sockets else 0

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self.task, 5)
