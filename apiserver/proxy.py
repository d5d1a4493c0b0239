"""Proxy of ``pods/log``, ``pods/exec`` and ``pods/attach`` to the pod's node agent.

The node agent is reached at the node's ``InternalIP`` (``status.addresses``) and
``status.daemonEndpoints.kubeletEndpoint.Port``, on the Kubernetes kubelet's paths:
``/containerLogs/{ns}/{pod}/{container}``, ``/exec/...`` and ``/attach/...``.

Contracts:

- The container defaults to the pod annotation ``kubectl.kubernetes.io/default-container``,
  else the first container; an unknown container is 400 BadRequest, as is a pod that has no
  node yet. A node without an address or port is 503 ServiceUnavailable; an unreachable
  node agent is 500 InternalError naming the address.
- ``pods/log`` is streamed: each chunk the node agent sends (it flushes per line with
  ``follow``) is forwarded as it arrives; the upstream request ends when the client goes.
  The node agent's status code and body (a ``Status`` on error) are passed through, except
  its 404 (it has not seen the pod yet): that is 400 ``container "c" in pod "p" is waiting to
  start: ContainerCreating``, as Kubernetes answers for a pod not started.
- ``pods/exec`` and ``pods/attach`` over WebSocket: the upstream connection is opened first
  with the subprotocols the client offered (``v5.channel.k8s.io``, ``v4.channel.k8s.io``, ...);
  the client is then accepted with the protocol the node agent chose and binary frames are
  relayed both ways unchanged (v5's stdin close included) until either side closes.
- Refusals: ours (no such pod or container, no node, no command) are HTTP ``Status``
  responses; kubectl then retries with a plain SPDY ``POST``, which the REST path answers with
  the same checks, so the user sees e.g. ``container x is not valid for pod y``. The node
  agent's refusal (``container not found ("c")``) is reported the way Kubernetes' stream
  translator does: the client is accepted and gets one channel-3 Status, ``Internal error
  occurred: unable to upgrade connection: ...`` (a Status body from the agent is used as is).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import websockets
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from machinery import channels, errors
from machinery.kinds import lookup

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS, NODES = lookup("pods"), lookup("nodes")
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
PATHS = {"log": "containerLogs", "exec": "exec", "attach": "attach"}
WS_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/{subresource}"
CONNECT_TIMEOUT = 10.0
STREAM_SUBRESOURCES = ("exec", "attach", "portforward")  # portforward: apiserver/portforward.py
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io")


def resolve(registry: Any, namespace: str, name: str) -> tuple[Obj, Obj]:
    """The pod and the node it is bound to (NotFound / BadRequest otherwise)."""
    pod = registry.get(PODS, namespace, name).obj
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.BadRequest(f"pod {name} does not have a host assigned")
    return pod, registry.get(NODES, None, node_name).obj


def pick_container(pod: Obj, requested: str | None) -> str:
    """The container a request is about (see the module docstring)."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    names += [c["name"] for c in spec.get("initContainers") or []]
    names += [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not requested:
        requested = (meta.get("annotations") or {}).get(DEFAULT_CONTAINER)
    if not requested:
        if not names:
            raise errors.BadRequest(f"pod {meta.get('name')} has no containers")
        return names[0]
    if requested not in names:
        raise errors.BadRequest(f"container {requested} is not valid for pod {meta.get('name')}")
    return requested


def kubelet_address(node: Obj) -> str:
    """``host:port`` of the node agent."""
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    host = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), None)
    host = host or next((a["address"] for a in addresses if a.get("address")), None)
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    name = (node.get("metadata") or {}).get("name")
    if not host or not port:
        raise errors.ServiceUnavailable(f"node {name} has no reachable node agent endpoint")
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{int(port)}"


def kubelet_path(pod: Obj, subresource: str, container: str) -> str:
    meta = pod.get("metadata") or {}
    parts = (PATHS[subresource], meta.get("namespace", ""), meta.get("name", ""), container)
    return "/" + "/".join(quote(p, safe="") for p in parts)


def _query_without_container(query: str) -> str:
    return "&".join(p for p in query.split("&") if p and not p.startswith("container="))


async def proxy_to_kubelet(request: Request, pod: Obj, node: Obj, subresource: str) -> Response:
    """Serve an HTTP ``pods/<subresource>`` request by forwarding it to the node agent."""
    if subresource in STREAM_SUBRESOURCES:
        if subresource != "portforward":  # the same checks as the WebSocket (kubectl's retry)
            _check_stream_request(pod, subresource, request.query_params)
        raise errors.BadRequest(f"Upgrade request required for pods/{subresource}")
    if subresource not in PATHS:
        raise errors.NotFound("the server could not find the requested resource")
    if request.method != "GET":
        raise errors.MethodNotAllowed(f"{request.method} is not allowed on pods/{subresource}")
    container = pick_container(pod, request.query_params.get("container"))
    address = kubelet_address(node)
    url = f"http://{address}{kubelet_path(pod, subresource, container)}"
    query = _query_without_container(request.url.query)
    http = httpx.AsyncClient(timeout=httpx.Timeout(CONNECT_TIMEOUT, read=None))
    try:
        upstream = await http.send(http.build_request("GET", url, params=query), stream=True)
    except httpx.HTTPError as err:
        await http.aclose()
        raise errors.InternalError(f"error dialing node agent {address}: {err}") from None
    if upstream.status_code == 404 and subresource == "log":
        # the pod exists (we just read it) but its node has not started it yet
        await upstream.aclose()
        await http.aclose()
        raise errors.BadRequest(_waiting_to_start(pod, container))
    headers = {"Content-Type": upstream.headers.get("content-type", "text/plain")}

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError as err:
            log.info("log stream from %s ended: %s", address, err)
        finally:
            await upstream.aclose()
            await http.aclose()

    return StreamingResponse(body(), status_code=upstream.status_code, headers=headers)


