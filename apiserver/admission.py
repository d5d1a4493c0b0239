"""Admission of pods against the namespace's LimitRanges and ResourceQuotas.

:func:`admit_pod` is called by ``PodStrategy.before_create`` with the pod about to be stored
and the LimitRanges, ResourceQuotas and pods of its namespace. Contracts (Kubernetes'
``LimitRanger`` and ``ResourceQuota`` admission plugins):

- LimitRange ``type: Container``: ``defaultRequest`` and ``default`` fill the requests and
  limits a container leaves unset (a request left unset after that defaults to the limit, as
  API defaulting does) and the pod is annotated ``kubernetes.io/limit-ranger``; then ``min``
  and ``max`` are checked (403 ``minimum cpu usage per Container is 100m, but request is
  50m``, ``maximum memory usage per Container is 1Gi, but limit is 2Gi``). ``type: Pod``
  checks the containers' sums against ``min``/``max``.
- ResourceQuota ``spec.hard``: ``pods``/``count/pods``, ``requests.cpu``/``cpu``,
  ``requests.memory``/``memory``, ``limits.cpu``, ``limits.memory``. Usage is computed from the
  namespace's pods that are not terminal (Succeeded/Failed) plus the new pod; going over is 403
  ``exceeded quota: NAME, requested: ..., used: ..., limited: ...``. A quota on a compute
  resource the pod does not state is 403 ``failed quota: NAME: must specify ...``.
- Quota ``status`` is not maintained here (usage is recomputed on every admission).
"""

from __future__ import annotations

from typing import Any

from machinery import errors
from machinery.kinds import lookup
from machinery.quantity import cpu_millis, to_bytes

Obj = dict[str, Any]
RESOURCES = ("cpu", "memory")
LIMIT_RANGER = "kubernetes.io/limit-ranger"
TERMINAL = ("Succeeded", "Failed")
_ALIASES = {"cpu": "requests.cpu", "memory": "requests.memory", "count/pods": "pods"}


def _amount(resource: str, value: Any) -> int:
    """Milli-CPU or bytes (or a count), comparable across spellings."""
    if resource.endswith("cpu"):
        return cpu_millis(value)
    if resource.endswith("memory"):
        return to_bytes(value)
    return int(value)


def _show(resource: str, amount: int) -> str:
    if resource.endswith("cpu"):
        return f"{amount // 1000}" if amount % 1000 == 0 else f"{amount}m"
    if resource.endswith("memory"):
        for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
            if amount and amount % size == 0:
                return f"{amount // size}{unit}"
    return str(amount)


def _containers(pod: Obj) -> list[Obj]:
    spec = pod.get("spec") or {}
    return list(spec.get("containers") or []) + list(spec.get("initContainers") or [])


def _forbidden(pod: Obj, message: str) -> errors.ApiError:
    name = (pod.get("metadata") or {}).get("name") or ""
    return errors.Forbidden(f'pods "{name}" is forbidden: {message}')


# -- LimitRange ---------------------------------------------------------------------------------


def apply_limit_ranges(pod: Obj, ranges: list[Obj]) -> None:
    """Default and check the pod's container resources in place (403 on a violation)."""
    notes: list[str] = []
    for lr in ranges:
        for item in (lr.get("spec") or {}).get("limits") or []:
            if item.get("type") == "Container":
                notes += _default_containers(pod, item)
    for lr in ranges:
        for item in (lr.get("spec") or {}).get("limits") or []:
            if item.get("type") == "Container":
                for c in _containers(pod):
                    requests, limits = _effective(c)
                    _check_bounds(pod, item, requests, limits, "Container")
            elif item.get("type") == "Pod":
                requests, limits = _pod_totals(pod)
                _check_bounds(pod, item, requests, limits, "Pod")
    if notes:
        annotations = pod.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[LIMIT_RANGER] = "LimitRanger plugin set: " + "; ".join(notes)


def _default_containers(pod: Obj, item: Obj) -> list[str]:
    notes = []
    for c in _containers(pod):
        res = c.setdefault("resources", {})
        limits = res.setdefault("limits", {})
        requests = res.setdefault("requests", {})
        set_requests = [
            r for r in RESOURCES if r not in requests and r in (item.get("defaultRequest") or {})
        ]
        set_limits = [r for r in RESOURCES if r not in limits and r in (item.get("default") or {})]
        for r in set_limits:
            limits[r] = item["default"][r]
        for r in set_requests:
            requests[r] = item["defaultRequest"][r]
        for r in set_limits:
            if r not in requests:
                requests[r] = limits[r]
                set_requests.append(r)
        if set_requests:
            notes.append(f"{', '.join(sorted(set_requests))} request for container {c.get('name')}")
        if set_limits:
            notes.append(f"{', '.join(sorted(set_limits))} limit for container {c.get('name')}")
        if not limits:
            res.pop("limits")
        if not requests:
            res.pop("requests")
    return notes


def _effective(c: Obj) -> tuple[Obj, Obj]:
    """A container's requests (a limit stands in for a missing request) and limits."""
    res = c.get("resources") or {}
    limits = dict(res.get("limits") or {})
    return {**limits, **(res.get("requests") or {})}, limits


