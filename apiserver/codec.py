"""Request bodies in, response bodies out: JSON/YAML decoding, Status and List encoding."""

from __future__ import annotations

import datetime
import json
from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response

from apiserver import protobuf
from apiserver.registry import WriteOptions
from machinery import errors

MAX_BODY = 3 * 1024 * 1024
# Nesting a body may have. Kubernetes allows 10,000 levels; here stored objects must stay
# serialisable by orjson (254 levels) with room for metadata.managedFields, which mirrors an
# object's fields a few levels deeper, and for the recursive Python of patches and apply.
MAX_DEPTH = 128
YAML_NODES = 1_000_000  # values a YAML body may expand to (aliases count each time used)
JSON = "application/json"

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def decode(body: bytes, content_type: str | None, duplicates: list[str] | None = None) -> Any:
    """Decode a request body; a missing Content-Type means JSON (the Python client sends none).

    Anything a client can send is answered with an :class:`~machinery.errors.ApiError`: over
    3 MiB 413, an unknown media type 415, malformed JSON/YAML, invalid UTF-8, numbers out of
    range and nesting deeper than :data:`MAX_DEPTH` 400. With ``duplicates`` (asked for by
    ``fieldValidation=Strict`` only, as finding them costs a second parse of a JSON body), the
    duplicate fields are appended to it as Kubernetes words them.
    """
    if len(body) > MAX_BODY:
        raise errors.RequestEntityTooLarge(f"Request entity too large: limit is {MAX_BODY}")
    mt = media_type(content_type)
    if mt == protobuf.MEDIA_TYPE:
        return protobuf.decode(body)
    if mt in ("", JSON, "*/*") or mt.endswith("+json"):
        try:
            obj = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError as exc:
            raise errors.BadRequest(f"the body of the request was in an unknown format: {exc}")
        # A body with fewer brackets than the limit cannot nest deeper: the walk is skipped.
        if body.count(b"{") + body.count(b"[") > MAX_DEPTH:
            check_depth(obj)
        if duplicates is not None and body:
            duplicates.extend(_json_duplicates(body))
        return obj
    if mt in (
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
        "application/apply-patch+yaml",
    ):
        return _decode_yaml(body, duplicates)
    raise errors.UnsupportedMediaType(
        f"the body of the request was in an unknown format - "
        f"accepted media types include: {JSON}, application/yaml"
    )


def check_depth(obj: Any) -> None:
    """400 BadRequest when ``obj`` nests deeper than :data:`MAX_DEPTH` (iterative: a deep
    value must not exhaust the interpreter's stack here either)."""
    if not isinstance(obj, (dict, list)):
        return
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise errors.BadRequest(
                f"the body of the request nests deeper than the limit of {MAX_DEPTH} levels"
            )
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))


class _Duplicated(dict):
    """A decoded JSON object that had some keys more than once (``dups``, first-seen order)."""

    __slots__ = ("dups",)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dups: list[str] = []
    for k, v in pairs:
        if k in out and k not in dups:
            dups.append(k)
        out[k] = v
    if not dups:
        return out
    marked = _Duplicated(out)
    marked.dups = dups
    return marked


def _json_duplicates(body: bytes) -> list[str]:
    """``duplicate field "spec.paused"`` for every key given twice in one JSON object, in
    document order (orjson keeps the last value silently, so this takes a second parse)."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", json.loads(body, object_pairs_hook=_pairs))]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            prefix = f"{path}." if path else ""
            if isinstance(node, _Duplicated):
                found.extend(f'duplicate field "{prefix}{k}"' for k in node.dups)
            stack.extend((f"{prefix}{k}", v) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(node))))
    return found


class _YamlLoader(yaml.SafeLoader):
    """YAML as Kubernetes reads it: plain scalars that look like dates stay strings (they are
    strings in JSON), and keys given twice in one mapping are noted with their line."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    self.duplicates.append(
                        f'line {key_node.start_mark.line + 1}: key "{key_node.value}" '
                        "already set in map"
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def _decode_yaml(body: bytes, duplicates: list[str] | None) -> Any:
    try:
        loader = _YamlLoader(body)  # reading starts here: invalid UTF-8 fails at once
        try:
            obj = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"error decoding YAML: {exc}")
    except RecursionError:
        raise errors.BadRequest(
            f"the body of the request nests deeper than the limit of {MAX_DEPTH} levels"
        )
    if duplicates is not None and loader.duplicates:
        duplicates.append("yaml: unmarshal errors:\n  " + "\n  ".join(loader.duplicates))
    return _yaml_to_json(obj) if obj is not None else {}