# -- WebSocket: exec and attach -----------------------------------------------------------------


def _offered(ws: WebSocket) -> list[str]:
    header = ws.headers.get("sec-websocket-protocol") or ""
    return [p.strip() for p in header.split(",") if p.strip()]


async def _deny(ws: WebSocket, err: errors.ApiError) -> None:
    body = orjson.dumps(err.status())
    response = Response(body, status_code=err.code, media_type="application/json")
    try:
        await ws.send_denial_response(response)
    except RuntimeError:  # the server lacks the denial-response extension
        await ws.close(code=1008, reason=str(err)[:120])


def _waiting_to_start(pod: Obj, container: str) -> str:
    name = (pod.get("metadata") or {}).get("name")
    return f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'


def _check_stream_request(pod: Obj, subresource: str, query: Any) -> str:
    """The container of an exec or attach request (BadRequest when the request is wrong)."""
    container = pick_container(pod, query.get("container"))
    if subresource == "exec" and not query.getlist("command"):
        raise errors.BadRequest("you must specify at least 1 command")
    return container


async def proxy_websocket(ws: WebSocket, pod: Obj, node: Obj, subresource: str) -> None:
    """Relay a ``pods/exec`` or ``pods/attach`` WebSocket to the node agent."""
    try:
        if subresource not in STREAM_SUBRESOURCES:
            raise errors.BadRequest(f"pods/{subresource} does not support WebSocket")
        container = _check_stream_request(pod, subresource, ws.query_params)
        address = kubelet_address(node)
    except errors.ApiError as err:
        await _deny(ws, err)
        return
    url = f"ws://{address}{kubelet_path(pod, subresource, container)}"
    query = _query_without_container(ws.url.query)
    if query:
        url += "?" + query
    try:
        upstream = await websockets.connect(
            url,
            subprotocols=_offered(ws) or None,  # type: ignore[arg-type]
            max_size=None,
            open_timeout=CONNECT_TIMEOUT,
            ping_interval=None,
        )
    except websockets.InvalidStatus as refused:
        await _report_refusal(ws, refused.response.status_code, refused.response.body or b"")
        return
    except (OSError, TimeoutError, websockets.WebSocketException) as err:
        await _deny(ws, errors.InternalError(f"error dialing node agent {address}: {err}"))
        return
    async with upstream:
        await ws.accept(subprotocol=upstream.subprotocol)
        await _relay(ws, upstream)


def refusal_status(code: int, body: bytes) -> Obj:
    """The Status for a node agent's refusal, as Kubernetes' stream translator words it: a
    Status body as is, anything else ``Internal error occurred: unable to upgrade connection:
    <text>``."""
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        return errors.from_status(orjson.loads(body), code).status()
    text = body.decode(errors="replace").strip() or f"HTTP {code}"
    cause = f"unable to upgrade connection: {text}"
    return errors.InternalError(
        f"Internal error occurred: {cause}", causes=[{"message": cause}]
    ).status()


async def _report_refusal(ws: WebSocket, code: int, body: bytes) -> None:
    """Accept the client and end its session with the refusal's Status on channel 3, so
    kubectl prints it (a non-101 answer would only make it retry over SPDY)."""
    offered = _offered(ws)
    protocol = next((p for p in CHANNEL_PROTOCOLS if p in offered), None)
    await ws.accept(subprotocol=protocol)
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await ws.send_bytes(bytes([channels.STATUS]) + orjson.dumps(refusal_status(code, body)))
        await ws.close()


async def _relay(ws: WebSocket, upstream: Any) -> None:
    async def client_to_node() -> None:
        try:
            async for data in channels.received(ws):
                await upstream.send(data)
        except (WebSocketDisconnect, websockets.ConnectionClosed):
            return

    async def node_to_client() -> None:
        with contextlib.suppress(websockets.ConnectionClosed, WebSocketDisconnect, RuntimeError):
            async for data in upstream:
                await ws.send_bytes(data if isinstance(data, bytes) else data.encode())

    sender = asyncio.create_task(client_to_node())
    receiver = asyncio.create_task(node_to_client())
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, receiver):
            task.cancel()
        await asyncio.gather(sender, receiver, return_exceptions=True)
        await upstream.close()
        with contextlib.suppress(Exception):
            await ws.close()


def websocket_endpoint(registry: Any) -> Any:
    """A Starlette WebSocket endpoint for :data:`WS_PATH` over ``registry``."""

    async def endpoint(ws: WebSocket) -> None:
        p = ws.path_params
        try:
            pod, node = resolve(registry, p["namespace"], p["name"])
        except errors.ApiError as err:
            await _deny(ws, err)
            return
        await proxy_websocket(ws, pod, node, p["subresource"])

    return endpoint
