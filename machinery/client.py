"""The REST client every component uses to talk to the API server (sync and asyncio).

Requests follow the Kubernetes REST protocol: paths come from :meth:`ResourceType.path`, bodies
are JSON (``orjson``), patches carry the content type of their kind, watches stream
newline-delimited ``{"type", "object"}`` events. Every non-2xx answer is raised as the
:mod:`machinery.errors` class its ``Status`` reason names (a body that is not a ``Status`` maps
by HTTP code); a watch ``ERROR`` event is raised the same way (``Expired`` → ``errors.Gone``).
A ``429 TooManyRequests`` is tried again after its ``Retry-After``, up to ten times, as
client-go does.

Objects travel as plain dicts. Calls on a namespaced type without a namespace use the client's
``namespace`` (from the kubeconfig context, else ``"default"``), except ``list``/``watch`` where no
namespace means every namespace. :class:`Client` and :class:`AsyncClient` share the request
building and response decoding below and differ only in how they do I/O: httpx for
:class:`Client`, :mod:`machinery.http`'s transports (aiohttp by default) for :class:`AsyncClient`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from machinery import errors
from machinery.http import (
    AiohttpTransport,
    HttpxTransport,
    Reply,
    Transport,
    error_from_response,
)
from machinery.kinds import ResourceType
from machinery.kubeconfig import load_kubeconfig

JSON = "application/json"
PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
DEFAULT_PAGE_SIZE = 500
THROTTLE_RETRIES = 10  # tries of a request answered 429 TooManyRequests, as client-go does
MAX_RETRY_AFTER = 10  # seconds: a longer Retry-After is cut to this
WATCH_EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})

Object = dict[str, Any]
Patch = Object | list[Any]  # a merge/strategic/apply document or a JSON patch op list


@dataclass
class _Call:
    """One HTTP request, built without doing any I/O."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str | None = None

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"params": self.params}
        if self.body is not None:
            kw["content"] = orjson.dumps(self.body)
            kw["headers"] = {"Content-Type": self.content_type or JSON}
        return kw


def _params(**values: Any) -> dict[str, str]:
    """Query parameters, dropping unset ones; booleans as ``true``."""
    out: dict[str, str] = {}
    for k, v in values.items():
        if v is None or v is False:
            continue
        out[k] = "true" if v is True else str(v)
    return out


def _meta(obj: Object) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _retry_after(resp: Reply | httpx.Response) -> float:
    """Seconds to wait before retrying a 429: its ``Retry-After`` (whole seconds, at most
    :data:`MAX_RETRY_AFTER`), else one second."""
    value = resp.headers.get("Retry-After", "")
    return float(min(int(value), MAX_RETRY_AFTER)) if value.isdigit() else 1.0


def _decode(resp: Reply | httpx.Response) -> Object:
    if resp.is_error:
        raise error_from_response(resp)
    return orjson.loads(resp.content) if resp.content else {}


def parse_watch_line(line: str | bytes) -> tuple[str, Object] | None:
    """One watch stream line → ``(type, object)``; ``None`` for a blank line.
    An ``ERROR`` event is raised as the exception its ``Status`` names."""
    if not line.strip():
        return None
    event = orjson.loads(line)
    etype, obj = event.get("type"), event.get("object") or {}
    if etype == "ERROR":
        raise errors.from_status(obj, obj.get("code"))
    if etype not in WATCH_EVENT_TYPES:
        raise errors.InternalError(f"unknown watch event type {etype!r}")
    return etype, obj


def _merge_pages(first: Object, items: list[Object]) -> Object:
    merged = dict(first)
    meta = {k: v for k, v in _meta(first).items() if k not in ("continue", "remainingItemCount")}
    merged["metadata"] = meta
    merged["items"] = items
    return merged


