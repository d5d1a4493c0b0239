"""The API server application: wiring of store, registry, discovery, OpenAPI and endpoints."""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from apiserver import codec, discovery, metrics_api, openapi, portforward, proxy
from apiserver.auth import Attributes, Authorizer, Decision
from apiserver.auth import bootstrap as rbac_defaults
from apiserver.auth.filters import Gate, SecurityOptions, build_authorizer, secure
from apiserver.auth.node import NodeRestriction
from apiserver.auth.rbac import Aggregator, EscalationCheck, RBACAuthorizer
from apiserver.auth.reviews import Reviews
from apiserver.auth.reviews import target as review_target
from apiserver.crd import CrdStrategy
from apiserver.endpoints_reconciler import EndpointsReconciler
from apiserver.registry import Registry, WriteOptions
from apiserver.rest import ResourceHandler
from apiserver.service_alloc import DEFAULT_NODE_PORTS, DEFAULT_SERVICE_CIDR
from apiserver.serviceaccount_admission import ServiceAccountAdmission
from apiserver.store import Store
from apiserver.strategies import PodStrategy, ServiceStrategy
from machinery import errors
from machinery.kinds import Registry as Kinds
from machinery.kinds import lookup

VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-tugboat",
    "gitCommit": "tugboat",
    "gitTreeState": "clean",
    "buildDate": "2026-11-28T00:00:00Z",
    "goVersion": f"python{platform.python_version()}",
    "compiler": "cpython",
    "platform": f"linux/{platform.machine()}",
}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

