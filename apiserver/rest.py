"""HTTP endpoints for resources: ``/api/v1/...`` and ``/apis/{group}/{version}/...``.

Parses the path into (resource type, namespace, name, subresource), decodes the body, calls the
:class:`~apiserver.registry.Registry`, and renders the answer (object, List, Table, watch stream,
or a ``Status`` for errors).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from apiserver import apply, codec, conversion, proxy, scale
from apiserver.meta import now_rfc3339
from apiserver.registry import Registry, WriteOptions, key_for, not_found, parse_rv
from machinery import errors, patch, printers
from machinery.jsoncopy import json_copy
from machinery.kinds import Registry as Kinds
from machinery.kinds import ResourceType
from machinery.selectors import parse_field_selector, parse_label_selector

BOOKMARK_EVERY = 10.0
log = logging.getLogger(__name__)


@dataclass
class Target:
    """What a request addresses. ``rt`` is the version asked for; ``srt`` the version stored
    (they differ for resources served in several versions, e.g. autoscaling/v1 HPAs)."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    srt: ResourceType | None = None

    def out(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A stored object as the requested version shows it."""
        return conversion.from_storage(self.rt, obj) if self.srt is not self.rt else obj

    def out_raw(self, raw: bytes) -> bytes:
        return conversion.from_storage_raw(self.rt, raw) if self.srt is not self.rt else raw

    def into(self, obj: Any) -> Any:
        """A request body in the requested version → the stored version."""
        if self.srt is self.rt or not isinstance(obj, dict):
            return obj
        return conversion.to_storage(self.rt, obj)


def parse_path(kinds: Kinds, group: str, version: str, parts: list[str]) -> Target:
    """Resolve the part of a path after ``/api/v1`` or ``/apis/{g}/{v}``."""
    namespace = None
    if len(parts) >= 3 and parts[0] == "namespaces":
        rt = kinds.by_path(group, version, parts[2])
        if rt is not None and rt.namespaced:
            namespace, parts = parts[1], parts[2:]
    if not parts:
        raise errors.NotFound("the server could not find the requested resource")
    rt = kinds.by_path(group, version, parts[0])
    if rt is None:
        raise errors.NotFound("the server could not find the requested resource")
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    if len(parts) > 3 and sub != "proxy":
        raise errors.NotFound("the server could not find the requested resource")
    if sub is not None and sub not in rt.subresources:
        raise errors.NotFound("the server could not find the requested resource")
    return Target(rt, namespace, name, sub)


def _want_table(request: Request) -> bool:
    return "as=Table" in (request.headers.get("accept") or "")


def _delete_write_options(request: Request, options: dict[str, Any]) -> WriteOptions:
    """The query's write options; ``dryRun: ["All"]`` in the DeleteOptions body counts as much
    as ``?dryRun=All`` (kubectl sends either)."""
    opts = codec.write_options(request)
    dry_run = options.get("dryRun") or []
    if not opts.dry_run and isinstance(dry_run, list) and "All" in dry_run:
        opts = replace(opts, dry_run=True)
    return opts


def _selectors(request: Request):
    q = request.query_params
    try:
        ls = parse_label_selector(q["labelSelector"]) if q.get("labelSelector") else None
        fs = parse_field_selector(q["fieldSelector"]) if q.get("fieldSelector") else None
    except ValueError as exc:
        raise errors.BadRequest(str(exc))
    if ls is None and fs is None:
        return None

    def predicate(obj: dict[str, Any]) -> bool:
        if ls is not None and not ls.matches((obj.get("metadata") or {}).get("labels") or {}):
            return False
        return fs is None or fs.matches(obj)

    return predicate


def _encode_continue(rev: int, start: tuple[str, str]) -> str:
    raw = orjson.dumps({"rv": rev, "start": list(start)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except Exception:
        raise errors.BadRequest("invalid continue token")


def _int_param(q: Any, name: str, default: int) -> int:
    try:
        return int(q.get(name) or default)
    except ValueError:
        raise errors.BadRequest(f"{name} must be an integer, not {q[name]!r}") from None


class ResourceHandler:
    """Routes one resource request to the registry."""

    def __init__(self, registry: Registry, kinds: Kinds) -> None:
        self.registry = registry
        self.kinds = kinds
        #: Serves ``serviceaccounts/token`` (TokenRequest) when ServiceAccount tokens are on:
        #: an :class:`apiserver.auth.serviceaccounts.ServiceAccountTokens`.
        self.token_requests: Any = None

    async def handle(self, request: Request, group: str, version: str, rest: str) -> Response:
        try:
            parts = [p for p in rest.split("/") if p]
            target = parse_path(self.kinds, group, version, parts)
            target.srt = conversion.storage_type(target.rt, self.kinds)
            return await self._dispatch(request, target)
        except errors.ApiError as err:
            return codec.error_response(err)
        except Exception as exc:  # a bug of ours: answer with a Status, keep the connection
            log.exception("internal error serving %s %s", request.method, request.url.path)
            return codec.error_response(errors.InternalError(f"internal error: {exc}"))

    async def _dispatch(self, request: Request, t: Target) -> Response:
        m = request.method
        if t.name is None:
            if m == "GET":
                if request.query_params.get("watch") in ("1", "true", "True"):
                    return self.watch(request, t)
                return self.list(request, t)
            if m == "POST":
                return await self.create(request, t)
            if m == "DELETE":
                return await self.delete_collection(request, t)
            raise errors.MethodNotAllowed(
                f"the server does not allow this method on the requested resource: {m}"
            )
        if t.subresource == "scale":
            return await scale.handle(self, request, t)
        if t.subresource in ("binding", "eviction"):
            if m != "POST":
                raise errors.MethodNotAllowed(f"{m} is not allowed on {t.subresource}")
            return await self.pod_action(request, t)
        if t.subresource in ("log", "exec", "attach", "portforward") and t.rt.plural == "pods":
            pod, node = proxy.resolve(self.registry, t.namespace or "", t.name)
            return await proxy.proxy_to_kubelet(request, pod, node, t.subresource)
        if t.subresource == "token" and self.token_requests is not None:
            return await self.token_requests.token_request(request, t.namespace or "", t.name)
        if t.subresource in ("log", "exec", "attach", "portforward", "proxy", "token"):
            raise errors.ServiceUnavailable(
                f"{t.rt.plural}/{t.subresource} is not available: no node agent proxy yet"
            )
        if m == "GET":
            entry = self.registry.get(t.srt, t.namespace, t.name)
            if _want_table(request):
                return codec.json_response(self._table(request, t.rt, [t.out(entry.obj)], None))
            return codec.json_response(None, raw=t.out_raw(entry.raw))
        if m == "PUT":
            opts = codec.write_options(request)
            body = codec.decode_write(await request.body(), request, opts)
            res = await self.registry.update(
                t.srt, t.namespace, t.name, t.into(body), opts, t.subresource
            )
            return codec.json_response(t.out(res.obj), res.code, res.warnings)
        if m == "PATCH":
            return await self.patch(request, t)
        if m == "DELETE":
            return await self.delete(request, t)
        if m == "POST" and t.subresource is None:
            raise errors.MethodNotAllowed("POST is not allowed on a named resource")
        raise errors.MethodNotAllowed(f"{m} is not allowed on the requested resource")

    # -- collection verbs -----------------------------------------------------------------------
    def list(self, request: Request, t: Target) -> Response:
        q = request.query_params
        predicate = _selectors(request)
        rev = self.registry.store.cache.rev
        entries = self.registry.list(t.srt, t.namespace)
        start = None
        if q.get("continue"):
            # Every page shows the store at the first page's revision, as etcd does.
            crev, start = _decode_continue(q["continue"])
            try:
                entries = self.registry.list_at(t.srt, t.namespace, crev)
            except LookupError:
                raise errors.Gone(
                    "The provided continue parameter is too old to display a "
                    "consistent list result. You can start a new list without "
                    "the continue parameter."
                )
            rev = crev
            entries = [(k, e) for k, e in entries if k > start]
        if predicate is not None:
            entries = [(k, e) for k, e in entries if predicate(e.obj)]
        limit = max(_int_param(q, "limit", 0), 0)
        cont, remaining = None, None
        if limit and len(entries) > limit:
            cont = _encode_continue(rev, entries[limit - 1][0])
            remaining = len(entries) - limit
            entries = entries[:limit]
        if _want_table(request):
            meta = {"resourceVersion": str(rev)}
            if cont:
                meta["continue"] = cont
            return codec.json_response(
                self._table(request, t.rt, [t.out(e.obj) for _, e in entries], meta)
            )
        body = codec.list_body(
            t.rt.list_kind_name,
            t.rt.api_version,
            rev,
            [t.out_raw(e.raw) for _, e in entries],
            cont,
            remaining,
        )
        return codec.json_response(None, raw=body)

    def _table(
        self,
        request: Request,
        rt: ResourceType,
        objs: list[dict[str, Any]],
        list_meta: dict[str, Any] | None,
    ) -> dict[str, Any]:
        include = request.query_params.get("includeObject") or "Metadata"
        return printers.table(
            rt.kind,
            objs,
            group=rt.group,
            include_object=include,
            api_version=rt.api_version,
            list_meta=list_meta or {},
        )

    async def create(self, request: Request, t: Target) -> Response:
        opts = codec.write_options(request)
        body = codec.decode_write(await request.body(), request, opts)
        res = await self.registry.create(t.srt, t.namespace, t.into(body), opts)
        return codec.json_response(t.out(res.obj), res.code, res.warnings)

    async def delete_collection(self, request: Request, t: Target) -> Response:
        options = await self._delete_options(request)
        predicate = _selectors(request)
        opts = _delete_write_options(request, options)
        items = []
        for (ns, name), entry in self.registry.list(t.srt, t.namespace):
            if predicate is not None and not predicate(entry.obj):
                continue
            try:
                res = await self.registry.delete(t.srt, ns or None, name, options, opts)
            except errors.NotFound:
                continue
            items.append(t.out(res.obj))
        body = {
            "kind": t.rt.list_kind_name,
            "apiVersion": t.rt.api_version,
            "metadata": {"resourceVersion": str(self.registry.store.cache.rev)},
            "items": items,
        }
        return codec.json_response(body)

    # -- object verbs ---------------------------------------------------------------------------
    async def _delete_options(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        options: dict[str, Any] = {}
        if raw:
            decoded = codec.decode(raw, request.headers.get("content-type"))
            if not isinstance(decoded, dict):
                raise errors.BadRequest("DeleteOptions must be a JSON object")
            options = decoded
        q = request.query_params
        if q.get("propagationPolicy"):
            options["propagationPolicy"] = q["propagationPolicy"]
        if q.get("gracePeriodSeconds") is not None:
            try:
                options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            except ValueError:
                raise errors.BadRequest("gracePeriodSeconds must be an integer")
        if q.get("orphanDependents") is not None:
            options["orphanDependents"] = q["orphanDependents"] == "true"
        policy = options.get("propagationPolicy")
        if policy not in (None, "Foreground", "Background", "Orphan"):
            raise errors.BadRequest(
                f"propagationPolicy {policy!r} is not one of Foreground, Background, Orphan"
            )
        return options

    async def delete(self, request: Request, t: Target) -> Response:
        assert t.name is not None
        options = await self._delete_options(request)
        res = await self.registry.delete(
            t.srt, t.namespace, t.name, options, _delete_write_options(request, options)
        )
        gone = self.registry.find(t.srt, t.namespace, t.name) is None
        if gone and t.rt.kind not in ("Pod",):
            uid = res.obj.get("metadata", {}).get("uid")
            return codec.json_response(codec.success_status(t.name, t.rt.group, t.rt.plural, uid))
        return codec.json_response(t.out(res.obj), res.code)

    async def patch(self, request: Request, t: Target) -> Response:
        assert t.name is not None
        ptype = codec.PATCH_TYPES.get(codec.media_type(request.headers.get("content-type")))
        if ptype is None:
            raise errors.UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types "
                "include: " + ", ".join(codec.PATCH_TYPES)
            )
        if (ptype == "strategic" and not patch.supports_strategic(t.rt.kind)) or (
            ptype == "strategic" and self.registry.strategies.for_(t.rt).custom
        ):
            raise errors.UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml"
            )
        opts = codec.write_options(request)
        body = codec.decode_write(await request.body(), request, opts)
        if ptype == "apply":
            return await self._apply(request, t, body, opts)
        if ptype == "json" and not isinstance(body, list):
            raise errors.BadRequest("a JSON patch must be a list of operations")
        if ptype != "json" and not isinstance(body, dict):
            raise errors.BadRequest("a merge patch must be a JSON object")
        kind = t.rt.kind

        def change(cur: dict[str, Any]) -> dict[str, Any]:
            cur = t.out(cur)
            if ptype == "json":
                patched = patch.json_patch(cur, body)
                codec.check_depth(patched)  # "add" nests its value at a path: depths add up
                return t.into(patched)
            if ptype == "strategic":
                return t.into(patch.strategic_merge_patch(cur, body, kind))
            return t.into(patch.merge_patch(cur, body))

        meta = body.get("metadata") if isinstance(body, dict) else None
        expected = parse_rv(meta.get("resourceVersion")) if isinstance(meta, dict) else None
        res = await self.registry.mutate(
            t.srt, t.namespace, t.name, change, opts, t.subresource, expected=expected
        )
        return codec.json_response(t.out(res.obj), res.code, res.warnings)

    async def _apply(self, request: Request, t: Target, body: Any, opts: WriteOptions) -> Response:
        """Server-side apply: create when missing, else merge by field ownership; a field
        another manager owns with a different value is a 409 unless ``force=true``."""
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise errors.BadRequest("an apply patch must be an object with object metadata")
        manager = request.query_params.get("fieldManager")
        if not manager:
            raise errors.BadRequest(
                "PATCH with an apply patch requires a non-empty fieldManager parameter"
            )
        assert t.name is not None
        force = request.query_params.get("force") in ("true", "1")
        custom = self.registry.strategies.for_(t.srt).custom
        body = json_copy(body)
        body.setdefault("metadata", {}).setdefault("name", t.name)
        rv = body["metadata"].pop("resourceVersion", None)
        opts.field_manager, opts.applied = manager, True

        def merged(cur: dict[str, Any] | None) -> dict[str, Any]:
            return apply.apply(
                cur,
                body,
                manager=manager,
                kind=None if custom else t.rt.kind,
                force=force,
                api_version=t.rt.api_version,
                now=now_rfc3339(),
                status_subresource="status" in t.rt.subresources,
                subresource=t.subresource,
            )

        if self.registry.find(t.srt, t.namespace, t.name) is None and t.subresource is None:
            if rv:
                raise not_found(t.rt, t.name)
            res = await self.registry.create(t.srt, t.namespace, t.into(merged(None)), opts)
            return codec.json_response(t.out(res.obj), res.code, res.warnings)
        res = await self.registry.mutate(
            t.srt,
            t.namespace,
            t.name,
            lambda cur: t.into(merged(t.out(cur))),
            opts,
            t.subresource,
            expected=parse_rv(rv),
        )
        return codec.json_response(t.out(res.obj), res.code, res.warnings)

    async def pod_action(self, request: Request, t: Target) -> Response:
        assert t.name is not None
        body = codec.decode(await request.body(), request.headers.get("content-type"))
        if not isinstance(body, dict):
            raise errors.BadRequest("the body must be an object")
        opts = codec.write_options(request)
        if t.subresource == "binding":
            node = (body.get("target") or {}).get("name")
            if not node:
                raise errors.invalid(
                    "Binding",
                    t.name,
                    [
                        {
                            "reason": "FieldValueRequired",
                            "field": "target.name",
                            "message": "Required value",
                        }
                    ],
                )

            def bind(cur: dict[str, Any]) -> dict[str, Any]:
                spec = cur.setdefault("spec", {})
                if spec.get("nodeName"):
                    raise errors.Conflict(
                        f'Operation cannot be fulfilled on pods/binding "{t.name}": pod '
                        f'{t.name} is already assigned to node "{spec["nodeName"]}"'
                    )
                spec["nodeName"] = node
                status = cur.setdefault("status", {})
                conds = [
                    c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
                ]

                conds.append(
                    {
                        "type": "PodScheduled",
                        "status": "True",
                        "lastProbeTime": None,
                        "lastTransitionTime": now_rfc3339(),
                    }
                )
                status["conditions"] = conds
                return cur

            uid = (body.get("metadata") or {}).get("uid")
            entry = self.registry.get(t.srt, t.namespace, t.name)
            if uid and uid != entry.obj["metadata"].get("uid"):
                raise errors.Conflict("the UID in the binding does not match the pod")
            await self.registry.mutate(t.srt, t.namespace, t.name, bind, opts, "binding")
            return codec.json_response(
                codec.success_status(t.name, "", "pods/binding", None) | {"code": 201}, 201
            )
        options = body.get("deleteOptions") or {}
        await self.registry.delete(t.srt, t.namespace, t.name, options, opts)
        return codec.json_response(
            codec.success_status(t.name, "policy", "Eviction", None) | {"code": 201}, 201
        )

    # -- watch ----------------------------------------------------------------------------------
    def watch(self, request: Request, t: Target) -> Response:
        q = request.query_params
        cache = self.registry.store.cache
        predicate = _selectors(request)
        rv = q.get("resourceVersion") or ""
        initial = q.get("sendInitialEvents") == "true"
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        timeout = _int_param(q, "timeoutSeconds", 1800)
        namespace = t.namespace if t.rt.namespaced else None
        table = _want_table(request)
        if initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise errors.invalid(
                "ListOptions",
                "",
                [
                    {
                        "reason": "FieldValueForbidden",
                        "field": "resourceVersionMatch",
                        "message": "Forbidden: sendInitialEvents requires setting "
                        "resourceVersionMatch to NotOlderThan",
                    }
                ],
            )
        snapshot: list[tuple[str, Any]] = []
        if rv in ("", "0") or initial:
            since = cache.rev
            for _, entry in self.registry.list(t.srt, namespace):
                if predicate is None or predicate(entry.obj):
                    snapshot.append(("ADDED", entry))
        else:
            try:
                since = int(rv)
            except ValueError:
                raise errors.BadRequest(f"invalid resourceVersion {rv!r}")
        try:
            watcher = cache.watch(t.rt.storage_key, namespace, predicate, since)
        except LookupError as exc:
            status = errors.Gone(str(exc)).status()
            line = orjson.dumps({"type": "ERROR", "object": status}) + b"\n"
            return Response(line, media_type=codec.JSON)
        rt = t.rt

        def encode(typ: str, entry: Any) -> bytes:
            if table:
                meta = {"resourceVersion": str(entry.rev)}
                obj = self._table(request, rt, [t.out(entry.obj)], meta)
                return orjson.dumps({"type": typ, "object": obj}) + b"\n"
            return b'{"type":"' + typ.encode() + b'","object":' + t.out_raw(entry.raw) + b"}\n"

        def bookmark(rev: int, end: bool = False) -> bytes:
            meta: dict[str, Any] = {"resourceVersion": str(rev)}
            if end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            return (
                orjson.dumps(
                    {
                        "type": "BOOKMARK",
                        "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta},
                    }
                )
                + b"\n"
            )

        async def stream() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            try:
                if snapshot:
                    yield b"".join(encode(typ, e) for typ, e in snapshot)
                if initial:
                    yield bookmark(since, end=True)
                while True:
                    left = deadline - loop.time()
                    if left <= 0:
                        return
                    try:
                        async with asyncio.timeout(min(left, BOOKMARK_EVERY)):
                            item = await watcher.queue.get()
                    except TimeoutError:
                        if bookmarks:
                            yield bookmark(cache.rev)
                        continue
                    if item is None:
                        kind = errors.Gone if watcher.expired else errors.ApiError
                        err = kind(watcher.closed or "watch closed")
                        yield orjson.dumps({"type": "ERROR", "object": err.status()}) + b"\n"
                        return
                    chunk = [encode(*item)]
                    while not watcher.queue.empty() and len(chunk) < 256:
                        nxt = watcher.queue.get_nowait()
                        if nxt is None:
                            watcher.queue.put_nowait(None)
                            break
                        chunk.append(encode(*nxt))
                    yield b"".join(chunk)
            finally:
                cache.unwatch(watcher)

        return StreamingResponse(stream(), media_type=codec.JSON)

    def key(self, t: Target):
        assert t.name is not None
        return key_for(t.rt, t.namespace, t.name)

    def missing(self, t: Target) -> errors.NotFound:
        return not_found(t.rt, t.name or "")