def _build_ssl(verify: bool | str | ssl.SSLContext, cert: Any) -> bool | ssl.SSLContext:
    """httpx ``verify`` from a bool, a CA bundle path or a context, plus an optional client
    certificate (a combined PEM path or a ``(cert, key)`` tuple)."""
    if isinstance(verify, bool) and cert is None:
        return verify
    if isinstance(verify, ssl.SSLContext):
        ctx = verify
    else:
        ctx = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        if verify is False:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else (cert[0], cert[1])
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


class _Requests:
    """Request building shared by :class:`Client` and :class:`AsyncClient`."""

    namespace: str
    user_agent: str
    timeout: float

    def _ns(self, rt: ResourceType, namespace: str | None) -> str | None:
        if not rt.namespaced:
            return None
        return namespace or self.namespace

    def _get(
        self, rt: ResourceType, name: str, namespace: str | None, subresource: str | None
    ) -> _Call:
        return _Call("GET", rt.path(self._ns(rt, namespace), name, subresource))

    def _list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> _Call:
        return _Call(
            "GET",
            rt.path(namespace if rt.namespaced else None),
            _params(
                labelSelector=label_selector,
                fieldSelector=field_selector,
                limit=limit,
                resourceVersion=resource_version,
                **{"continue": continue_},
            ),
        )

    def _create(
        self,
        rt: ResourceType,
        obj: Object,
        namespace: str | None,
        subresource: str | None,
        name: str | None,
        dry_run: bool,
        field_manager: str | None,
    ) -> _Call:
        ns = self._ns(rt, namespace or _meta(obj).get("namespace"))
        if subresource and not name:
            raise ValueError("create of a subresource needs the parent's name")
        return _Call(
            "POST",
            rt.path(ns, name, subresource),
            _params(dryRun="All" if dry_run else None, fieldManager=field_manager),
            obj,
        )

    def _update(self, rt: ResourceType, obj: Object, subresource: str | None) -> _Call:
        meta = _meta(obj)
        if not meta.get("name"):
            raise ValueError("update needs metadata.name")
        return _Call(
            "PUT", rt.path(self._ns(rt, meta.get("namespace")), meta["name"], subresource), body=obj
        )

    def _patch(
        self,
        rt: ResourceType,
        name: str,
        patch: Patch,
        namespace: str | None,
        patch_type: str,
        subresource: str | None,
        field_manager: str | None,
        force: bool | None,
    ) -> _Call:
        try:
            content_type = PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"unknown patch type {patch_type!r}") from None
        if patch_type == "apply" and field_manager is None:
            field_manager = self.user_agent  # the server requires one for apply
        params = _params(fieldManager=field_manager)
        if force is not None:
            params["force"] = "true" if force else "false"
        return _Call(
            "PATCH",
            rt.path(self._ns(rt, namespace), name, subresource),
            params,
            patch,
            content_type,
        )

    def _delete(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None,
        propagation_policy: str | None,
        grace_period_seconds: int | None,
        preconditions: dict[str, Any] | None,
    ) -> _Call:
        opts = {
            k: v
            for k, v in (
                ("propagationPolicy", propagation_policy),
                ("gracePeriodSeconds", grace_period_seconds),
                ("preconditions", preconditions),
            )
            if v is not None
        }
        body = {"kind": "DeleteOptions", "apiVersion": "v1", **opts} if opts else None
        return _Call("DELETE", rt.path(self._ns(rt, namespace), name), body=body)

    def _watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        resource_version: str | None,
        label_selector: str | None,
        field_selector: str | None,
        timeout_seconds: int | None,
        allow_bookmarks: bool,
    ) -> _Call:
        return _Call(
            "GET",
            rt.path(namespace if rt.namespaced else None),
            _params(
                watch=True,
                resourceVersion=resource_version,
                allowWatchBookmarks=allow_bookmarks,
                labelSelector=label_selector,
                fieldSelector=field_selector,
                timeoutSeconds=timeout_seconds,
            ),
        )

    def _watch_timeout(self, timeout_seconds: int | None) -> httpx.Timeout:
        """Reads on a watch may be quiet for the whole watch: no read timeout unless bounded."""
        read = timeout_seconds + self.timeout if timeout_seconds else None
        return httpx.Timeout(self.timeout, read=read)