def _check_bounds(pod: Obj, item: Obj, requests: Obj, limits: Obj, kind: str) -> None:
    for r, bound in (item.get("min") or {}).items():
        value = requests.get(r)
        if value is None:
            raise _forbidden(
                pod, f"minimum {r} usage per {kind} is {bound}.  No request is specified"
            )
        if _amount(r, value) < _amount(r, bound):
            raise _forbidden(
                pod, f"minimum {r} usage per {kind} is {bound}, but request is {value}"
            )
    for r, bound in (item.get("max") or {}).items():
        value = limits.get(r)
        if value is None:
            raise _forbidden(
                pod, f"maximum {r} usage per {kind} is {bound}.  No limit is specified"
            )
        if _amount(r, value) > _amount(r, bound):
            raise _forbidden(pod, f"maximum {r} usage per {kind} is {bound}, but limit is {value}")


def _pod_totals(pod: Obj) -> tuple[Obj, Obj]:
    """Summed requests and limits of the app containers (as strings of canonical units)."""
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        for target, values in zip((requests, limits), _effective(c), strict=True):
            for r in RESOURCES:
                if r in values:
                    target[r] = target.get(r, 0) + _amount(r, values[r])
    show = lambda d: {r: _show(r, v) for r, v in d.items()}  # noqa: E731
    return show(requests), show(limits)


# -- ResourceQuota ------------------------------------------------------------------------------


def pod_usage(pod: Obj) -> dict[str, int]:
    """What one pod counts against a quota: ``pods`` and the compute requests and limits (a
    limit stands in for a missing request; init containers count by their maximum, as
    Kubernetes' effective requests do)."""
    usage = {"pods": 1}
    spec = pod.get("spec") or {}
    for index, kind in enumerate(("requests", "limits")):
        for r in RESOURCES:

            def amount(c: Obj, index: int = index, r: str = r) -> int:
                values = _effective(c)[index]
                return _amount(r, values[r]) if r in values else 0

            app = sum(amount(c) for c in spec.get("containers") or [])
            init = max((amount(c) for c in spec.get("initContainers") or []), default=0)
            usage[f"{kind}.{r}"] = max(app, init)
    return usage


def _unstated(pod: Obj, resource: str) -> list[str]:
    index = 0 if resource.startswith("requests.") else 1
    r = resource.partition(".")[2]
    return [
        c.get("name", "")
        for c in (pod.get("spec") or {}).get("containers") or []
        if r not in _effective(c)[index]
    ]


def check_quotas(pod: Obj, quotas: list[Obj], pods: list[Obj]) -> None:
    """403 if admitting ``pod`` would exceed a quota (see the module docstring)."""
    mine = pod_usage(pod)
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in TERMINAL]
    for quota in sorted(quotas, key=lambda q: (q.get("metadata") or {}).get("name", "")):
        name = (quota.get("metadata") or {}).get("name", "")
        hard = {
            _ALIASES.get(k, k): v for k, v in ((quota.get("spec") or {}).get("hard") or {}).items()
        }
        tracked = {k: v for k, v in hard.items() if k in mine}
        missing = [
            f"{r} for: {','.join(names)}"
            for r in sorted(tracked)
            if r != "pods" and (names := _unstated(pod, r))
        ]
        if missing:
            raise _forbidden(pod, f"failed quota: {name}: must specify {'; '.join(missing)}")
        over = []
        for r in sorted(tracked):
            used = sum(pod_usage(p)[r] for p in live)
            limit = _amount(r, tracked[r])
            if used + mine[r] > limit:
                over.append(r)
        if over:
            used_all = {r: sum(pod_usage(p)[r] for p in live) for r in over}
            requested = ",".join(f"{r}={_show(r, mine[r])}" for r in over)
            used = ",".join(f"{r}={_show(r, used_all[r])}" for r in over)
            limited = ",".join(f"{r}={tracked[r]}" for r in over)
            raise _forbidden(
                pod,
                f"exceeded quota: {name}, requested: {requested}, used: {used}, limited: {limited}",
            )


def admit_pod(pod: Obj, *, limit_ranges: list[Obj], quotas: list[Obj], pods: list[Obj]) -> None:
    """LimitRange defaults and checks, then quota checks; mutates ``pod``; raises Forbidden."""
    apply_limit_ranges(pod, limit_ranges)
    check_quotas(pod, quotas, pods)


def admit_pod_in(registry: Any, pod: Obj) -> None:
    """:func:`admit_pod` with the namespace's objects read from the API server's ``registry``
    (the pods only when a quota exists)."""
    namespace = (pod.get("metadata") or {}).get("namespace")

    def objects(plural: str) -> list[Obj]:
        return [entry.obj for _, entry in registry.list(lookup(plural), namespace)]

    ranges, quotas = objects("limitranges"), objects("resourcequotas")
    if ranges or quotas:
        pods = objects("pods") if quotas else []
        admit_pod(pod, limit_ranges=ranges, quotas=quotas, pods=pods)
