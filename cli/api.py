"""Requests the verbs share beyond :class:`~machinery.client.Client`'s typed calls: Tables,
patches with ``dryRun``, and polling for a deletion to finish."""

from __future__ import annotations

import time
from typing import Any

import orjson

from machinery import errors
from machinery.client import PATCH_CONTENT_TYPES, Client
from machinery.kinds import ResourceType
from machinery.printers import table as local_table

TABLE_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
PAGE = 500


def _ns(rt: ResourceType, namespace: str | None) -> str | None:
    return namespace if rt.namespaced else None


def get_table(
    client: Client,
    rt: ResourceType,
    namespace: str | None,
    name: str | None = None,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> dict[str, Any]:
    """The server's Table for one object or a whole (paged) list. A server that answers with
    plain objects gets them printed by :mod:`machinery.printers` (the same columns)."""
    path = rt.path(_ns(rt, namespace), name)
    params: dict[str, str] = {}
    if not name:
        params["limit"] = str(PAGE)
        for key, value in (("labelSelector", label_selector), ("fieldSelector", field_selector)):
            if value:
                params[key] = value
    merged: dict[str, Any] | None = None
    while True:
        body = client.request("GET", path, params=params, headers={"Accept": TABLE_ACCEPT}).json()
        if body.get("kind") != "Table":
            items = [body] if name else body.get("items") or []
            body = local_table(
                rt.kind,
                items,
                group=rt.group,
                api_version=rt.api_version,
                list_meta=body.get("metadata") if not name else None,
            )
        if merged is None:
            merged = body
        else:
            merged["rows"] = (merged.get("rows") or []) + (body.get("rows") or [])
        cont = (body.get("metadata") or {}).get("continue")
        if not cont or name:
            return merged
        params = {**params, "continue": cont}


def with_type(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with ``apiVersion``/``kind`` first (list items come without them)."""
    return {
        "apiVersion": rt.api_version,
        "kind": rt.kind,
        **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")},
    }


def list_objects(
    client: Client, rt: ResourceType, namespace: str | None, **selectors: str | None
) -> list[dict[str, Any]]:
    body = client.list_all(rt, _ns(rt, namespace), **selectors)
    return [with_type(rt, o) for o in body.get("items") or []]


def patch(
    client: Client,
    rt: ResourceType,
    name: str,
    namespace: str | None,
    body: Any,
    patch_type: str,
    *,
    dry_run: bool = False,
    subresource: str | None = None,
    field_manager: str | None = "kubectl-patch",
) -> dict[str, Any]:
    """PATCH with an optional ``dryRun=All`` (the typed client has no dry-run for patches)."""
    params = {"fieldManager": field_manager} if field_manager else {}
    if dry_run:
        params["dryRun"] = "All"
    resp = client.request(
        "PATCH",
        rt.path(
            _ns(rt, namespace) or (client.namespace if rt.namespaced else None), name, subresource
        ),
        params=params,
        content=orjson.dumps(body),
        headers={"Content-Type": PATCH_CONTENT_TYPES[patch_type]},
    )
    return resp.json()


def wait_deleted(
    client: Client,
    rt: ResourceType,
    name: str,
    namespace: str | None,
    uid: str | None,
    timeout: float,
) -> bool:
    """Poll until the object (with that uid) is gone; False when ``timeout`` passes first."""
    deadline = time.monotonic() + (timeout if timeout > 0 else 7 * 86400)
    delay = 0.05
    while True:
        try:
            cur = client.get(rt, name, _ns(rt, namespace))
        except errors.NotFound:
            return True
        if uid and (cur.get("metadata") or {}).get("uid") != uid:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