def _http_options(
    server: str,
    token: str | None,
    verify: bool | str | ssl.SSLContext,
    cert: Any,
    timeout: float,
    user_agent: str,
) -> dict[str, Any]:
    headers = {"Accept": JSON, "User-Agent": user_agent}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return {
        "base_url": server.rstrip("/"),
        "headers": headers,
        "verify": _build_ssl(verify, cert),
        "timeout": timeout,
        "trust_env": False,  # a control plane on loopback must not go through $HTTP_PROXY
    }


class Client(_Requests):
    """Synchronous API client. Thread-safe as far as httpx.Client is (one per thread is best)."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        verify: bool | str | ssl.SSLContext = True,
        cert: Any = None,
        timeout: float = 30.0,
        user_agent: str = "tugboat",
        namespace: str = "default",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server
        self.namespace = namespace
        self.timeout = timeout
        self.user_agent = user_agent
        self._http = httpx.Client(
            transport=transport,
            **_http_options(server, token, verify, cert, timeout, user_agent),
        )

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, **kw: Any
    ) -> Client:
        cfg = load_kubeconfig(path, context)
        return cls(
            cfg.server, token=cfg.token, verify=cfg.ssl_context(), namespace=cfg.namespace, **kw
        )

    def _do(self, call: _Call) -> Object:
        for _ in range(THROTTLE_RETRIES):
            resp = self._http.request(call.method, call.path, **call.kwargs())
            if resp.status_code != 429:
                break
            time.sleep(_retry_after(resp))
        return _decode(resp)

    def get(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Object:
        return self._do(self._get(rt, name, namespace, subresource))

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> Object:
        """One List body (one page when ``limit`` is set; follow ``metadata.continue``)."""
        return self._do(
            self._list(
                rt,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=limit,
                continue_=continue_,
                resource_version=resource_version,
            )
        )

    def list_all(self, rt: ResourceType, namespace: str | None = None, **kw: Any) -> Object:
        """Every page, merged into one List whose ``metadata.resourceVersion`` is the first
        page's (the snapshot the pages belong to)."""
        kw.setdefault("limit", DEFAULT_PAGE_SIZE)
        first = page = self.list(rt, namespace, **kw)
        items = list(page.get("items") or [])
        while cont := _meta(page).get("continue"):
            page = self.list(rt, namespace, **{**kw, "continue_": cont, "resource_version": None})
            items.extend(page.get("items") or [])
        return _merge_pages(first, items)

    def create(
        self,
        rt: ResourceType,
        obj: Object,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        name: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Object:
        return self._do(self._create(rt, obj, namespace, subresource, name, dry_run, field_manager))

    def update(self, rt: ResourceType, obj: Object, *, subresource: str | None = None) -> Object:
        return self._do(self._update(rt, obj, subresource))

    def patch(
        self,
        rt: ResourceType,
        name: str,
        patch: Patch,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> Object:
        return self._do(
            self._patch(rt, name, patch, namespace, patch_type, subresource, field_manager, force)
        )

    def delete(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> Object:
        return self._do(
            self._delete(
                rt, name, namespace, propagation_policy, grace_period_seconds, preconditions
            )
        )

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> Iterator[tuple[str, Object]]:
        """Events ``(type, object)`` until the server ends the stream; ``ERROR`` raises.
        Closing the iterator closes the connection."""
        call = self._watch(
            rt,
            namespace,
            resource_version,
            label_selector,
            field_selector,
            timeout_seconds,
            allow_bookmarks,
        )
        with self._http.stream(
            call.method, call.path, **call.kwargs(), timeout=self._watch_timeout(timeout_seconds)
        ) as resp:
            if resp.is_error:
                resp.read()
                raise error_from_response(resp)
            for line in resp.iter_lines():
                if (event := parse_watch_line(line)) is not None:
                    yield event

    def request(self, method: str, path: str, **httpx_kwargs: Any) -> httpx.Response:
        """A raw request (logs, exec, discovery ...); raises the mapped error on failure."""
        resp = self._http.request(method, path, **httpx_kwargs)
        if resp.is_error:
            raise error_from_response(resp)
        return resp

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Requests):
    """The asyncio twin of :class:`Client`: the same methods as coroutines; ``watch`` is an
    async iterator."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        verify: bool | str | ssl.SSLContext = True,
        cert: Any = None,
        timeout: float = 30.0,
        user_agent: str = "tugboat",
        namespace: str = "default",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server = server
        self.namespace = namespace
        self.timeout = timeout
        self.user_agent = user_agent
        options = _http_options(server, token, verify, cert, timeout, user_agent)
        self._http: Transport = (
            HttpxTransport(
                options["base_url"],
                options["headers"],
                verify=options["verify"],
                timeout=timeout,
                transport=transport,
            )
            if transport is not None
            else AiohttpTransport(
                options["base_url"], options["headers"], options["verify"], timeout
            )
        )

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, **kw: Any
    ) -> AsyncClient:
        cfg = load_kubeconfig(path, context)
        return cls(
            cfg.server, token=cfg.token, verify=cfg.ssl_context(), namespace=cfg.namespace, **kw
        )

    async def _do(self, call: _Call) -> Object:
        content = orjson.dumps(call.body) if call.body is not None else None
        headers = {"Content-Type": call.content_type or JSON} if content is not None else None
        for _ in range(THROTTLE_RETRIES):
            resp = await self._http.send(
                call.method, call.path, params=call.params, content=content, headers=headers
            )
            if resp.status_code != 429:
                break
            await asyncio.sleep(_retry_after(resp))
        return _decode(resp)

    async def get(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Object:
        return await self._do(self._get(rt, name, namespace, subresource))

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> Object:
        return await self._do(
            self._list(
                rt,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=limit,
                continue_=continue_,
                resource_version=resource_version,
            )
        )

    async def list_all(self, rt: ResourceType, namespace: str | None = None, **kw: Any) -> Object:
        kw.setdefault("limit", DEFAULT_PAGE_SIZE)
        first = page = await self.list(rt, namespace, **kw)
        items = list(page.get("items") or [])
        while cont := _meta(page).get("continue"):
            page = await self.list(
                rt, namespace, **{**kw, "continue_": cont, "resource_version": None}
            )
            items.extend(page.get("items") or [])
        return _merge_pages(first, items)

    async def create(
        self,
        rt: ResourceType,
        obj: Object,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        name: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Object:
        return await self._do(
            self._create(rt, obj, namespace, subresource, name, dry_run, field_manager)
        )

    async def update(
        self, rt: ResourceType, obj: Object, *, subresource: str | None = None
    ) -> Object:
        return await self._do(self._update(rt, obj, subresource))

    async def patch(
        self,
        rt: ResourceType,
        name: str,
        patch: Patch,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> Object:
        return await self._do(
            self._patch(rt, name, patch, namespace, patch_type, subresource, field_manager, force)
        )

    async def delete(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> Object:
        return await self._do(
            self._delete(
                rt, name, namespace, propagation_policy, grace_period_seconds, preconditions
            )
        )

    async def watch(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> AsyncIterator[tuple[str, Object]]:
        call = self._watch(
            rt,
            namespace,
            resource_version,
            label_selector,
            field_selector,
            timeout_seconds,
            allow_bookmarks,
        )
        read_timeout = timeout_seconds + self.timeout if timeout_seconds else None
        async for line in self._http.lines(call.path, call.params, read_timeout):
            if (event := parse_watch_line(line)) is not None:
                yield event

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Any request (the escape hatch for paths without a typed method; no 429 retry)."""
        resp = await self._http.send(method, path, params=params, content=content, headers=headers)
        if resp.is_error:
            raise error_from_response(resp)
        return resp

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
