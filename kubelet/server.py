"""The node agent's HTTP server (what the API server proxies ``pods/log`` and ``pods/exec`` to).

Routes (the Kubernetes kubelet's paths):

- ``GET /containerLogs/{namespace}/{pod}/{container}?follow&tailLines&previous&timestamps&
  sinceSeconds&sinceTime&limitBytes`` → ``text/plain``, streamed (flushed per line) with follow.
  Errors are Kubernetes Status objects: 404 for an unknown pod, 400 for an unknown container,
  one waiting to start, or a missing previous instance.
- ``/exec/{namespace}/{pod}/{container}?command=...&stdin&stdout&stderr&tty`` (and
  ``/attach/...``, the same without a command, through CRI Attach) over WebSocket
  with the channel protocol (``v5.channel.k8s.io``, ``v4.channel.k8s.io``): binary frames whose
  first byte is the stream (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close). The
  session ends with one status frame: ``Success`` or ``NonZeroExitCode`` with the code in
  ``details.causes[ExitCode]``. Every exec (with or without stdin and tty) goes through CRI
  Exec, attach through CRI Attach: output streams as it is produced, with no deadline, and
  the frames are relayed to the runtime's streaming server (:mod:`kubelet.streaming`).
  Refusals come before the upgrade, in plain text as the kubelet's: ``500 container not found
  ("c")`` when the pod or its container is not running here, ``400`` for a container the pod
  does not have or a request without a command or streams.
- ``/portForward/{namespace}/{pod}?port=N`` over WebSocket: one forwarded TCP connection
  (see :mod:`kubelet.portforward`).
- ``GET /stats/summary`` (node and pod CPU/memory from CRI stats), ``GET /pods``,
  ``GET /healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import metrics as resource_metrics
from .cri.errors import CriError
from .cri.logs import parse_timestamp
from .logs import LogOptions, follow
from .observe import RUNNING, ContainerRecord, observe
from .portforward import PortForwarder
from .specs import meta, spec
from .streaming import STATUS, StreamError, Streams, failure, open_session, relay

log = logging.getLogger(__name__)

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
Obj = dict[str, Any]


def status_response(code: int, reason: str, message: str) -> JSONResponse:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return JSONResponse(body, status_code=code)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


PULL_FAILURES = {
    "ErrImagePull": "image can't be pulled",
    "ImagePullBackOff": "trying and failing to pull image",
}


def waiting_message(pod: Obj, container: str) -> str:
    """Kubernetes' words for logs of a container with no instance yet, from its waiting
    reason in the pod's status (``ContainerCreating`` when there is none)."""
    status = pod.get("status") or {}
    reason = "ContainerCreating"
    for s in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if s.get("name") == container:
            reason = ((s.get("state") or {}).get("waiting") or {}).get("reason") or reason
    name = meta(pod).get("name")
    detail = PULL_FAILURES.get(reason, reason)
    return f'container "{container}" in pod "{name}" is waiting to start: {detail}'


