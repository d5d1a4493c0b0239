"""Resource arithmetic shared by the cache and the plugins: what a pod requests, what a node offers.

Amounts are integers in a ``dict[str, int]``: ``cpu`` in millicores, everything else (memory,
ephemeral-storage, extended resources) in whole units. Contract, as Kubernetes counts:

* a pod requests ``max(sum(app containers) + sum(sidecars), max(each init container + the
  sidecars started before it)) + spec.overhead`` per resource, where sidecars are init
  containers with ``restartPolicy: Always``;
* :func:`pod_nonzero_requests` is the same but gives a container with no cpu / memory request
  100m / 200Mi, so that scoring spreads request-less pods (Kubernetes' "non-zero" requests);
* a node offers ``status.allocatable`` (falling back to ``status.capacity``); ``pods`` is the
  pod-count limit (110 when the node states none).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from machinery.quantity import cpu_millis, to_bytes

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
DEFAULT_MAX_PODS = 110

Resources = dict[str, int]


def amount(name: str, value: Any) -> int:
    """One quantity in this module's units (millicores for cpu, whole units otherwise)."""
    if isinstance(value, str):
        return _parsed(name, value)  # pods repeat a handful of request strings
    return cpu_millis(value) if name == CPU else to_bytes(value)


@functools.lru_cache(maxsize=1024)
def _parsed(name: str, value: str) -> int:
    return cpu_millis(value) if name == CPU else to_bytes(value)


def parse_resources(values: Mapping[str, Any] | None) -> Resources:
    """A ``{"cpu": "500m", "memory": "1Gi"}`` map as integers."""
    return {name: amount(name, v) for name, v in (values or {}).items()}


def add_into(total: Resources, extra: Mapping[str, int], sign: int = 1) -> None:
    """``total += sign * extra`` in place."""
    for name, v in extra.items():
        total[name] = total.get(name, 0) + sign * v


def _max_into(total: Resources, other: Mapping[str, int]) -> None:
    for name, v in other.items():
        if v > total.get(name, 0):
            total[name] = v


def _container_requests(container: Mapping[str, Any], nonzero: bool) -> Resources:
    req = parse_resources((container.get("resources") or {}).get("requests"))
    if nonzero:
        req.setdefault(CPU, DEFAULT_MILLI_CPU_REQUEST)
        req.setdefault(MEMORY, DEFAULT_MEMORY_REQUEST)
    return req


def _pod_requests(pod: Mapping[str, Any], nonzero: bool) -> Resources:
    spec = pod.get("spec") or {}
    total: Resources = {}
    for c in spec.get("containers") or ():
        add_into(total, _container_requests(c, nonzero))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for c in spec.get("initContainers") or ():
        req = _container_requests(c, nonzero)
        if c.get("restartPolicy") == "Always":
            add_into(sidecars, req)
            _max_into(init_peak, sidecars)
        else:
            step = dict(sidecars)
            add_into(step, req)
            _max_into(init_peak, step)
    add_into(total, sidecars)
    _max_into(total, init_peak)
    add_into(total, parse_resources(spec.get("overhead")))
    return total


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    """What the pod needs reserved on its node (see the module contract)."""
    return _pod_requests(pod, nonzero=False)


def pod_nonzero_requests(pod: Mapping[str, Any]) -> Resources:
    """:func:`pod_requests` with the scoring defaults for unset cpu / memory requests."""
    return _pod_requests(pod, nonzero=True)


def node_allocatable(node: Mapping[str, Any]) -> Resources:
    """What the node offers to pods; ``pods`` always present."""
    status = node.get("status") or {}
    alloc = parse_resources(status.get("allocatable") or status.get("capacity"))
    alloc.setdefault(PODS, DEFAULT_MAX_PODS)
    return alloc
