"""Read-only accessors of an object's metadata (Kubernetes JSON as plain dicts), shared by the
components that cannot import each other (controllers, machinery)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def meta(obj: Obj) -> Obj:
    """``obj.metadata`` (an empty dict when missing)."""
    return obj.get("metadata") or {}


def name_of(obj: Obj) -> str:
    return str(meta(obj).get("name") or "")


def namespace_of(obj: Obj) -> str:
    return str(meta(obj).get("namespace") or "")


def uid_of(obj: Obj) -> str:
    return str(meta(obj).get("uid") or "")


def labels_of(obj: Obj) -> dict[str, str]:
    return dict(meta(obj).get("labels") or {})


def annotations_of(obj: Obj) -> dict[str, str]:
    return dict(meta(obj).get("annotations") or {})


def is_deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))