class Refusal(Exception):
    """Why an exec or attach is refused before the upgrade: plain text, as the kubelet's."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    def response(self) -> Response:
        return PlainTextResponse(str(self), status_code=self.code)


class Lookup(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.response = status_response(code, reason, message)


class NodeServer:
    """The routes, bound to one :class:`~kubelet.agent.NodeAgent`."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.app = Starlette(
            routes=[
                Route("/healthz", self.healthz),
                Route("/pods", self.pods),
                Route("/stats/summary", self.stats),
                Route("/containerLogs/{namespace}/{pod}/{container}", self.logs),
                WebSocketRoute("/exec/{namespace}/{pod}/{container}", self.exec),
                WebSocketRoute("/attach/{namespace}/{pod}/{container}", self.exec),
                WebSocketRoute("/portForward/{namespace}/{pod}", PortForwarder(agent).serve),
                *resource_metrics.routes(lambda: [agent.sampler] if agent.sampler else []),
            ]
        )

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def pods(self, request: Request) -> Response:
        items = list(self.agent.pods.values())
        return JSONResponse({"kind": "PodList", "apiVersion": "v1", "items": items})

    # -- lookups -----------------------------------------------------------------------------

    def _pod(self, namespace: str, name: str) -> Obj:
        pod = self.agent.find_pod(namespace, name)
        if pod is None:
            raise Lookup(404, "NotFound", f'pods "{name}" not found')
        return pod

    async def _instance(self, pod: Obj, container: str, previous: bool) -> ContainerRecord:
        names = [c["name"] for c in (spec(pod).get("containers") or [])]
        names += [c["name"] for c in (spec(pod).get("initContainers") or [])]
        pod_name = meta(pod).get("name")
        if container not in names:
            raise Lookup(
                400, "BadRequest", f"container {container} is not valid for pod {pod_name}"
            )
        rt = await observe(self.agent.runtime, meta(pod)["uid"], self.agent.name)
        record = rt.previous(container) if previous else rt.latest(container)
        if record is None:
            if previous:
                raise Lookup(
                    400,
                    "BadRequest",
                    f'previous terminated container "{container}" in pod "{pod_name}" not found',
                )
            raise Lookup(400, "BadRequest", waiting_message(pod, container))
        return record

    # -- logs --------------------------------------------------------------------------------

    async def logs(self, request: Request) -> Response:
        p, q = request.path_params, request.query_params
        try:
            pod = self._pod(p["namespace"], p["pod"])
            record = await self._instance(pod, p["container"], _flag(q.get("previous")))
            opts = self._log_options(q)
        except Lookup as err:
            return err.response
        runtime = self.agent.runtime

        async def running() -> bool:
            try:
                status = await runtime.container_status(record.id)
            except CriError:
                return False
            return status.state == 1  # CONTAINER_RUNNING

        stream = follow(record.log_path, opts, running)
        return StreamingResponse(stream, media_type="text/plain")

    @staticmethod
    def _log_options(q: Any) -> LogOptions:
        try:
            since_ns = None
            if q.get("sinceSeconds"):
                since_ns = int((time.time() - int(q["sinceSeconds"])) * 1e9)
            elif q.get("sinceTime"):
                since_ns = parse_timestamp(q["sinceTime"])
            return LogOptions(
                follow=_flag(q.get("follow")),
                tail_lines=int(q["tailLines"]) if q.get("tailLines") else None,
                since_ns=since_ns,
                timestamps=_flag(q.get("timestamps")),
                limit_bytes=int(q["limitBytes"]) if q.get("limitBytes") else None,
                previous=_flag(q.get("previous")),
            )
        except ValueError as err:
            raise Lookup(400, "BadRequest", f"invalid log options: {err}") from None

    # -- exec --------------------------------------------------------------------------------

    async def exec(self, ws: WebSocket) -> None:
        p, q = ws.path_params, ws.query_params
        offered = [
            x.strip()
            for x in (ws.headers.get("sec-websocket-protocol") or "").split(",")
            if x.strip()
        ]
        protocol = next((x for x in offered if x in PROTOCOLS), None)
        command = q.getlist("command")
        attach = ws.url.path.startswith("/attach/")
        tty = _flag(q.get("tty"))
        streams = Streams(
            stdin=_flag(q.get("stdin")),
            stdout=_flag(q.get("stdout") or "1"),
            stderr=_flag(q.get("stderr") or "1") and not tty,
            tty=tty,
        )
        try:
            container_id = await self._running_container(p["namespace"], p["pod"], p["container"])
            if not command and not attach:
                raise Refusal(400, "you must specify at least 1 command")
            if not (streams.stdin or streams.stdout or streams.stderr):
                raise Refusal(400, "you must specify at least 1 of stdin, stdout, stderr")
        except Refusal as refusal:
            await ws.send_denial_response(refusal.response())
            return
        await ws.accept(subprotocol=protocol)
        try:
            if attach:
                url = await self.agent.runtime.attach(
                    container_id,
                    tty=streams.tty,
                    stdin=streams.stdin,
                    stdout=streams.stdout,
                    stderr=streams.stderr,
                )
            else:
                url = await self.agent.runtime.exec(
                    container_id,
                    command,
                    tty=streams.tty,
                    stdin=streams.stdin,
                    stdout=streams.stdout,
                    stderr=streams.stderr,
                )
            session = await open_session(url, streams)
        except (CriError, StreamError) as err:
            verb = "attaching to" if attach else "executing command in"
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await ws.send_bytes(bytes([STATUS]) + failure(f"error {verb} container: {err}"))
                await ws.close()
            return
        await relay(ws, session)
        with contextlib.suppress(Exception):
            await ws.close()

    async def _running_container(self, namespace: str, name: str, container: str) -> str:
        """The runtime id of the running ``container`` (:class:`Refusal` as the kubelet's)."""
        pod = self.agent.find_pod(namespace, name)
        not_found = Refusal(500, f'container not found ("{container}")')
        if pod is None:
            raise not_found
        names = [c["name"] for c in (spec(pod).get("containers") or [])]
        names += [c["name"] for c in (spec(pod).get("initContainers") or [])]
        if container not in names:
            raise Refusal(400, f"container {container} is not valid for pod {name}")
        rt = await observe(self.agent.runtime, meta(pod)["uid"], self.agent.name)
        record = rt.latest(container)
        if record is None or record.state != RUNNING:
            raise not_found
        return record.id

    # -- stats -------------------------------------------------------------------------------

    async def stats(self, request: Request) -> Response:
        runtime = self.agent.runtime
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        pods = []
        for s in await runtime.list_pod_sandbox_stats(labels={"tugboat.io/node": self.agent.name}):
            md = s.attributes.metadata
            containers = [
                {
                    "name": c.attributes.metadata.name,
                    "cpu": {
                        "time": now,
                        "usageNanoCores": c.cpu.usage_nano_cores.value,
                        "usageCoreNanoSeconds": c.cpu.usage_core_nano_seconds.value,
                    },
                    "memory": {
                        "time": now,
                        "workingSetBytes": c.memory.working_set_bytes.value,
                        "usageBytes": c.memory.usage_bytes.value,
                    },
                }
                for c in s.linux.containers
            ]
            pods.append(
                {
                    "podRef": {"name": md.name, "namespace": md.namespace, "uid": md.uid},
                    "cpu": {
                        "time": now,
                        "usageNanoCores": s.linux.cpu.usage_nano_cores.value,
                        "usageCoreNanoSeconds": s.linux.cpu.usage_core_nano_seconds.value,
                    },
                    "memory": {
                        "time": now,
                        "workingSetBytes": s.linux.memory.working_set_bytes.value,
                    },
                    "containers": containers,
                }
            )
        node = {
            "nodeName": self.agent.name,
            "cpu": {
                "time": now,
                "usageNanoCores": sum(p["cpu"]["usageNanoCores"] for p in pods),
            },
            "memory": {
                "time": now,
                "workingSetBytes": sum(p["memory"]["workingSetBytes"] for p in pods),
            },
        }
        return JSONResponse({"node": node, "pods": pods})


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the node agent owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RunningServer:
    """A uvicorn server running as a task; :meth:`stop` shuts it down."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None]) -> None:
        self.server = server
        self.task = task

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets if self.server.servers else []
        return int(sockets[0].getsockname()[1]) if sockets else 0

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self.task, 5)


async def serve(agent: Any, host: str, port: int) -> RunningServer:
    """Start serving ``agent`` on ``host:port`` (0: any free port; see ``.port``)."""
    config = uvicorn.Config(
        NodeServer(agent).app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        ws="websockets-sansio",
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(), name=f"node server {agent.name}")
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done():
            task.result()
        if time.monotonic() > deadline:
            raise RuntimeError("node server did not start")
        await asyncio.sleep(0.01)
    return RunningServer(server, task)
