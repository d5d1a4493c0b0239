"""OpenAPI v3: an index of group/versions and one document per group/version.

kubectl reads these to decide on server-side field validation (it looks for a ``patch``
operation carrying the kind's ``x-kubernetes-group-version-kind`` and a ``fieldValidation``
parameter) and ``kubectl explain`` walks ``components.schemas``.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import orjson

from machinery import types as api_types
from machinery.kinds import Registry as Kinds
from machinery.kinds import ResourceType

_PARAMS = {
    name: {"name": name, "in": "query", "schema": {"type": "string"}, "description": desc}
    for name, desc in {
        "fieldValidation": "Strict, Warn or Ignore: what to do with unknown or duplicate fields.",
        "dryRun": "All: validate and compute the result without storing it.",
        "fieldManager": "The name of the actor making the change.",
        "labelSelector": "Restrict the list to objects whose labels match.",
        "fieldSelector": "Restrict the list to objects whose fields match.",
        "watch": "Stream changes instead of listing.",
    }.items()
}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_ref(t: ResourceType) -> dict[str, Any]:
    name = api_types.schema_name(t.api_version, t.kind)
    return {"$ref": f"#/components/schemas/{name}"}


def _operations(t: ResourceType, item: bool) -> dict[str, Any]:
    gvk = {"group": t.group, "version": t.version, "kind": t.kind}
    body = {"content": {"application/json": {"schema": _schema_ref(t)}}, "required": True}
    ok = {"200": {"description": "OK", "content": {"application/json": {"schema": _schema_ref(t)}}}}

    def op(action: str, params: list[str], with_body: bool) -> dict[str, Any]:
        o: dict[str, Any] = {
            "operationId": f"{action}{t.kind}",
            "responses": ok,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [_PARAMS[p] for p in params],
        }
        if with_body:
            o["requestBody"] = body
        return o

    if item:
        return {
            "get": op("get", [], False),
            "put": op("put", ["dryRun", "fieldManager", "fieldValidation"], True),
            "patch": op("patch", ["dryRun", "fieldManager", "fieldValidation"], True)
            | {
                "requestBody": {
                    "content": {
                        "application/json-patch+json": {"schema": {"type": "object"}},
                        "application/merge-patch+json": {"schema": {"type": "object"}},
                        "application/apply-patch+yaml": {"schema": {"type": "object"}},
                    },
                    "required": True,
                }
            },
            "delete": op("delete", ["dryRun"], False),
        }
    return {
        "get": op("list", ["labelSelector", "fieldSelector", "watch"], False),
        "post": op("post", ["dryRun", "fieldManager", "fieldValidation"], True),
    }


def document(
    kinds: Kinds, group: str, version: str, extra_schemas: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    types = [t for t in kinds.types if t.group == group and t.version == version]
    if not types:
        return None
    paths: dict[str, Any] = {}
    prefix = "/" + _gv_path(group, version)
    for t in types:
        coll = (
            f"{prefix}/namespaces/{{namespace}}/{t.plural}"
            if t.namespaced
            else f"{prefix}/{t.plural}"
        )
        paths[coll] = _operations(t, item=False)
        paths[coll + "/{name}"] = _operations(t, item=True)
    schemas = dict(_builtin_schemas())
    schemas.update(extra_schemas or {})
    return {
        "openapi": "3.0.0",
        "info": {"title": "tugboat", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }


@lru_cache(maxsize=1)
def _builtin_schemas() -> dict[str, Any]:
    return api_types.openapi_components()


def index(kinds: Kinds, docs_hash: dict[str, str]) -> dict[str, Any]:
    """The ``/openapi/v3`` index; ``docs_hash`` maps a gv path to its document's hash."""
    gvs = sorted({(t.group, t.version) for t in kinds.types})
    return {
        "paths": {
            _gv_path(g, v): {
                "serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash="
                f"{docs_hash.get(_gv_path(g, v), '0')}"
            }
            for g, v in gvs
        }
    }


def digest(doc: dict[str, Any]) -> str:
    return hashlib.sha512(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32].upper()
