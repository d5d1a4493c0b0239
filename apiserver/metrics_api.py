"""``metrics.k8s.io/v1beta1``: NodeMetrics and PodMetrics, read from the node agents on demand.

Pull, like metrics-server, but without its own cache period: each node agent samples its
runtime every 10 s (``kubelet/metrics.py``); a request here finds the nodes involved (every
node for NodeMetrics, the nodes running the selected pods for PodMetrics), fetches
``GET http://<InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>/metrics/resource?format=json``
from each distinct endpoint concurrently (hollow nodes of one process share one endpoint, so
one fetch serves them all) and answers from those samples. An endpoint's answer is reused for
``cache_ttl`` seconds and concurrent requests share one fetch. A node that does not answer
within ``timeout`` is left out (as metrics-server leaves out nodes it failed to scrape); so are
samples older than ``max_age``. Nothing is stored, so every API server answers alike.

Read-only: ``get`` and ``list`` (label selectors; field selector ``metadata.name``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from apiserver import codec
from apiserver.proxy import kubelet_address
from machinery import errors
from machinery.kinds import ResourceType, lookup
from machinery.selectors import parse_field_selector, parse_label_selector

log = logging.getLogger(__name__)

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
_VERBS = ("get", "list")
NODE_METRICS = ResourceType(
    GROUP,
    VERSION,
    "NodeMetrics",
    "nodes",
    "nodemetrics",
    False,
    verbs=_VERBS,
    storage="-metrics/nodes",
)
POD_METRICS = ResourceType(
    GROUP, VERSION, "PodMetrics", "pods", "podmetrics", True, verbs=_VERBS, storage="-metrics/pods"
)
RESOURCES = (NODE_METRICS, POD_METRICS)
NODES, PODS = lookup("nodes"), lookup("pods")
Obj = dict[str, Any]


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _usage(cpu_nano: int, memory: int) -> Obj:
    return {"cpu": f"{int(cpu_nano)}n", "memory": f"{int(memory) // 1024}Ki"}


def _window(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


class MetricsApi:
    """Serves the metrics group of one API server from its registry's nodes and pods."""

    def __init__(
        self,
        registry: Any,
        *,
        timeout: float = 3.0,
        cache_ttl: float = 1.0,
        max_age: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.registry = registry
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.max_age = max_age
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._cache: dict[str, tuple[float, list[Obj]]] = {}
        self._inflight: dict[str, asyncio.Future[list[Obj]]] = {}

    # -- HTTP ------------------------------------------------------------------------------

    async def handle(self, request: Request, version: str, rest: str) -> Response:
        """``/apis/metrics.k8s.io/{version}/{rest}``."""
        try:
            if version != VERSION:
                raise errors.NotFound("the server could not find the requested resource")
            if request.method != "GET":
                raise errors.MethodNotAllowed(
                    f"the server does not allow this method on the requested resource: "
                    f"{request.method}"
                )
            parts = [p for p in rest.split("/") if p]
            q = request.query_params
            labels = q.get("labelSelector")
            fields = q.get("fieldSelector")
            if parts[:1] == ["nodes"] and len(parts) <= 2:
                return self._answer(
                    await self.node_metrics(parts[1] if len(parts) == 2 else None, labels, fields),
                    "NodeMetrics",
                    parts[1] if len(parts) == 2 else None,
                )
            namespace = None
            if len(parts) >= 3 and parts[0] == "namespaces":
                namespace, parts = parts[1], parts[2:]
            if parts[:1] == ["pods"] and len(parts) <= 2:
                name = parts[1] if len(parts) == 2 else None
                items = await self.pod_metrics(namespace, name, labels, fields)
                return self._answer(items, "PodMetrics", name)
            raise errors.NotFound("the server could not find the requested resource")
        except errors.ApiError as err:
            return codec.error_response(err)
        except ValueError as err:
            return codec.error_response(errors.BadRequest(str(err)))

    def _answer(self, items: list[Obj], kind: str, name: str | None) -> Response:
        if name is not None:
            if not items:
                plural = "nodes" if kind == "NodeMetrics" else "pods"
                raise errors.NotFound(
                    f'{plural}.{GROUP} "{name}" not found',
                    details={"name": name, "group": GROUP, "kind": plural},
                )
            return codec.json_response(items[0])
        return codec.json_response(
            {"kind": f"{kind}List", "apiVersion": API_VERSION, "metadata": {}, "items": items}
        )

    # -- building the objects ----------------------------------------------------------------

    async def node_metrics(
        self, name: str | None, labels: str | None, fields: str | None
    ) -> list[Obj]:
        nodes = self._select(NODES, None, name, labels, fields)
        samples = await self.scrape(nodes)
        out = []
        for node in nodes:
            s = samples.get(node["metadata"]["name"])
            if s is None:
                continue
            out.append(
                {
                    "kind": "NodeMetrics",
                    "apiVersion": API_VERSION,
                    "metadata": {
                        "name": node["metadata"]["name"],
                        "creationTimestamp": _rfc3339(time.time()),
                        "labels": (node["metadata"].get("labels") or {}),
                    },
                    "timestamp": _rfc3339(s["timestamp"]),
                    "window": _window(s["window"]),
                    "usage": _usage(s["cpu_nano_cores"], s["memory_bytes"]),
                }
            )
        return out

    async def pod_metrics(
        self, namespace: str | None, name: str | None, labels: str | None, fields: str | None
    ) -> list[Obj]:
        pods = [
            p
            for p in self._select(PODS, namespace, name, labels, fields)
            if (p.get("spec") or {}).get("nodeName")
            and (p.get("status") or {}).get("phase") == "Running"
        ]
        wanted = {p["spec"]["nodeName"] for p in pods}
        nodes = [
            n
            for n in self._select(NODES, None, None, None, None)
            if n["metadata"]["name"] in wanted
        ]
        samples = await self.scrape(nodes)
        by_uid: dict[str, tuple[Obj, Obj]] = {}
        for s in samples.values():
            for ps in s.get("pods") or []:
                by_uid[ps.get("uid", "")] = (s, ps)
        out = []
        for pod in pods:
            m = pod["metadata"]
            found = by_uid.get(m.get("uid", ""))
            if found is None:
                continue
            node_sample, ps = found
            out.append(
                {
                    "kind": "PodMetrics",
                    "apiVersion": API_VERSION,
                    "metadata": {
                        "name": m["name"],
                        "namespace": m.get("namespace"),
                        "creationTimestamp": _rfc3339(time.time()),
                        "labels": m.get("labels") or {},
                    },
                    "timestamp": _rfc3339(node_sample["timestamp"]),
                    "window": _window(node_sample["window"]),
                    "containers": [
                        {
                            "name": c["name"],
                            "usage": _usage(c["cpu_nano_cores"], c["memory_bytes"]),
                        }
                        for c in ps.get("containers") or []
                    ],
                }
            )
        return out

    def _select(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str | None,
        labels: str | None,
        fields: str | None,
    ) -> list[Obj]:
        ls = parse_label_selector(labels) if labels else None
        fs = parse_field_selector(fields) if fields else None
        out = []
        for (_, n), entry in self.registry.list(rt, namespace):
            obj = entry.obj
            if name is not None and n != name:
                continue
            if ls is not None and not ls.matches((obj.get("metadata") or {}).get("labels") or {}):
                continue
            if fs is not None and not fs.matches(obj):
                continue
            out.append(obj)
        return out

    # -- scraping ----------------------------------------------------------------------------

    async def scrape(self, nodes: Iterable[Obj]) -> dict[str, Obj]:
        """Newest sample per node name, for the nodes whose agents answered."""
        endpoints: dict[str, set[str]] = {}
        for node in nodes:
            try:
                endpoints.setdefault(kubelet_address(node), set()).add(node["metadata"]["name"])
            except errors.ApiError:
                continue
        results = await asyncio.gather(*(self._fetch(ep) for ep in endpoints))
        now = time.time()
        out: dict[str, Obj] = {}
        for (_, names), samples in zip(endpoints.items(), results, strict=True):
            for s in samples:
                if s.get("name") in names and now - float(s.get("timestamp", 0)) <= self.max_age:
                    out[s["name"]] = s
        return out

    async def _fetch(self, endpoint: str) -> list[Obj]:
        cached = self._cache.get(endpoint)
        if cached is not None and time.monotonic() - cached[0] < self.cache_ttl:
            return cached[1]
        pending = self._inflight.get(endpoint)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[list[Obj]] = asyncio.get_running_loop().create_future()
        self._inflight[endpoint] = fut
        try:
            samples = await self._get(endpoint)
            self._cache[endpoint] = (time.monotonic(), samples)
            fut.set_result(samples)
            return samples
        finally:
            if not fut.done():
                fut.set_result([])
            self._inflight.pop(endpoint, None)

    async def _get(self, endpoint: str) -> list[Obj]:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout, transport=self._transport)
        try:
            resp = await self._http.get(f"http://{endpoint}/metrics/resource?format=json")
            resp.raise_for_status()
            return list(resp.json().get("nodes") or [])
        except (httpx.HTTPError, ValueError) as err:
            log.info("metrics: node agent %s did not answer: %s", endpoint, err)
            return []

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
