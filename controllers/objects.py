"""Small, pure helpers over Kubernetes objects as plain dicts.

Everything here reads its arguments and never mutates them unless the name says so
(``set_*``). Times are RFC 3339 strings on the wire and float epoch seconds in code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# the metadata accessors live in machinery (shared with it); controllers import them from here
from machinery.objects import (  # noqa: F401
    annotations_of,
    is_deleting,
    labels_of,
    meta,
    name_of,
    namespace_of,
    uid_of,
)

Obj = dict[str, Any]


def key_of(obj: Obj) -> str:
    """The work-queue key: ``namespace/name``, or ``name`` for cluster-scoped objects."""
    ns = namespace_of(obj)
    return f"{ns}/{name_of(obj)}" if ns else name_of(obj)


def split_key(key: str) -> tuple[str, str]:
    """``namespace/name`` → (namespace, name); ``name`` → ("", name)."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else ("", ns)


def finalizers_of(obj: Obj) -> list[str]:
    return list(meta(obj).get("finalizers") or [])


# -- time --------------------------------------------------------------------------------------


def parse_time(value: str | None) -> float | None:
    """An RFC 3339 timestamp as epoch seconds (None stays None)."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def format_time(epoch: float) -> str:
    """Epoch seconds as Kubernetes writes them: second precision, ``Z``."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def created_at(obj: Obj) -> float:
    """creationTimestamp as epoch seconds; missing sorts first (0)."""
    return parse_time(meta(obj).get("creationTimestamp")) or 0.0


# -- owner references ------------------------------------------------------------------------


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_reference(
    owner: Obj, *, controller: bool = True, block_owner_deletion: bool = True
) -> Obj:
    """An ownerReference pointing at ``owner`` (which must carry apiVersion and kind)."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": controller,
        "blockOwnerDeletion": block_owner_deletion,
    }


# -- pods --------------------------------------------------------------------------------------


def pod_condition(pod: Obj, ctype: str) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def is_pod_ready(pod: Obj) -> bool:
    cond = pod_condition(pod, "Ready")
    return bool(cond) and cond.get("status") == "True"


def is_pod_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds`` (Kubernetes ``IsPodAvailable``)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


def is_pod_active(pod: Obj) -> bool:
    """Not terminal and not being deleted (Kubernetes ``IsPodActive``)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not is_deleting(pod)


def spec_replicas(obj: Obj, default: int = 1) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return default if value is None else int(value)


def status_int(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)
