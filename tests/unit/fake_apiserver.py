"""An in-memory fake of the API server at the httpx transport seam, for client-side tests.

:class:`FakeApiServer` speaks the Kubernetes REST protocol closely enough for the client
machinery: CRUD on any type of a :class:`Registry`, one global resourceVersion, 409 on a stale
update, merge and JSON patches, labelSelector/fieldSelector, ``limit``/``continue`` paging, watches
with initial ADDED events, BOOKMARKs on request and a 410 ``Expired`` ERROR event for a
compacted resourceVersion. Tests reach it with ``httpx.MockTransport``:
:meth:`FakeApiServer.client` (sync; a watch returns what is in history, then ends, like a server
timeout) and :meth:`FakeApiServer.async_client` (watches stay open and stream live events until
:meth:`FakeApiServer.close_watches`).

Simplifications (the real server must not copy them): apply creates or merge-patches (no field
managers), continue pages read the current state, objects leaving a watch's selector produce no
DELETED, subresources other than ``status``/``binding`` are unknown. Patches and selectors use
:mod:`machinery.patch` and :mod:`machinery.selectors`.

:func:`backend` lets a test run against a real server instead: set ``TUGBOAT_TEST_SERVER`` to a
kubeconfig path (or a URL) and tests that need fault injection skip themselves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import itertools
import os
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from machinery import errors
from machinery.client import AsyncClient, Client
from machinery.kinds import Registry, ResourceType, lookup
from machinery.patch import json_patch, merge_patch, strategic_merge_patch
from machinery.selectors import FieldSelector, LabelSelector

Object = dict[str, Any]
Key = tuple[str, str, str]  # (storage key, namespace, name)

REAL_SERVER_ENV = "TUGBOAT_TEST_SERVER"
_PATH = re.compile(r"^/(?:api/(?P<v1>v1)|apis/(?P<g>[^/]+)/(?P<v>[^/]+))(?P<rest>(?:/[^/]+)*)/?$")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(code: int, body: Any) -> httpx.Response:
    return httpx.Response(
        code, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )


def _line(etype: str, obj: Object) -> bytes:
    return orjson.dumps({"type": etype, "object": obj}) + b"\n"


def raw_watch_response(lines: list[bytes], code: int = 200) -> httpx.Response:
    """A scripted watch response (for wire-level parsing tests)."""
    return httpx.Response(
        code, content=b"".join(lines), headers={"Content-Type": "application/json"}
    )


class Recorder:
    """A transport handler that records requests and answers each with ``reply`` (default
    ``{}``, or an empty watch stream): for tests of what the client sends, not of what a
    server does."""

    def __init__(self, reply: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.reply = reply

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self.reply is not None:
            return self.reply
        if request.url.params.get("watch") == "true":
            return raw_watch_response([])  # a watch that ends at once
        return _json(200, {})

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def client(self, **kw: Any) -> Client:
        return Client("http://recorder", transport=httpx.MockTransport(self), **kw)


# -- the fake server ---------------------------------------------------------------------------


@dataclass
class Fault:
    """An injected failure: the next ``times`` matching requests get this Status."""

    code: int
    reason: str
    method: str | None = None
    path_contains: str | None = None
    watch: bool | None = None
    times: int = 1
    message: str = "injected failure"

    def matches(self, request: httpx.Request) -> bool:
        is_watch = request.url.params.get("watch") in ("1", "true")
        return (
            self.times > 0
            and (self.method is None or request.method == self.method)
            and (self.path_contains is None or self.path_contains in request.url.path)
            and (self.watch is None or self.watch == is_watch)
        )


@dataclass(eq=False)
class _Watcher:
    storage_key: str
    namespace: str | None
    label_selector: str | None
    field_selector: str | None
    bookmarks: bool
    kind: str
    api_version: str
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)

    def wants(self, storage_key: str, obj: Object) -> bool:
        meta = obj.get("metadata") or {}
        return (
            storage_key == self.storage_key
            and (self.namespace is None or meta.get("namespace") == self.namespace)
            and LabelSelector.parse(self.label_selector).matches(meta.get("labels") or {})
            and FieldSelector.parse(self.field_selector).matches(obj)
        )


class _ClosingStream(httpx.AsyncByteStream):
    """A response body that closes its generator when the client closes the response (as a
    real connection would end), so the fake sees the watcher go at once."""

    def __init__(self, gen: AsyncGenerator[bytes, None]) -> None:
        self._gen = gen

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._gen:
            yield chunk

    async def aclose(self) -> None:
        await self._gen.aclose()


@dataclass
class _Route:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


class FakeApiServer:
    """In-memory API server; see the module docstring."""

    def __init__(self, registry: Registry | None = None, start_rv: int = 100) -> None:
        self.registry = registry or Registry()
        self.objects: dict[Key, Object] = {}
        self.rv = start_rv
        self.history: list[tuple[int, str, str, Object]] = []  # (rv, storage key, type, obj)
        self.compacted_rv = 0  # a watch or continue from an older revision gets 410
        self.requests: list[httpx.Request] = []
        self.faults: list[Fault] = []
        self._watchers: set[_Watcher] = set()
        self._suffix = itertools.count()

    # -- test controls -------------------------------------------------------------------------

    def client(self, **kw: Any) -> Client:
        return Client("http://fake-apiserver", transport=httpx.MockTransport(self.handle), **kw)

    def async_client(self, **kw: Any) -> AsyncClient:
        return AsyncClient(
            "http://fake-apiserver", transport=httpx.MockTransport(self.handle_async), **kw
        )

    def fail(
        self,
        code: int = 500,
        reason: str = "InternalError",
        *,
        method: str | None = None,
        path_contains: str | None = None,
        watch: bool | None = None,
        times: int = 1,
        message: str = "injected failure",
    ) -> Fault:
        """Make the next ``times`` matching requests fail with a Status ``code``/``reason``."""
        fault = Fault(code, reason, method, path_contains, watch, times, message)
        self.faults.append(fault)
        return fault

    def compact(self, rv: int | None = None) -> None:
        """Forget history up to ``rv`` (default: now): older watches and continues get 410."""
        self.compacted_rv = self.rv if rv is None else rv
        self.history = [h for h in self.history if h[0] > self.compacted_rv]

    def close_watches(self) -> None:
        """End every open watch stream, as a server does at ``timeoutSeconds``."""
        for w in list(self._watchers):
            w.queue.put_nowait(None)

    def send_bookmark(self) -> None:
        """Send a BOOKMARK at the current revision to every watch that asked for bookmarks."""
        for w in list(self._watchers):
            if w.bookmarks:
                w.queue.put_nowait(
                    _line(
                        "BOOKMARK",
                        {
                            "kind": w.kind,
                            "apiVersion": w.api_version,
                            "metadata": {"resourceVersion": str(self.rv)},
                        },
                    )
                )

    @property
    def open_watches(self) -> int:
        return len(self._watchers)

    def requests_matching(
        self, method: str, path_contains: str = "", watch: bool | None = None
    ) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.method == method
            and path_contains in r.url.path
            and (watch is None or watch == (r.url.params.get("watch") in ("1", "true")))
        ]

    # direct store access, bypassing HTTP (arrange steps; same semantics as the REST verbs)

    def seed(self, rt: ResourceType, obj: Object) -> Object:
        return self._create(rt, (obj.get("metadata") or {}).get("namespace"), obj, dry_run=False)

    def modify(self, rt: ResourceType, namespace: str | None, name: str, patch: Object) -> Object:
        return self._patch(
            _Route(rt, namespace if rt.namespaced else None, name, None),
            "application/merge-patch+json",
            orjson.dumps(patch),
        )

    def remove(self, rt: ResourceType, namespace: str | None, name: str) -> Object:
        return self._delete(_Route(rt, namespace if rt.namespaced else None, name, None), b"")

    def stored(self, rt: ResourceType, namespace: str | None, name: str) -> Object | None:
        return self.objects.get((rt.storage_key, namespace if rt.namespaced else "", name))

    # -- transport handlers --------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Sync transport: a watch answers with its backlog and ends."""
        resp = self._serve(request)
        if isinstance(resp, _Watcher):
            self._watchers.discard(resp)
            lines = []
            while not resp.queue.empty() and (item := resp.queue.get_nowait()) is not None:
                lines.append(item)
            return raw_watch_response(lines)
        return resp

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        """Async transport: a watch stays open, streaming live events."""
        resp = self._serve(request)
        if isinstance(resp, _Watcher):
            timeout = request.url.params.get("timeoutSeconds")
            return httpx.Response(
                200,
                stream=_ClosingStream(self._stream(resp, timeout)),
                headers={"Content-Type": "application/json"},
            )
        return resp

    async def _stream(self, w: _Watcher, timeout: str | None) -> AsyncGenerator[bytes, None]:
        handle = (
            asyncio.get_running_loop().call_later(int(timeout), w.queue.put_nowait, None)
            if timeout
            else None
        )
        try:
            while (item := await w.queue.get()) is not None:
                yield item
        finally:
            self._watchers.discard(w)
            if handle:
                handle.cancel()

    def _serve(self, request: httpx.Request) -> httpx.Response | _Watcher:
        self.requests.append(request)
        try:
            for fault in self.faults:
                if fault.matches(request):
                    fault.times -= 1
                    raise errors.from_status(
                        {"reason": fault.reason, "code": fault.code, "message": fault.message}
                    )
            route = self._route(request.url.path)
            return self._dispatch(request, route)
        except errors.ApiError as e:
            return _json(e.code, e.status())

    def _route(self, path: str) -> _Route:
        m = _PATH.match(path)
        if not m:
            raise errors.NotFound(f"the server could not find the requested resource ({path})")
        group, version = ("", "v1") if m.group("v1") else (m.group("g"), m.group("v"))
        parts = [p for p in m.group("rest").split("/") if p]
        namespace = None
        if len(parts) >= 3 and parts[0] == "namespaces":
            candidate = self.registry.by_path(group, version, parts[2])
            if candidate is not None and candidate.namespaced:
                namespace, parts = parts[1], parts[2:]
        if not parts or len(parts) > 3:
            raise errors.NotFound(f"the server could not find the requested resource ({path})")
        rt = self.registry.by_path(group, version, parts[0])
        if rt is None:
            raise errors.NotFound(f"the server could not find the requested resource ({path})")
        name = parts[1] if len(parts) > 1 else None
        sub = parts[2] if len(parts) > 2 else None
        if sub and sub not in ("status", "binding"):
            raise errors.NotFound(f"subresource {sub} is not supported by the fake")
        return _Route(rt, namespace, name, sub)

    def _dispatch(self, request: httpx.Request, r: _Route) -> httpx.Response | _Watcher:
        params = request.url.params
        method = request.method
        if method == "GET" and r.name:
            return _json(200, self._get(r))
        if method == "GET" and params.get("watch") in ("1", "true"):
            return self._watch(r, params)
        if method == "GET":
            return _json(200, self._list(r, params))
        body = request.read()
        if request.headers.get("content-type", "").startswith("application/vnd.kubernetes"):
            raise errors.UnsupportedMediaType("the fake accepts JSON only")
        if method == "POST" and r.subresource == "binding":
            return _json(201, self._bind(r, orjson.loads(body)))
        if method == "POST" and not r.name:
            obj = self._create(
                r.rt, r.namespace, orjson.loads(body), dry_run=params.get("dryRun") == "All"
            )
            return _json(201, obj)
        if method == "PUT" and r.name:
            return _json(200, self._update(r, orjson.loads(body)))
        if method == "PATCH" and r.name:
            if (r.rt.storage_key, r.namespace or "", r.name) not in self.objects and (
                request.headers.get("content-type") == "application/apply-patch+yaml"
            ):
                patch = orjson.loads(body)
                patch.setdefault("metadata", {})["name"] = r.name
                return _json(201, self._create(r.rt, r.namespace, patch, dry_run=False))
            return _json(200, self._patch(r, request.headers.get("content-type", ""), body))
        if method == "DELETE" and r.name:
            return _json(200, self._delete(r, body))
        raise errors.MethodNotAllowed(f"{method} is not supported on {request.url.path}")

    # -- verbs ---------------------------------------------------------------------------------

    def _key(self, r: _Route) -> Key:
        return (r.rt.storage_key, r.namespace or "", r.name or "")

    def _existing(self, r: _Route) -> Object:
        obj = self.objects.get(self._key(r))
        if obj is None:
            group = f".{r.rt.group}" if r.rt.group else ""
            raise errors.NotFound(
                f'{r.rt.plural}{group} "{r.name}" not found',
                details={"name": r.name, "group": r.rt.group, "kind": r.rt.plural},
            )
        return obj

    def _get(self, r: _Route) -> Object:
        return self._existing(r)

    def _commit(self, rt: ResourceType, etype: str, obj: Object) -> Object:
        """Give ``obj`` the next revision, store it (or drop it for DELETED), log, fan out."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        key = (rt.storage_key, meta.get("namespace", "") if rt.namespaced else "", meta["name"])
        if etype == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.history.append((self.rv, rt.storage_key, etype, obj))
        line = _line(etype, obj)
        for w in self._watchers:
            if w.wants(rt.storage_key, obj):
                w.queue.put_nowait(line)
        return obj

    def _create(
        self, rt: ResourceType, namespace: str | None, body: Object, *, dry_run: bool
    ) -> Object:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.BadRequest(
                    "the namespace of the provided object does not match "
                    "the namespace sent on the request"
                )
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(
                    rt.kind,
                    "",
                    [
                        {
                            "field": "metadata.name",
                            "message": "Required value",
                            "reason": "FieldValueRequired",
                        }
                    ],
                )
            meta["name"] = f"{meta['generateName']}{next(self._suffix):05x}"
        key = (rt.storage_key, meta.get("namespace", "") if rt.namespaced else "", meta["name"])
        if key in self.objects:
            raise errors.AlreadyExists(
                f'{rt.plural} "{meta["name"]}" already exists',
                details={"name": meta["name"], "kind": rt.plural},
            )
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("kind", rt.kind)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        meta.pop("resourceVersion", None)
        if dry_run:
            return obj
        return self._commit(rt, "ADDED", obj)

    def _check_rv(self, r: _Route, existing: Object, body: Object) -> None:
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv != existing["metadata"]["resourceVersion"]:
            group = f".{r.rt.group}" if r.rt.group else ""
            raise errors.Conflict(
                f'Operation cannot be fulfilled on {r.rt.plural}{group} "{r.name}": the object '
                "has been modified; please apply your changes to the latest version and try again"
            )

    def _replace(self, r: _Route, existing: Object, new: Object) -> Object:
        """Store ``new`` in place of ``existing`` keeping server-owned fields."""
        if r.subresource == "status":
            obj = copy.deepcopy(existing)
            obj["status"] = new.get("status")
        else:
            obj = copy.deepcopy(new)
            if "status" in r.rt.subresources:
                if "status" in existing:
                    obj["status"] = copy.deepcopy(existing["status"])
                else:
                    obj.pop("status", None)
        old_meta, meta = existing["metadata"], obj.setdefault("metadata", {})
        for k in (
            "uid",
            "creationTimestamp",
            "name",
            "namespace",
            "generation",
            "deletionTimestamp",
        ):
            if k in old_meta:
                meta[k] = old_meta[k]
        if _spec_of(obj) != _spec_of(existing):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._commit(r.rt, "DELETED", obj)
        return self._commit(r.rt, "MODIFIED", obj)

    def _update(self, r: _Route, body: Object) -> Object:
        existing = self._existing(r)
        self._check_rv(r, existing, body)
        return self._replace(r, existing, body)

    def _patch(self, r: _Route, content_type: str, body: bytes) -> Object:
        existing = self._existing(r)
        patch = orjson.loads(body)
        if content_type == "application/json-patch+json":
            new = json_patch(existing, patch)
        elif content_type == "application/strategic-merge-patch+json":
            self._check_rv(r, existing, patch)
            new = strategic_merge_patch(existing, patch, r.rt.kind)
        elif content_type in ("application/merge-patch+json", "application/apply-patch+yaml"):
            self._check_rv(r, existing, patch)
            new = merge_patch(existing, patch)
        else:
            raise errors.UnsupportedMediaType(
                f"the body of the request was in an unknown format ({content_type})"
            )
        return self._replace(r, existing, new)

    def _delete(self, r: _Route, body: bytes) -> Object:
        existing = self._existing(r)
        opts = orjson.loads(body) if body else {}
        pre = opts.get("preconditions") or {}
        meta = existing["metadata"]
        if (pre.get("uid") and pre["uid"] != meta.get("uid")) or (
            pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]
        ):
            raise errors.Conflict(f"Precondition failed for {r.rt.plural} {r.name}")
        obj = copy.deepcopy(existing)
        if meta.get("finalizers"):
            obj["metadata"].setdefault("deletionTimestamp", _now())
            return self._commit(r.rt, "MODIFIED", obj)
        self._commit(r.rt, "DELETED", obj)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": r.name,
                "group": r.rt.group,
                "kind": r.rt.plural,
                "uid": meta.get("uid"),
            },
        }

    def _bind(self, r: _Route, binding: Object) -> Object:
        existing = self._existing(r)
        if (existing.get("spec") or {}).get("nodeName"):
            raise errors.Conflict(f"pod {r.name} is already assigned to a node")
        obj = copy.deepcopy(existing)
        obj.setdefault("spec", {})["nodeName"] = (binding.get("target") or {}).get("name")
        self._commit(r.rt, "MODIFIED", obj)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    def _matching(self, r: _Route, params: httpx.QueryParams) -> list[Object]:
        labels = LabelSelector.parse(params.get("labelSelector"))
        fields = FieldSelector.parse(params.get("fieldSelector"))
        found = [
            obj
            for (skey, ns, _), obj in self.objects.items()
            if skey == r.rt.storage_key
            and (r.namespace is None or ns == r.namespace)
            and labels.matches(obj["metadata"].get("labels") or {})
            and fields.matches(obj)
        ]
        return sorted(
            found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        )

    def _list(self, r: _Route, params: httpx.QueryParams) -> Object:
        items = self._matching(r, params)
        list_rv = self.rv
        if token := params.get("continue"):
            try:
                state = orjson.loads(base64.urlsafe_b64decode(token))
                list_rv, after = int(state["rv"]), tuple(state["after"])
            except (ValueError, KeyError, TypeError) as e:
                raise errors.BadRequest(f"invalid continue token: {e}") from e
            if list_rv <= self.compacted_rv:
                raise errors.Gone(
                    "The provided continue parameter is too old to display a "
                    "consistent list result. You can start a new list without "
                    "the continue parameter."
                )
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after
            ]
        meta: Object = {"resourceVersion": str(list_rv)}
        limit = int(params.get("limit") or 0)
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = base64.urlsafe_b64encode(
                orjson.dumps({"rv": list_rv, "after": [last.get("namespace", ""), last["name"]]})
            ).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "kind": r.rt.list_kind_name,
            "apiVersion": r.rt.api_version,
            "metadata": meta,
            "items": items,
        }

    def _watch(self, r: _Route, params: httpx.QueryParams) -> _Watcher:
        w = _Watcher(
            r.rt.storage_key,
            r.namespace,
            params.get("labelSelector"),
            params.get("fieldSelector"),
            params.get("allowWatchBookmarks") in ("1", "true"),
            r.rt.kind,
            r.rt.api_version,
        )
        rv = params.get("resourceVersion")
        if rv in (None, "", "0"):
            for obj in self._matching(r, params):
                w.queue.put_nowait(_line("ADDED", obj))
        elif int(rv) < self.compacted_rv:
            w.queue.put_nowait(
                _line(
                    "ERROR",
                    errors.Gone(f"too old resource version: {rv} ({self.compacted_rv})").status(),
                )
            )
            w.queue.put_nowait(None)
        else:
            for erv, skey, etype, obj in self.history:
                if erv > int(rv) and w.wants(skey, obj):
                    w.queue.put_nowait(_line(etype, obj))
        self._watchers.add(w)
        return w


def _spec_of(obj: Object) -> Object:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


# -- fake or real: what tests run against -----------------------------------------------------


@dataclass
class Backend:
    """What a test talks to: the fake (``fake`` set) or a real server (``fake`` None).
    ``namespace`` is a fresh namespace for this test."""

    fake: FakeApiServer | None
    namespace: str
    _server: str | None = None
    _kubeconfig: str | None = None

    def client(self, **kw: Any) -> Client:
        if self.fake is not None:
            return self.fake.client(**kw)
        if self._kubeconfig:
            return Client.from_kubeconfig(self._kubeconfig, **kw)
        return Client(self._server or "", **kw)

    def async_client(self, **kw: Any) -> AsyncClient:
        if self.fake is not None:
            return self.fake.async_client(**kw)
        if self._kubeconfig:
            return AsyncClient.from_kubeconfig(self._kubeconfig, **kw)
        return AsyncClient(self._server or "", **kw)

    def need_fake(self) -> FakeApiServer:
        """The fake server, or skip: the test injects faults or compacts history."""
        if self.fake is None:
            pytest.skip("needs the fake API server (fault injection)")
        return self.fake


@contextlib.contextmanager
def backend(request: pytest.FixtureRequest | None = None) -> Iterator[Backend]:
    """A :class:`Backend` with a fresh namespace (created and deleted on a real server).

    ``TUGBOAT_TEST_SERVER`` unset: the fake. ``local``: the session API server of
    ``tests/conftest.py`` (fixture ``api``). A URL or a kubeconfig path: that server."""
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    target = os.environ.get(REAL_SERVER_ENV)
    if not target:
        yield Backend(FakeApiServer(), namespace)
        return
    if target == "local":
        if request is None:
            raise RuntimeError("TUGBOAT_TEST_SERVER=local needs the pytest request")
        target = request.getfixturevalue("api").url
    assert target is not None
    is_url = target.startswith(("http://", "https://"))
    b = Backend(None, namespace, target if is_url else None, None if is_url else target)
    ns_type = lookup("namespaces")
    with b.client() as c:
        c.create(ns_type, {"metadata": {"name": namespace}})
        try:
            yield b
        finally:
            with contextlib.suppress(errors.ApiError):
                c.delete(ns_type, namespace)


async def eventually(
    predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Let the event loop run until ``predicate()`` holds; fail after ``timeout`` real seconds.
    (Polling with a deadline, never a fixed sleep.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)