REQUESTS = Counter("apiserver_request_total", "API requests by verb and code", ["verb", "code"])
LATENCY = Histogram(
    "apiserver_request_duration_seconds",
    "API request latency by verb",
    ["verb"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class RequestMetrics:
    """Pure ASGI middleware counting requests by verb and code and timing them (cheaper than
    Starlette's BaseHTTPMiddleware, which copies every response body through a queue)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        code = 500

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            verb = scope["method"]
            LATENCY.labels(verb).observe(time.perf_counter() - start)
            REQUESTS.labels(verb, str(code)).inc()


class FastPath:
    """The ASGI entry point: resource requests (``/api/v1/...``, ``/apis/G/V/...``) go straight
    to their handlers, everything else (discovery, OpenAPI, health, WebSockets, lifespan)
    through the FastAPI app. FastAPI's middleware and routing layers cost about as much CPU as
    the request itself on the hot path, and the resource handlers need none of them."""

    def __init__(self, app: FastAPI, core: Any, groups: Any) -> None:
        self.app = app
        self.state = app.state
        self.routes = (("/api/", core), ("/apis/", groups))
        # The metric children per verb and (verb, code): ``labels()`` takes a lock per call.
        self._latency: dict[str, Any] = {}
        self._requests: dict[tuple[str, int], Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            for prefix, endpoint in self.routes:
                if path.startswith(prefix) and len(path) > len(prefix):
                    await self._serve(endpoint, path[len(prefix) :], scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self, endpoint: Any, rest: str, scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        start = time.perf_counter()
        request = Request({**scope, "path_params": {"rest": rest}}, receive)
        try:
            response = await endpoint(request)
        except errors.ApiError as err:
            response = codec.error_response(err)
        await response(scope, receive, send)
        verb, code = scope["method"], response.status_code
        latency = self._latency.get(verb)
        if latency is None:
            latency = self._latency[verb] = LATENCY.labels(verb)
        latency.observe(time.perf_counter() - start)
        requests = self._requests.get((verb, code))
        if requests is None:
            requests = self._requests[verb, code] = REQUESTS.labels(verb, str(code))
        requests.inc()


class ApiServer:
    """Everything one API server process holds."""

    def __init__(
        self,
        storage_url: str,
        *,
        history: int = 50000,
        service_cidr: str = DEFAULT_SERVICE_CIDR,
        node_ports: str = DEFAULT_NODE_PORTS,
    ) -> None:
        self.store = Store(storage_url, history=history)
        self.kinds = Kinds()
        self.registry = Registry(self.store)
        self.services = ServiceStrategy(self.registry, service_cidr, node_ports)
        self.registry.strategies.register("/services", self.services)
        self.crds = CrdStrategy(self.registry, self.kinds)
        self.registry.strategies.register(
            "apiextensions.k8s.io/customresourcedefinitions", self.crds
        )
        self.handler = ResourceHandler(self.registry, self.kinds)
        pods = self.registry.strategies.by_resource["/pods"]
        assert isinstance(pods, PodStrategy)
        pods.service_accounts = ServiceAccountAdmission(
            self.registry, lambda: self.handler.token_requests is not None
        )
        #: ``--authorization-mode`` when security is on; the chain is built at start, over the
        #: loaded watch cache (see :func:`apiserver.auth.filters.build_authorizer`).
        self.authorization_modes: Sequence[str] | None = None
        self.authorizer: Authorizer | None = None
        self.rbac: RBACAuthorizer | None = None  # the chain's RBAC authorizer, if any
        self.aggregator: Aggregator | None = None
        self.reviews = Reviews(self.authorize, lambda: self.rbac)
        self._openapi: dict[str, tuple[str, bytes]] = {}
        self._openapi_kinds: int = -1

    async def start(self) -> None:
        await self.store.start()
        for _, entry in self.store.cache.list("apiextensions.k8s.io/customresourcedefinitions"):
            self.crds.serve(entry.obj)
        self.store.cache.listen("apiextensions.k8s.io/customresourcedefinitions", self.crds.follow)
        self.store.cache.listen("/services", self.services.follow)
        await self._bootstrap()
        if self.authorization_modes is not None:
            self.authorizer = build_authorizer(self.authorization_modes, self.store.cache)
        self._start_rbac()

    def _start_rbac(self) -> None:
        """NodeRestriction and RBAC escalation admission, and ClusterRole aggregation."""
        chain = getattr(self.authorizer, "authorizers", ())
        self.rbac = next((a for a in chain if isinstance(a, RBACAuthorizer)), None)
        self.registry.admission.append(NodeRestriction())
        if self.rbac is not None:
            self.registry.admission.append(EscalationCheck(self.rbac, self.authorize))
        resolver = self.rbac or RBACAuthorizer(self.store.cache)
        self.aggregator = Aggregator(self.registry, resolver, lookup("clusterroles"))
        self.aggregator.start()

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        """The authorizer chain's decision; everything is allowed when security is off."""
        if self.authorizer is None:
            return Decision.ALLOW, ""
        return self.authorizer.authorize(attrs)

    async def _bootstrap(self) -> None:
        ns_rt, svc_rt = lookup("namespaces"), lookup("services")
        for ns in SYSTEM_NAMESPACES:
            if self.registry.find(ns_rt, None, ns) is None:
                with contextlib.suppress(errors.AlreadyExists):
                    await self.registry.create(
                        ns_rt, None, {"metadata": {"name": ns}}, WriteOptions()
                    )
        if self.registry.find(svc_rt, "default", "kubernetes") is None:
            svc = {
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": self.services.ips.kubernetes_ip,
                    "ports": [
                        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
                    ],
                },
            }
            with contextlib.suppress(errors.AlreadyExists):
                await self.registry.create(svc_rt, "default", svc, WriteOptions())
        await rbac_defaults.ensure(self.registry)

    def openapi_doc(self, gv: str) -> tuple[str, bytes] | None:
        """(hash, JSON) of the OpenAPI v3 document for ``api/v1`` or ``apis/G/V``."""
        signature = hash(tuple((t.group, t.version, t.plural) for t in self.kinds.types))
        if signature != self._openapi_kinds:
            self._openapi, self._openapi_kinds = {}, signature
        if gv not in self._openapi:
            parts = gv.split("/")
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            doc = openapi.document(self.kinds, group, version, self._crd_schemas())
            if doc is None:
                return None
            self._openapi[gv] = (openapi.digest(doc), orjson.dumps(doc))
        return self._openapi[gv]

    def _crd_schemas(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _, entry in self.store.cache.list("apiextensions.k8s.io/customresourcedefinitions"):
            spec = entry.obj.get("spec") or {}
            for v in spec.get("versions") or []:
                schema = (v.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
                name = f"{spec.get('group')}.{v['name']}.{spec.get('names', {}).get('kind')}"
                out[name] = schema | {
                    "x-kubernetes-group-version-kind": [
                        {
                            "group": spec.get("group"),
                            "version": v["name"],
                            "kind": spec.get("names", {}).get("kind"),
                        }
                    ]
                }
        return out


def create_app(
    storage_url: str,
    *,
    history: int = 50000,
    advertise: tuple[str, int] | None = None,
    security: SecurityOptions | None = None,
    service_cidr: str = DEFAULT_SERVICE_CIDR,
    node_ports: str = DEFAULT_NODE_PORTS,
) -> FastPath | Gate:
    """The ASGI application for one API server over ``storage_url``; with ``advertise``
    (address, port) it publishes itself as an endpoint of the ``kubernetes`` Service; with
    ``security`` every request is authenticated and authorized (:mod:`apiserver.auth.filters`)."""
    server = ApiServer(
        storage_url, history=history, service_cidr=service_cidr, node_ports=node_ports
    )
    endpoints = EndpointsReconciler(server.registry, *advertise) if advertise else None
    metrics = metrics_api.MetricsApi(server.registry)
    for rt in metrics_api.RESOURCES:
        server.kinds.add(rt)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await server.start()
        if endpoints is not None:
            endpoints.start()
        try:
            yield
        finally:
            if endpoints is not None:
                await endpoints.stop()
            if server.aggregator is not None:
                await server.aggregator.stop()
            await metrics.aclose()
            await server.store.stop()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(RequestMetrics)
    app.state.server = server
    handler, kinds = server.handler, server.kinds

    async def version(_: Request) -> Response:
        return codec.json_response(VERSION)

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def prom(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def api_root(request: Request) -> Response:
        if discovery.wants_aggregated(request.headers.get("accept")):
            return Response(
                orjson.dumps(discovery.aggregated(kinds, legacy=True)),
                media_type=discovery.AGGREGATED,
            )
        return codec.json_response(discovery.api_versions())

    async def apis_root(request: Request) -> Response:
        if discovery.wants_aggregated(request.headers.get("accept")):
            return Response(
                orjson.dumps(discovery.aggregated(kinds, legacy=False)),
                media_type=discovery.AGGREGATED,
            )
        return codec.json_response(discovery.api_group_list(kinds))

    async def core(request: Request) -> Response:
        rest: str = request.path_params["rest"]
        version, _, tail = rest.partition("/")
        if not tail.strip("/"):
            doc = discovery.api_resource_list(kinds, "", version)
            if doc is None or request.method != "GET":
                return codec.error_response(
                    errors.NotFound("the server could not find the requested resource")
                )
            return codec.json_response(doc)
        return await handler.handle(request, "", version, tail)

    async def groups(request: Request) -> Response:
        rest: str = request.path_params["rest"]
        parts = rest.split("/", 2)
        group = parts[0]
        if len(parts) == 1 or not parts[1]:
            doc = discovery.api_group(kinds, group)
        elif len(parts) == 2 or not parts[2].strip("/"):
            doc = discovery.api_resource_list(kinds, group, parts[1])
        elif group == metrics_api.GROUP:
            return await metrics.handle(request, parts[1], parts[2])
        elif parts[1] == "v1" and review_target(group, parts[2]) is not None:
            return await server.reviews.handle(request, group, parts[1], parts[2])
        else:
            return await handler.handle(request, group, parts[1], parts[2])
        if doc is None or request.method != "GET":
            return codec.error_response(
                errors.NotFound("the server could not find the requested resource")
            )
        return codec.json_response(doc)

    async def openapi_index(_: Request) -> Response:
        hashes = {}
        for t in kinds.types:
            gv = f"apis/{t.group}/{t.version}" if t.group else f"api/{t.version}"
            if gv not in hashes:
                doc = server.openapi_doc(gv)
                hashes[gv] = doc[0] if doc else "0"
        return codec.json_response(openapi.index(kinds, hashes))

    async def openapi_gv(request: Request) -> Response:
        doc = server.openapi_doc(request.path_params["rest"].strip("/"))
        if doc is None:
            return codec.error_response(errors.NotFound("no such OpenAPI document"))
        return Response(doc[1], media_type=codec.JSON)

    async def openapi_v2(_: Request) -> Response:
        return codec.error_response(errors.NotFound("OpenAPI v2 is not served; use /openapi/v3"))

    all_methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app.add_route("/version", version, ["GET"])
    app.add_route("/version/", version, ["GET"])
    for path in ("/healthz", "/livez", "/readyz"):
        app.add_route(path, health, ["GET"])
    app.add_route("/metrics", prom, ["GET"])
    app.add_route("/api", api_root, ["GET"])
    app.add_route("/api/", api_root, ["GET"])
    app.add_route("/apis", apis_root, ["GET"])
    app.add_route("/apis/", apis_root, ["GET"])
    app.router.add_websocket_route(
        portforward.WS_PATH, portforward.websocket_endpoint(server.registry)
    )
    app.router.add_websocket_route(proxy.WS_PATH, proxy.websocket_endpoint(server.registry))
    app.add_route("/api/{rest:path}", core, all_methods)
    app.add_route("/apis/{rest:path}", groups, all_methods)
    app.add_route("/openapi/v3", openapi_index, ["GET"])
    app.add_route("/openapi/v3/{rest:path}", openapi_gv, ["GET"])
    app.add_route("/openapi/v2", openapi_v2, ["GET"])
    fast = FastPath(app, core, groups)
    return fast if security is None else secure(fast, server, security)