def _yaml_to_json(obj: Any) -> Any:
    """A fresh JSON-shaped copy of what the YAML loader built: keys become strings as in
    Kubernetes' YAML-to-JSON step, each use of an alias becomes its own copy (at most
    :data:`YAML_NODES` values in all, so an alias bomb is refused), depth is bounded."""
    budget = YAML_NODES

    def convert(value: Any, path: str) -> Any:
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        if isinstance(value, datetime.date):  # an explicit !!timestamp tag
            return value.isoformat()
        raise errors.BadRequest(
            f"error decoding YAML: {path or 'the document'} holds a value "
            f"of type {type(value).__name__}, which JSON cannot represent"
        )

    root: Any = {} if isinstance(obj, dict) else [] if isinstance(obj, list) else None
    if root is None:
        return convert(obj, "")
    stack: list[tuple[Any, Any, int]] = [(obj, root, 1)]
    while stack:
        src, dst, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise errors.BadRequest(
                f"the body of the request nests deeper than the limit of {MAX_DEPTH} levels"
            )
        budget -= len(src)
        if budget < 0:
            raise errors.BadRequest(
                f"error decoding YAML: the document expands to more than {YAML_NODES} values"
            )
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for k, v in items:
            key = _yaml_key(k) if isinstance(src, dict) else k
            if isinstance(v, (dict, list)):
                child: Any = {} if isinstance(v, dict) else []
                stack.append((v, child, depth + 1))
            else:
                child = convert(v, str(key))
            if isinstance(dst, dict):
                dst[key] = child
            else:
                dst.append(child)
    return root


def _yaml_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, (int, float)):
        return str(key)
    raise errors.BadRequest(
        f"error decoding YAML: a mapping key of type {type(key).__name__} is not a string"
    )


def json_response(
    obj: Any, code: int = 200, warnings: list[str] | None = None, raw: bytes | None = None
) -> Response:
    headers = {}
    if warnings:
        # warn-text is a quoted-string; JSON quoting escapes quotes and keeps the header ASCII
        headers["Warning"] = ", ".join(f"299 - {json.dumps(w)}" for w in warnings)
    body = raw if raw is not None else orjson.dumps(obj)
    return Response(body, status_code=code, media_type=JSON, headers=headers)


def error_response(err: errors.ApiError) -> Response:
    headers = {}
    retry = err.details.get("retryAfterSeconds") if err.details else None
    if retry:
        headers["Retry-After"] = str(retry)
    return Response(
        orjson.dumps(err.status()), status_code=err.code, media_type=JSON, headers=headers
    )


def success_status(name: str, group: str, kind: str, uid: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "group": group, "kind": kind}
    if uid:
        details["uid"] = uid
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def list_body(
    kind: str,
    api_version: str,
    rev: int,
    items: list[bytes],
    cont: str | None = None,
    remaining: int | None = None,
) -> bytes:
    """A List whose items are already-serialised objects, joined without re-encoding."""
    meta: dict[str, Any] = {"resourceVersion": str(rev)}
    if cont:
        meta["continue"] = cont
        if remaining is not None:
            meta["remainingItemCount"] = remaining
    head = orjson.dumps({"kind": kind, "apiVersion": api_version, "metadata": meta})
    return head[:-1] + b',"items":[' + b",".join(items) + b"]}"


def decode_write(body: bytes, request: Request, opts: WriteOptions) -> Any:
    """Decode the body of a write; under ``fieldValidation=Strict`` its duplicate fields are
    collected into ``opts.duplicates`` for the strict decoding error."""
    strict = opts.field_validation == "Strict"
    return decode(body, request.headers.get("content-type"), opts.duplicates if strict else None)


def write_options(request: Request) -> WriteOptions:
    """``dryRun`` and ``fieldValidation`` from the query string."""
    if not request.scope.get("query_string"):  # the common case: no parsing to do
        return WriteOptions(field_manager=default_field_manager(request.headers.get("user-agent")))
    q = request.query_params
    fv = q.get("fieldValidation") or "Warn"
    if fv not in ("Strict", "Warn", "Ignore"):
        raise errors.BadRequest(f"fieldValidation must be one of Strict, Warn, Ignore, not {fv!r}")
    manager = q.get("fieldManager") or default_field_manager(request.headers.get("user-agent"))
    return WriteOptions(
        dry_run="All" in q.getlist("dryRun"), field_validation=fv, field_manager=manager
    )


def default_field_manager(user_agent: str | None) -> str:
    """Kubernetes' default manager name: the user agent up to its first ``/``."""
    return (user_agent or "unknown").split("/")[0][:128] or "unknown"
