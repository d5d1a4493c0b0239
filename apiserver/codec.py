"""Request bodies in, response bodies out: JSON/YAML decoding, Status and List encoding."""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response

from apiserver import protobuf
from apiserver.registry import WriteOptions
from machinery import errors

MAX_BODY = 3 * 1024 * 1024
JSON = "application/json"

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def decode(body: bytes, content_type: str | None) -> Any:
    """Decode a request body; a missing Content-Type means JSON (the Python client sends none)."""
    if len(body) > MAX_BODY:
        raise errors.RequestEntityTooLarge("the request body is larger than 3 MiB")
    mt = media_type(content_type)
    if mt == protobuf.MEDIA_TYPE:
        return protobuf.decode(body)
    if mt in ("", JSON, "*/*") or mt.endswith("+json"):
        try:
            return orjson.loads(body) if body else {}
        except orjson.JSONDecodeError as exc:
            raise errors.BadRequest(f"the body of the request was in an unknown format: {exc}")
    if mt in (
        "application/yaml",
        "application/x-yaml",
        "text/yaml",
        "application/apply-patch+yaml",
    ):
        try:
            return yaml.safe_load(body) or {}
        except yaml.YAMLError as exc:
            raise errors.BadRequest(f"error decoding YAML: {exc}")
    raise errors.UnsupportedMediaType(
        f"the body of the request was in an unknown format - "
        f"accepted media types include: {JSON}, application/yaml"
    )


def json_response(
    obj: Any, code: int = 200, warnings: list[str] | None = None, raw: bytes | None = None
) -> Response:
    headers = {}
    if warnings:
        headers["Warning"] = ", ".join(f'299 - "{w}"' for w in warnings)
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


def write_options(request: Request) -> WriteOptions:
    """``dryRun`` and ``fieldValidation`` from the query string."""
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
