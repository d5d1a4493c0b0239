"""Small read-only accessors for pod and node dicts (Kubernetes JSON shape)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_SCHEDULER_NAME = "default-scheduler"


def pod_key(pod: Mapping[str, Any]) -> str:
    """``namespace/name`` (the queue and cache key)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def namespace_of(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("namespace") or "default"


def name_of(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def priority_of(pod: Mapping[str, Any]) -> int:
    """``spec.priority`` (set by the API server's Priority admission), 0 when unset."""
    return int((pod.get("spec") or {}).get("priority") or 0)


def node_name_of(pod: Mapping[str, Any]) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_finished(pod: Mapping[str, Any]) -> bool:
    """Succeeded or Failed pods hold no resources."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def affinity_of(pod: Mapping[str, Any]) -> dict[str, Any]:
    return (pod.get("spec") or {}).get("affinity") or {}


def required_terms(pod: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """Required pod (anti-)affinity terms; ``kind`` is ``podAffinity`` or ``podAntiAffinity``."""
    section = affinity_of(pod).get(kind) or {}
    return list(section.get("requiredDuringSchedulingIgnoredDuringExecution") or ())


def preferred_terms(pod: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """Weighted pod (anti-)affinity terms: ``[{"weight", "podAffinityTerm"}]``."""
    section = affinity_of(pod).get(kind) or {}
    return list(section.get("preferredDuringSchedulingIgnoredDuringExecution") or ())


def has_pod_affinity(pod: Mapping[str, Any]) -> bool:
    aff = affinity_of(pod)
    return bool(aff.get("podAffinity") or aff.get("podAntiAffinity"))


def responsible_for(pod: Mapping[str, Any], scheduler_name: str) -> bool:
    """Whether a scheduler named ``scheduler_name`` should place this pod."""
    spec = pod.get("spec") or {}
    return (spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) == scheduler_name
