"""Server-side table printing: the ``meta.k8s.io/v1`` ``Table`` that ``kubectl get`` renders.

Contract:

* Column names, order, types and priorities match Kubernetes' built-in printers
  (``pkg/printers/internalversion``) for the kinds tugboat serves; priority 1 columns are the
  ``-o wide`` ones. Like the Kubernetes API server, :func:`table_row` always returns *every*
  cell (the wide ones too) in :func:`column_definitions` order; clients hide priority > 0
  columns themselves.
* Cells are strings, ints or bools exactly as Kubernetes fills them (``"1/1"``, ``"2 (5m ago)"``,
  ``"<none>"``); CRD columns may also be floats or ``None`` (a missing value).
* Objects are plain dicts in Kubernetes JSON shape. A field that Kubernetes defaults on write
  (``spec.replicas``, ``spec.type`` of a Service, ...) is read with that default when absent.
* Custom resources print ``Name`` plus the CRD version's ``additionalPrinterColumns`` (see
  :func:`crd_columns`), or ``Name``/``Age`` when it declares none; any kind without a printer gets
  that same ``Name``/``Age`` table.
* Every function is pure: "now" is a parameter (default: the current UTC time) and inputs are
  never mutated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from machinery.errors import BadRequest

__all__ = [
    "TABLE_API_VERSION",
    "Column",
    "column_definitions",
    "crd_columns",
    "format_label_selector",
    "format_labels",
    "human_age",
    "human_duration",
    "jsonpath_values",
    "pod_status",
    "render",
    "table",
    "table_row",
]

TABLE_API_VERSION = "meta.k8s.io/v1"
INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT = "None", "Metadata", "Object"

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Column:
    """One table column; ``json_path`` is set only for CRD ``additionalPrinterColumns``."""

    name: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""
    json_path: str | None = None

    def definition(self) -> dict[str, Any]:
        """The ``TableColumnDefinition`` wire form."""
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


# --------------------------------------------------------------------------- time


def _parse_time(ts: str) -> datetime:
    """An RFC 3339 timestamp (``Z`` or offset, optional fraction) as an aware datetime."""
    dt = datetime.fromisoformat(ts.strip())
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def human_duration(d: timedelta) -> str:
    """kubectl's duration format (apimachinery ``HumanDuration``): 2-3 significant figures.

    Up to 2 seconds in the future reads as ``0s`` (clock skew); further is ``<invalid>``.
    """
    micros = d // timedelta(microseconds=1)
    seconds = -((-micros) // 1_000_000) if micros < 0 else micros // 1_000_000
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def human_age(ts: str | None, now: datetime | None = None) -> str:
    """Time since ``ts`` as kubectl prints it; ``<unknown>`` when unset, ``<invalid>`` when
    unparseable or more than 2 s in the future."""
    if not ts:
        return "<unknown>"
    try:
        then = _parse_time(ts)
    except ValueError:
        return "<invalid>"
    return human_duration(_now(now) - then)


def _since(ts: str | None, now: datetime) -> str:
    return human_age(ts, now)


def _later(current: datetime | None, ts: str | None) -> datetime | None:
    if not ts:
        return current
    try:
        t = _parse_time(ts)
    except ValueError:
        return current
    return t if current is None or t > current else current


# --------------------------------------------------------------------------- small formatters


def _get(obj: Any, *path: str, default: Any = None) -> Any:
    """``obj[p0][p1]...`` or ``default`` when any step is missing or null."""
    for key in path:
        if not isinstance(obj, Mapping):
            return default
        obj = obj.get(key)
        if obj is None:
            return default
    return obj


def _spec(obj: Obj) -> Mapping[str, Any]:
    return _get(obj, "spec", default={})


def _status(obj: Obj) -> Mapping[str, Any]:
    return _get(obj, "status", default={})


def _name(obj: Obj) -> str:
    return _get(obj, "metadata", "name", default="")


def _age(obj: Obj, now: datetime) -> str:
    return _since(_get(obj, "metadata", "creationTimestamp"), now)


def format_labels(labels: Mapping[str, str] | None) -> str:
    """``k1=v1,k2=v2`` sorted by key, ``<none>`` when empty (``labels.FormatLabels``)."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _selector_string(selector: Mapping[str, Any] | None) -> str:
    """A ``LabelSelector`` in selector syntax; ``""`` selects everything. Raises ValueError."""
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        reqs.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = sorted(expr.get("values") or [])
        if op in ("In", "NotIn"):
            if not values:
                raise ValueError(f"{op} needs values")
            reqs.append((key, f"{key} {op.lower()} ({','.join(values)})"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                raise ValueError(f"{op} takes no values")
            reqs.append((key, key if op == "Exists" else f"!{key}"))
        else:
            raise ValueError(f"{op!r} is not a valid label selector operator")
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def format_label_selector(selector: Mapping[str, Any] | None) -> str:
    """A ``LabelSelector`` as kubectl prints it: ``<none>`` when empty, ``<error>`` when bad."""
    try:
        text = _selector_string(selector)
    except ValueError:
        return "<error>"
    return text or "<none>"


def _containers(template: Mapping[str, Any] | None) -> tuple[str, str]:
    """Comma-joined container names and images of a pod template."""
    containers = _get(template, "spec", "containers", default=[])
    names = ",".join(c.get("name", "") for c in containers)
    images = ",".join(c.get("image", "") for c in containers)
    return names, images


def _quantity(value: Any) -> str:
    return "<nil>" if value is None else str(value)


def _more(items: list[str], count: int, limit: int, empty: str) -> str:
    """``a,b,c + N more...`` after ``limit`` entries."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or empty


def _join_host_port(host: str, port: Any) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _condition(conditions: Iterable[Mapping[str, Any]] | None, ctype: str) -> Mapping | None:
    for c in conditions or []:
        if c.get("type") == ctype:
            return c
    return None


def _condition_true(conditions: Iterable[Mapping[str, Any]] | None, ctype: str) -> bool:
    c = _condition(conditions, ctype)
    return c is not None and c.get("status") == "True"


def _go_float(f: float) -> str:
    """A float as Go's ``fmt.Print`` writes it: shortest digits, ``e`` notation when the
    decimal exponent is below -4 or at least 6 (``1e+06``, ``0.5``, ``123456``)."""
    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits))
    point = len(text) + exp  # digits before the decimal point
    x = point - 1
    if x < -4 or x >= 6:
        mant = text[0] + ("." + text[1:] if len(text) > 1 else "")
        out = f"{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    elif point <= 0:
        out = "0." + "0" * -point + text
    elif point >= len(text):
        out = text + "0" * (point - len(text))
    else:
        out = text[:point] + "." + text[point:]
    return ("-" if sign else "") + out


# --------------------------------------------------------------------------- columns

_NAME_DESC = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DESC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/"
    "api-conventions.md#metadata"
)

NAME = Column("Name", format="name", description=_NAME_DESC)
AGE = Column("Age", description=_AGE_DESC)
_CONTAINERS = Column(
    "Containers", priority=1, description="Names of each container in the template."
)
_IMAGES = Column(
    "Images", priority=1, description="Images referenced by each container in the template."
)


def _col(name: str, description: str, type: str = "string", priority: int = 0) -> Column:
    return Column(name, type=type, description=description, priority=priority)


def _wide(name: str, description: str) -> Column:
    return Column(name, description=description, priority=1)


# --------------------------------------------------------------------------- pods


def _restartable(container: Mapping[str, Any] | None) -> bool:
    """A sidecar: an init container with ``restartPolicy: Always``."""
    return bool(container) and container.get("restartPolicy") == "Always"  # type: ignore[union-attr]


def _terminated_reason(term: Mapping[str, Any], prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def pod_status(pod: Obj, now: datetime | None = None) -> tuple[str, str, str]:
    """The READY, STATUS and RESTARTS cells of a pod, following kubectl's rules.

    STATUS is the pod's reason or phase, refined by init container progress (``Init:1/2``,
    ``Init:CrashLoopBackOff``, ``Init:Error``), then by the last container's waiting or
    terminated reason (``ContainerCreating``, ``CrashLoopBackOff``, ``Completed``, ``OOMKilled``),
    and ``Terminating`` once a non-terminal pod has a deletionTimestamp.
    """
    now = _now(now)
    spec, status = _spec(pod), _status(pod)
    init_specs = spec.get("initContainers") or []
    init_by_name = {c.get("name"): c for c in init_specs}
    total = len(spec.get("containers") or []) + sum(1 for c in init_specs if _restartable(c))
    conditions = status.get("conditions") or []
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in conditions:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    ready = restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        count = int(cs.get("restartCount") or 0)
        finished = _get(cs, "lastState", "terminated", "finishedAt")
        restarts += count
        last_restart = _later(last_restart, finished)
        sidecar = _restartable(init_by_name.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term is not None and int(term.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        if term is not None:
            reason = _terminated_reason(term, "Init:")
        elif wait is not None and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = _later(last_restart, _get(cs, "lastState", "terminated", "finishedAt"))
            state = cs.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if wait is not None and wait.get("reason"):
                reason = wait["reason"]
            elif term is not None:
                reason = _terminated_reason(term)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    if _get(pod, "metadata", "deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(now - last_restart)} ago)"
    return f"{ready}/{total}", reason, restarts_cell


def _pod_cells(pod: Obj, now: datetime) -> list[Any]:
    ready, reason, restarts = pod_status(pod, now)
    spec, status = _spec(pod), _status(pod)
    ips = status.get("podIPs") or []
    pod_ip = (ips[0].get("ip") if ips else status.get("podIP")) or "<none>"
    gates = spec.get("readinessGates") or []
    readiness = "<none>"
    if gates:
        conditions = status.get("conditions") or []
        true = sum(1 for g in gates if _condition_true(conditions, g.get("conditionType", "")))
        readiness = f"{true}/{len(gates)}"
    return [
        _name(pod),
        ready,
        reason,
        restarts,
        _age(pod, now),
        pod_ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        readiness,
    ]


_POD_COLUMNS = (
    NAME,
    _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", "The aggregate status of the containers in this pod."),
    _col(
        "Restarts",
        "The number of times the containers in this pod have been restarted and "
        "when the last container in this pod has restarted.",
    ),
    AGE,
    _wide("IP", "IP address allocated to the pod."),
    _wide("Node", "The node the pod is scheduled onto."),
    _wide("Nominated Node", "The node the scheduler nominated for this pod after preemption."),
    _wide("Readiness Gates", "Readiness gates that are true, out of those declared."),
)

_POD_ROW_CONDITIONS = {
    "Succeeded": [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ],
    "Failed": [
        {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}
    ],
}


# --------------------------------------------------------------------------- workloads


def _deployment_cells(d: Obj, now: datetime) -> list[Any]:
    spec, status = _spec(d), _status(d)
    names, images = _containers(spec.get("template"))
    try:
        selector = _selector_string(spec.get("selector"))
    except ValueError:
        selector = "<invalid>"
    return [
        _name(d),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(d, now),
        names,
        images,
        selector,
    ]


def _replicaset_cells(rs: Obj, now: datetime) -> list[Any]:
    spec, status = _spec(rs), _status(rs)
    names, images = _containers(spec.get("template"))
    return [
        _name(rs),
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(rs, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _statefulset_cells(s: Obj, now: datetime) -> list[Any]:
    spec, status = _spec(s), _status(s)
    names, images = _containers(spec.get("template"))
    ready = f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}"
    return [_name(s), ready, _age(s, now), names, images]


def _daemonset_cells(ds: Obj, now: datetime) -> list[Any]:
    spec, status = _spec(ds), _status(ds)
    names, images = _containers(spec.get("template"))
    return [
        _name(ds),
        status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0),
        status.get("numberAvailable", 0),
        format_labels(_get(spec, "template", "spec", "nodeSelector")),
        _age(ds, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _job_status(job: Obj) -> str:
    conditions = _status(job).get("conditions") or []
    if _condition_true(conditions, "Complete"):
        return "Complete"
    if _condition_true(conditions, "Failed"):
        return "Failed"
    if _get(job, "metadata", "deletionTimestamp"):
        return "Terminating"
    if _condition_true(conditions, "Suspended"):
        return "Suspended"
    if _condition_true(conditions, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_cells(job: Obj, now: datetime) -> list[Any]:
    spec, status = _spec(job), _status(job)
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif (spec.get("parallelism") or 0) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start, end = status.get("startTime"), status.get("completionTime")
    duration = ""
    if start and not end:
        duration = _since(start, now)
    elif start and end:
        duration = human_duration(_parse_time(end) - _parse_time(start))
    names, images = _containers(spec.get("template"))
    return [
        _name(job),
        _job_status(job),
        completions,
        duration,
        _age(job, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _cronjob_cells(cj: Obj, now: datetime) -> list[Any]:
    spec, status = _spec(cj), _status(cj)
    last = status.get("lastScheduleTime")
    suspend = spec.get("suspend")
    job_spec = _get(spec, "jobTemplate", "spec", default={})
    names, images = _containers(job_spec.get("template"))
    return [
        _name(cj),
        spec.get("schedule", ""),
        spec.get("timeZone") or "<none>",
        "<unset>" if suspend is None else ("True" if suspend else "False"),
        len(status.get("active") or []),
        _since(last, now) if last else "<none>",
        _age(cj, now),
        names,
        images,
        format_label_selector(job_spec.get("selector")),
    ]


def _controller_revision_cells(cr: Obj, now: datetime) -> list[Any]:
    owner = next(
        (o for o in _get(cr, "metadata", "ownerReferences", default=[]) if o.get("controller")),
        None,
    )
    controller = "<none>"
    if owner is not None:
        group = owner.get("apiVersion", "").rpartition("/")[0]
        kind = owner.get("kind", "")
        group_kind = f"{kind}.{group}" if group else kind
        controller = (
            f"{group_kind.lower()}/{owner.get('name', '')}" if group_kind else owner.get("name", "")
        )
    return [_name(cr), controller, cr.get("revision", 0), _age(cr, now)]


def _hpa_metrics(spec: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[list, list]:
    """``spec.metrics`` and ``status.currentMetrics``, converting an autoscaling/v1 object."""
    if "metrics" in spec or "targetCPUUtilizationPercentage" not in spec:
        return spec.get("metrics") or [], status.get("currentMetrics") or []
    target = {"type": "Utilization", "averageUtilization": spec["targetCPUUtilizationPercentage"]}
    specs = [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]
    statuses = []
    if status.get("currentCPUUtilizationPercentage") is not None:
        current = {"averageUtilization": status["currentCPUUtilizationPercentage"]}
        statuses = [{"type": "Resource", "resource": {"name": "cpu", "current": current}}]
    return specs, statuses


def _format_hpa_metric(spec: Mapping[str, Any], status: Mapping[str, Any] | None) -> str:
    mtype = spec.get("type")
    key = {
        "External": "external",
        "Pods": "pods",
        "Object": "object",
        "Resource": "resource",
        "ContainerResource": "containerResource",
    }.get(mtype or "")
    if key is None:
        return "<unknown type>"
    source = spec.get(key) or {}
    target = source.get("target") or {}
    current_src = (status or {}).get(key)
    current = (current_src or {}).get("current") or {}
    if key == "pods":
        cur = _quantity(current.get("averageValue")) if current_src is not None else "<unknown>"
        return f"{cur}/{_quantity(target.get('averageValue'))}"
    if key in ("external", "object"):
        if target.get("averageValue") is not None:
            cur = "<unknown>"
            if current.get("averageValue") is not None:
                cur = _quantity(current["averageValue"])
            return f"{cur}/{_quantity(target['averageValue'])} (avg)"
        cur = _quantity(current.get("value")) if current_src is not None else "<unknown>"
        return f"{cur}/{_quantity(target.get('value'))}"
    name = source.get("name", "")
    if target.get("averageValue") is not None:
        cur = _quantity(current.get("averageValue")) if current_src is not None else "<unknown>"
        return f"{name}: {cur}/{_quantity(target['averageValue'])}"
    cur = "<unknown>"
    if current.get("averageUtilization") is not None:
        cur = f"{current['averageUtilization']}%"
    tgt = "<auto>"
    if target.get("averageUtilization") is not None:
        tgt = f"{target['averageUtilization']}%"
    return f"{name}: {cur}/{tgt}"


def _hpa_cells(hpa: Obj, now: datetime) -> list[Any]:
    spec, status = _spec(hpa), _status(hpa)
    specs, statuses = _hpa_metrics(spec, status)
    if not specs:
        targets = "<none>"
    else:
        parts = [
            _format_hpa_metric(s, statuses[i] if i < len(statuses) else None)
            for i, s in enumerate(specs)
        ]
        targets = ", ".join(parts[:2])
        if len(parts) > 2:
            targets += f" + {len(parts) - 2} more..."
    ref = spec.get("scaleTargetRef") or {}
    return [
        _name(hpa),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        targets,
        str(spec.get("minReplicas", 1)),
        spec.get("maxReplicas", 0),
        status.get("currentReplicas", 0),
        _age(hpa, now),
    ]


def _pdb_cells(pdb: Obj, now: datetime) -> list[Any]:
    spec = _spec(pdb)
    min_available = spec.get("minAvailable")
    max_unavailable = spec.get("maxUnavailable")
    return [
        _name(pdb),
        "N/A" if min_available is None else str(min_available),
        "N/A" if max_unavailable is None else str(max_unavailable),
        _status(pdb).get("disruptionsAllowed", 0),
        _age(pdb, now),
    ]


# --------------------------------------------------------------------------- core kinds


def _service_external_ip(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    svc_type = spec.get("type") or "ClusterIP"
    external = list(spec.get("externalIPs") or [])
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if svc_type == "LoadBalancer":
        ingress = _get(status, "loadBalancer", "ingress", default=[])
        lb = sorted({i.get("ip") or i.get("hostname") for i in ingress} - {None, ""})
        if external:
            return ",".join(lb + external)
        return ",".join(lb) or "<pending>"
    if svc_type == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _service_cells(svc: Obj, now: datetime) -> list[Any]:
    spec, status = _spec(svc), _status(svc)
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ports = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        node_port = p.get("nodePort") or 0
        if node_port > 0:
            ports.append(f"{p.get('port', 0)}:{node_port}/{proto}")
        else:
            ports.append(f"{p.get('port', 0)}/{proto}")
    return [
        _name(svc),
        spec.get("type") or "ClusterIP",
        cluster_ips[0] if cluster_ips else "<none>",
        _service_external_ip(spec, status),
        ",".join(ports) or "<none>",
        _age(svc, now),
        format_labels(spec.get("selector")),
    ]


def _format_endpoints(ep: Obj) -> str:
    subsets = ep.get("subsets") or []
    if not subsets:
        return "<none>"
    limit, shown, count = 3, [], 0
    for ss in subsets:
        addresses = [a.get("ip", "") for a in ss.get("addresses") or []]
        ports = ss.get("ports") or []
        if not ports:
            count += len(addresses)
            shown.extend(addresses)
            continue
        for port in ports:
            count += len(addresses)
            shown.extend(_join_host_port(ip, port.get("port", 0)) for ip in addresses)
    text = ",".join(shown[:limit])
    return f"{text} + {count - limit} more..." if len(shown) > limit else text


def _endpoints_cells(ep: Obj, now: datetime) -> list[Any]:
    return [_name(ep), _format_endpoints(ep), _age(ep, now)]


def _endpointslice_cells(es: Obj, now: datetime) -> list[Any]:
    ports = []
    for p in es.get("ports") or []:
        if p.get("port") is not None:
            ports.append(str(p["port"]))
        elif p.get("name") is not None:
            ports.append(p["name"])
        else:
            ports.append("*")
    addresses = [a for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        _name(es),
        es.get("addressType", ""),
        _more(ports, len(ports), 3, "<unset>"),
        _more(addresses, len(addresses), 3, "<unset>"),
        _age(es, now),
    ]


_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"


def _node_cells(node: Obj, now: datetime) -> list[Any]:
    spec, status = _spec(node), _status(node)
    ready = _condition(status.get("conditions"), "Ready")
    states = (
        ["Unknown"] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    )
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in (_get(node, "metadata", "labels", default={})).items():
        if key.startswith(_NODE_ROLE_PREFIX) and key[len(_NODE_ROLE_PREFIX) :]:
            roles.add(key[len(_NODE_ROLE_PREFIX) :])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        for a in status.get("addresses") or []:
            if a.get("type") == kind:
                return a.get("address", "")
        return "<none>"

    return [
        _name(node),
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        _age(node, now),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _core_event(ev: Obj) -> dict[str, Any]:
    """An events.k8s.io/v1 Event in core/v1 shape (the two share one printer)."""
    return {
        "metadata": ev.get("metadata") or {},
        "involvedObject": ev.get("regarding") or {},
        "type": ev.get("type", ""),
        "reason": ev.get("reason", ""),
        "message": ev.get("note", ""),
        "firstTimestamp": ev.get("deprecatedFirstTimestamp"),
        "lastTimestamp": ev.get("deprecatedLastTimestamp"),
        "count": ev.get("deprecatedCount", 0),
        "source": ev.get("deprecatedSource") or {},
        "reportingComponent": ev.get("reportingController", ""),
        "reportingInstance": ev.get("reportingInstance", ""),
        "series": ev.get("series"),
        "eventTime": ev.get("eventTime"),
    }


def _event_cells(ev: Obj, now: datetime) -> list[Any]:
    first = _since(ev.get("firstTimestamp") or ev.get("eventTime"), now)
    last = _since(ev["lastTimestamp"], now) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 0
    series = ev.get("series")
    if series is not None:
        last = _since(series.get("lastObservedTime"), now)
        count = series.get("count", 0)
    elif count == 0:
        count = 1
    involved = ev.get("involvedObject") or {}
    kind = involved.get("kind", "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    instance = source.get("host") or ev.get("reportingInstance") or ""
    return [
        last,
        ev.get("type", ""),
        ev.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        (ev.get("message") or "").strip(),
        first,
        count,
        _name(ev),
    ]


def _events_v1_cells(ev: Obj, now: datetime) -> list[Any]:
    return _event_cells(_core_event(ev), now)


_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _access_modes(modes: list[str] | None) -> str:
    present = set(modes or ())
    return ",".join(short for mode, short in _ACCESS_MODES if mode in present)


def _storage_phase(obj: Obj) -> str:
    if _get(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    return _status(obj).get("phase", "")


def _storage_class(obj: Obj) -> str:
    """The class of a claim or volume: the beta annotation wins over the field, as in kubectl."""
    annotations = _get(obj, "metadata", "annotations", default={})
    storage_class = annotations.get("volume.beta.kubernetes.io/storage-class")
    if storage_class is None:
        storage_class = _spec(obj).get("storageClassName") or ""
    return storage_class


def _pvc_cells(pvc: Obj, now: datetime) -> list[Any]:
    spec, status = _spec(pvc), _status(pvc)
    capacity = access = ""
    if spec.get("volumeName"):
        access = _access_modes(status.get("accessModes"))
        capacity = str(_get(status, "capacity", "storage", default="0"))
    return [
        _name(pvc),
        _storage_phase(pvc),
        spec.get("volumeName", ""),
        capacity,
        access,
        _storage_class(pvc),
        spec.get("volumeAttributesClassName") or "<unset>",
        _age(pvc, now),
        spec.get("volumeMode") or "<unset>",
    ]


def _pv_cells(pv: Obj, now: datetime) -> list[Any]:
    spec = _spec(pv)
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
    return [
        _name(pv),
        str(_get(spec, "capacity", "storage", default="0")),
        _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        _storage_phase(pv),
        claim,
        _storage_class(pv),
        spec.get("volumeAttributesClassName") or "<unset>",
        _status(pv).get("reason", ""),
        _age(pv, now),
        spec.get("volumeMode") or "<unset>",
    ]


def _resource_quota_cells(rq: Obj, now: datetime) -> list[Any]:
    hard = _get(rq, "status", "hard", default={})
    used = _get(rq, "status", "used", default={})
    requests, limits = [], []
    for resource in sorted(hard):
        column = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        column.append(f"{resource}: {used.get(resource, '0')}/{hard[resource]}")
    return [_name(rq), ", ".join(requests), ", ".join(limits), _age(rq, now)]


def _simple(*fields: Callable[[Obj], Any]) -> Callable[[Obj, datetime], list[Any]]:
    """Cells: name, each field, age."""

    def cells(obj: Obj, now: datetime) -> list[Any]:
        return [_name(obj), *(f(obj) for f in fields), _age(obj, now)]

    return cells


def _crd_definition_cells(crd: Obj, now: datetime) -> list[Any]:
    created = _get(crd, "metadata", "creationTimestamp")
    when = _parse_time(created) if created else datetime(1, 1, 1, tzinfo=UTC)
    return [_name(crd), when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]


def _priority_class_cells(pc: Obj, now: datetime) -> list[Any]:
    return [
        _name(pc),
        pc.get("value", 0),
        bool(pc.get("globalDefault", False)),
        _age(pc, now),
        pc.get("preemptionPolicy") or "PreemptLowerPriority",
    ]


def _role_cells(role: Obj, now: datetime) -> list[Any]:
    return _crd_definition_cells(role, now)


def _binding_cells(b: Obj, now: datetime) -> list[Any]:
    ref = b.get("roleRef") or {}
    subjects = b.get("subjects") or []

    def names(kind: str) -> str:
        return ", ".join(
            (
                f"{s.get('namespace', '')}/{s.get('name', '')}"
                if kind == "ServiceAccount"
                else s.get("name", "")
            )
            for s in subjects
            if s.get("kind") == kind
        )

    return [
        _name(b),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _age(b, now),
        names("User"),
        names("Group"),
        names("ServiceAccount"),
    ]


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Printer:
    columns: tuple[Column, ...]
    cells: Callable[[Obj, datetime], list[Any]]


_WORKLOAD_WIDE = (_CONTAINERS, _IMAGES, _wide("Selector", "Label query over the pods."))

_PRINTERS: dict[tuple[str, str], _Printer] = {
    ("", "Pod"): _Printer(_POD_COLUMNS, _pod_cells),
    ("apps", "Deployment"): _Printer(
        (
            NAME,
            _col("Ready", "Number of the pod with ready state"),
            _col(
                "Up-to-date",
                "Total number of non-terminated pods targeted by this deployment "
                "that have the desired template spec.",
            ),
            _col(
                "Available",
                "Total number of available pods (ready for at least "
                "minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            *_WORKLOAD_WIDE,
        ),
        _deployment_cells,
    ),
    ("apps", "ReplicaSet"): _Printer(
        (
            NAME,
            _col("Desired", "Number of desired pods.", "integer"),
            _col(
                "Current", "Number of non-terminated pods targeted by this replica set.", "integer"
            ),
            _col(
                "Ready",
                "Number of pods targeted by this replica set with a Ready Condition.",
                "integer",
            ),
            AGE,
            *_WORKLOAD_WIDE,
        ),
        _replicaset_cells,
    ),
    ("apps", "StatefulSet"): _Printer(
        (NAME, _col("Ready", "Number of the pod with ready state"), AGE, _CONTAINERS, _IMAGES),
        _statefulset_cells,
    ),
    ("apps", "DaemonSet"): _Printer(
        (
            NAME,
            _col("Desired", "Number of nodes that should run the daemon pod.", "integer"),
            _col("Current", "Number of nodes running at least one daemon pod.", "integer"),
            _col("Ready", "Number of nodes running a ready daemon pod.", "integer"),
            _col("Up-to-date", "Number of nodes running the updated daemon pod.", "integer"),
            _col("Available", "Number of nodes running an available daemon pod.", "integer"),
            _col("Node Selector", "Node labels the daemon pod requires."),
            AGE,
            *_WORKLOAD_WIDE,
        ),
        _daemonset_cells,
    ),
    ("apps", "ControllerRevision"): _Printer(
        (
            NAME,
            _col("Controller", "Controller of the object"),
            _col("Revision", "Revision indicates the revision of the state represented by Data."),
            AGE,
        ),
        _controller_revision_cells,
    ),
    ("batch", "Job"): _Printer(
        (
            NAME,
            _col("Status", "Status of the job."),
            _col("Completions", "The number of pods which reached phase Succeeded."),
            _col("Duration", "Time required to complete the job."),
            AGE,
            *_WORKLOAD_WIDE,
        ),
        _job_cells,
    ),
    ("batch", "CronJob"): _Printer(
        (
            NAME,
            _col("Schedule", "The schedule in Cron format."),
            _col("Timezone", "The time zone name for the given schedule."),
            _col("Suspend", "Whether subsequent executions are suspended.", "boolean"),
            _col("Active", "Number of currently running jobs.", "integer"),
            _col("Last Schedule", "When the job was last successfully scheduled."),
            AGE,
            *_WORKLOAD_WIDE,
        ),
        _cronjob_cells,
    ),
    ("autoscaling", "HorizontalPodAutoscaler"): _Printer(
        (
            NAME,
            _col("Reference", "The target resource being scaled."),
            _col("Targets", "Metrics used to calculate the desired replica count."),
            _col("MinPods", "The lower limit for the number of replicas."),
            _col("MaxPods", "The upper limit for the number of replicas."),
            _col("Replicas", "Current number of replicas of pods managed by this autoscaler."),
            AGE,
        ),
        _hpa_cells,
    ),
    ("policy", "PodDisruptionBudget"): _Printer(
        (
            NAME,
            _col("Min Available", "The minimum number of pods that must be available."),
            _col("Max Unavailable", "The maximum number of pods that may be unavailable."),
            _col(
                "Allowed Disruptions",
                "Calculated number of pods that may be disrupted at this time.",
                "integer",
            ),
            AGE,
        ),
        _pdb_cells,
    ),
    ("", "Service"): _Printer(
        (
            NAME,
            _col("Type", "How the Service is exposed."),
            _col("Cluster-IP", "The IP address of the service inside the cluster."),
            _col("External-IP", "IP addresses by which the service is reachable from outside."),
            _col("Port(s)", "The ports exposed by this service."),
            AGE,
            _wide("Selector", "Route service traffic to pods with labels matching this."),
        ),
        _service_cells,
    ),
    ("", "Endpoints"): _Printer(
        (NAME, _col("Endpoints", "The set of all endpoints is the union of all subsets."), AGE),
        _endpoints_cells,
    ),
    ("discovery.k8s.io", "EndpointSlice"): _Printer(
        (
            NAME,
            _col("AddressType", "The type of address carried by this EndpointSlice."),
            _col("Ports", "Network ports exposed by each endpoint."),
            _col("Endpoints", "Addresses of the endpoints in this slice."),
            AGE,
        ),
        _endpointslice_cells,
    ),
    ("", "Node"): _Printer(
        (
            NAME,
            _col("Status", "The status of the node"),
            _col("Roles", "The roles of the node"),
            AGE,
            _col("Version", "Kubelet Version reported by the node."),
            _wide("Internal-IP", "The node's internal IP address."),
            _wide("External-IP", "The node's external IP address."),
            _wide("OS-Image", "OS Image reported by the node."),
            _wide("Kernel-Version", "Kernel Version reported by the node."),
            _wide("Container-Runtime", "ContainerRuntime Version reported by the node."),
        ),
        _node_cells,
    ),
    ("", "Namespace"): _Printer(
        (NAME, _col("Status", "The status of the namespace"), AGE),
        _simple(lambda o: _status(o).get("phase") or "Active"),
    ),
    ("", "ConfigMap"): _Printer(
        (NAME, _col("Data", "The number of keys in data and binaryData."), AGE),
        _simple(lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
    ),
    ("", "Secret"): _Printer(
        (
            NAME,
            _col("Type", "Used to facilitate programmatic handling of secret data."),
            _col("Data", "The number of keys in data."),
            AGE,
        ),
        _simple(lambda o: o.get("type") or "Opaque", lambda o: len(o.get("data") or {})),
    ),
    ("", "ServiceAccount"): _Printer(
        (NAME, _col("Secrets", "The number of secrets this service account may use."), AGE),
        _simple(lambda o: len(o.get("secrets") or [])),
    ),
    ("", "PersistentVolumeClaim"): _Printer(
        (
            NAME,
            _col("Status", "The current phase of the claim."),
            _col("Volume", "The binding reference to the PersistentVolume backing this claim."),
            _col("Capacity", "The actual resources of the underlying volume."),
            _col("Access Modes", "The actual access modes the volume backing the PVC has."),
            _col("StorageClass", "StorageClass of the pvc"),
            _col("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
            AGE,
            _wide("VolumeMode", "What type of volume is required by the claim."),
        ),
        _pvc_cells,
    ),
    ("", "PersistentVolume"): _Printer(
        (
            NAME,
            _col("Capacity", "The size of the volume."),
            _col("Access Modes", "The ways the volume can be mounted."),
            _col("Reclaim Policy", "What happens to the volume when its claim is released."),
            _col("Status", "The current phase of the volume."),
            _col("Claim", "The claim bound to the volume (namespace/name)."),
            _col("StorageClass", "StorageClass of the pv"),
            _col("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
            _col("Reason", "Why the volume is in its phase, when it failed."),
            AGE,
            _wide("VolumeMode", "Whether the volume is a filesystem or a raw block device."),
        ),
        _pv_cells,
    ),
    ("", "ResourceQuota"): _Printer(
        (
            NAME,
            _col(
                "Request",
                "Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            _col(
                "Limit",
                "Limits control the maximum amount of cpu/memory that a container may "
                "use independent of contention on the node.",
            ),
            AGE,
        ),
        _resource_quota_cells,
    ),
    ("coordination.k8s.io", "Lease"): _Printer(
        (NAME, _col("Holder", "The identity of the holder of the current lease."), AGE),
        _simple(lambda o: _spec(o).get("holderIdentity") or ""),
    ),
    ("scheduling.k8s.io", "PriorityClass"): _Printer(
        (
            NAME,
            _col("Value", "The priority value of pods that use this class.", "integer"),
            _col(
                "Global-Default",
                "Whether this class is the default for pods without a class.",
                "boolean",
            ),
            AGE,
            _col("PreemptionPolicy", "The policy for preempting pods with lower priority."),
        ),
        _priority_class_cells,
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _Printer(
        (NAME, Column("Created At", type="date", description=_AGE_DESC)), _crd_definition_cells
    ),
    **{
        ("rbac.authorization.k8s.io", kind): _Printer(
            (NAME, Column("Created At", type="date", description=_AGE_DESC)), _role_cells
        )
        for kind in ("Role", "ClusterRole")
    },
    **{
        ("rbac.authorization.k8s.io", kind): _Printer(
            (
                NAME,
                _col("Role", "Role to bind to."),
                AGE,
                _col("Users", "Users in the binding.", priority=1),
                _col("Groups", "Groups in the binding.", priority=1),
                _col("ServiceAccounts", "ServiceAccounts in the binding.", priority=1),
            ),
            _binding_cells,
        )
        for kind in ("RoleBinding", "ClusterRoleBinding")
    },
}
_EVENT_COLUMNS = (
    _col("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    _col("Type", "Type of this event (Normal, Warning)."),
    _col("Reason", "A short, machine understandable string for the transition."),
    _col("Object", "The object that this event is about."),
    _wide("Subobject", "The part of the object the event is about, as a field path."),
    _wide("Source", "The component reporting this event."),
    _col("Message", "A human-readable description of the status of this operation."),
    _wide("First Seen", "The time at which the event was first recorded."),
    _wide("Count", "The number of times this event has occurred."),
    Column("Name", format="name", priority=1, description=_NAME_DESC),
)
_PRINTERS[("", "Event")] = _Printer(_EVENT_COLUMNS, _event_cells)
_PRINTERS[("events.k8s.io", "Event")] = _Printer(_EVENT_COLUMNS, _events_v1_cells)

# Printers by kind alone, for callers that pass no group; the core group wins a tie.
_BY_KIND: dict[str, _Printer] = {
    kind: p for (group, kind), p in sorted(_PRINTERS.items(), key=lambda i: i[0][0] == "")
}


def _custom_cells(columns: Sequence[Column]) -> Callable[[Obj, datetime], list[Any]]:
    def cells(obj: Obj, now: datetime) -> list[Any]:
        return [_name(obj), *(_crd_cell(c, obj, now) for c in columns[1:])]

    return cells


_DEFAULT_COLUMNS = (
    NAME,
    Column("Age", type="date", description=_AGE_DESC, json_path=".metadata.creationTimestamp"),
)


def _printer(kind: str, group: str, columns: Sequence[Column] | None) -> _Printer:
    if columns:
        return _Printer(tuple(columns), _custom_cells(columns))
    found = _PRINTERS.get((group, kind)) or (_BY_KIND.get(kind) if not group else None)
    return found or _Printer(_DEFAULT_COLUMNS, _custom_cells(_DEFAULT_COLUMNS))


# --------------------------------------------------------------------------- CRD columns


def crd_columns(crd_version: Mapping[str, Any]) -> list[Column]:
    """The columns of a custom resource version: ``Name``, then the version's
    ``additionalPrinterColumns`` (or ``Age`` when it declares none).

    Like Kubernetes, columns stop at the first one whose ``jsonPath`` does not parse.
    """
    declared = crd_version.get("additionalPrinterColumns") or []
    if not declared:
        return list(_DEFAULT_COLUMNS)
    columns = [NAME]
    for spec in declared:
        path = spec.get("jsonPath", "")
        try:
            _parse_jsonpath(path)
        except ValueError:
            break
        columns.append(
            Column(
                name=spec.get("name", ""),
                type=spec.get("type", "string"),
                format=spec.get("format", ""),
                priority=int(spec.get("priority") or 0),
                description=spec.get("description")
                or f"Custom resource definition column (in JSONPath format): {path}",
                json_path=path,
            )
        )
    return columns


def _crd_cell(column: Column, obj: Obj, now: datetime) -> Any:
    """One CRD cell: the first JSONPath match, typed by the column (``None`` when missing)."""
    values = jsonpath_values(obj, column.json_path or "")
    if not values or values[0] is None:
        return None
    value = values[0]
    ctype = column.type
    if ctype == "string":
        return _text(value)
    if ctype == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if ctype == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if ctype == "boolean" and isinstance(value, bool):
        return value
    if ctype == "date" and isinstance(value, str):
        if value in ("", "null"):
            return "<unknown>"
        try:
            return human_duration(_now(now) - _parse_time(value))
        except ValueError:
            return "<invalid>"
    return None


def _text(value: Any) -> str:
    """A JSON value as kubectl's JSONPath prints it: objects and lists as compact JSON."""
    if isinstance(value, dict | list):
        out = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


# A step: ("field", name) | ("index", i) | ("slice", start, stop) | ("all",)
#         | ("filter", sub_steps, op, literal)   (op "" tests existence)
_Step = tuple[Any, ...]
_FIELD = re.compile(r"[^\s()\[\]{}'\"=!<>~,|&]+")
_FILTER = re.compile(r"^\?\(\s*@(.*?)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$", re.S)


def _parse_jsonpath(expr: str) -> list[_Step]:
    """Parse the simple JSONPath subset CRD columns use: ``.a.b``, ``[0]``, ``[*]``, ``['k']``,
    ``[1:3]`` and ``[?(@.type=="Ready")]``. Raises ValueError for anything else."""
    s = expr.strip()
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1].strip()
    if s.startswith("$"):
        s = s[1:]
    if not s:
        raise ValueError("empty JSONPath")
    steps: list[_Step] = []
    i = 0
    while i < len(s):
        if s[i] == ".":
            j = i + 1
            while j < len(s) and s[j] not in ".[":
                j += 1
            name = s[i + 1 : j]
            if not name and j == len(s) and not steps:  # "." alone: the whole object
                break
            if not _FIELD.fullmatch(name):
                raise ValueError(f"unsupported JSONPath {expr!r}")
            steps.append(("all",) if name == "*" else ("field", name))
            i = j
        elif s[i] == "[":
            j, depth, quote = i + 1, 1, ""
            while j < len(s) and depth:
                ch = s[j]
                if quote:
                    quote = "" if ch == quote else quote
                elif ch in "'\"":
                    quote = ch
                elif ch in "[(":
                    depth += 1
                elif ch in "])":
                    depth -= 1
                j += 1
            if depth:
                raise ValueError(f"unclosed bracket in JSONPath {expr!r}")
            steps.append(_bracket(s[i + 1 : j - 1].strip(), expr))
            i = j
        else:
            raise ValueError(f"unsupported JSONPath {expr!r}")
    return steps


def _bracket(inner: str, expr: str) -> _Step:
    if inner == "*":
        return ("all",)
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return ("field", inner[1:-1])
    if re.fullmatch(r"-?\d+", inner):
        return ("index", int(inner))
    m = re.fullmatch(r"(-?\d*):(-?\d*)", inner)
    if m:
        return ("slice", int(m[1]) if m[1] else None, int(m[2]) if m[2] else None)
    m = _FILTER.match(inner)
    if m:
        sub = _parse_jsonpath(m[1]) if m[1] else []
        return ("filter", sub, m[2] or "", _literal(m[3]) if m[2] else None)
    raise ValueError(f"unsupported JSONPath {expr!r}")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"unsupported JSONPath literal {text!r}") from None


def _compare(left: Any, op: str, right: Any) -> bool:
    if op in ("==", "!="):
        same = left == right and isinstance(left, bool) == isinstance(right, bool)
        return same if op == "==" else not same
    numbers = (int, float)
    if not (isinstance(left, numbers) and isinstance(right, numbers)) and not (
        isinstance(left, str) and isinstance(right, str)
    ):
        return False
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]


def _apply(nodes: list[Any], steps: Sequence[_Step]) -> list[Any]:
    for step in steps:
        out: list[Any] = []
        kind = step[0]
        for node in nodes:
            if kind == "field":
                if isinstance(node, Mapping) and step[1] in node:
                    out.append(node[step[1]])
            elif kind == "all":
                if isinstance(node, Mapping):
                    out.extend(node[k] for k in sorted(node))
                elif isinstance(node, list):
                    out.extend(node)
            elif kind == "index":
                if isinstance(node, list) and -len(node) <= step[1] < len(node):
                    out.append(node[step[1]])
            elif kind == "slice":
                if isinstance(node, list):
                    out.extend(node[step[1] : step[2]])
            elif kind == "filter" and isinstance(node, list):
                _, sub, op, literal = step
                for item in node:
                    found = _apply([item], sub)
                    if found and (not op or _compare(found[0], op, literal)):
                        out.append(item)
        nodes = out
    return nodes


def jsonpath_values(obj: Any, expr: str) -> list[Any]:
    """Every value the JSONPath ``expr`` selects in ``obj`` (missing keys select nothing).

    Raises ValueError for syntax outside the supported subset (see :func:`crd_columns`).
    """
    return _apply([obj], _parse_jsonpath(expr))


# --------------------------------------------------------------------------- public API


def column_definitions(
    kind: str, group: str = "", *, columns: Sequence[Column] | None = None
) -> list[dict[str, Any]]:
    """The ``columnDefinitions`` of ``kind`` in ``group`` (or of explicit CRD ``columns``).

    With ``group`` empty, a kind that exists only outside the core group still finds its printer.
    """
    return [c.definition() for c in _printer(kind, group, columns).columns]


def table_row(
    kind: str,
    obj: Obj,
    *,
    group: str = "",
    now: datetime | None = None,
    columns: Sequence[Column] | None = None,
) -> list[Any]:
    """All cells of one object, in :func:`column_definitions` order (wide ones included)."""
    return _printer(kind, group, columns).cells(obj, _now(now))


def table(
    kind: str,
    objs: Iterable[Obj],
    *,
    group: str = "",
    include_object: str = INCLUDE_METADATA,
    api_version: str = "v1",
    list_meta: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    columns: Sequence[Column] | None = None,
    no_headers: bool = False,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` ``Table`` of ``objs``.

    ``include_object`` is ``None``, ``Metadata`` (default; also ``""``) or ``Object``: each row
    carries nothing, a ``PartialObjectMetadata``, or the object (``kind``/``apiVersion`` filled
    from ``kind``/``api_version`` when missing). Other values raise :class:`BadRequest`.
    ``no_headers`` leaves ``columnDefinitions`` empty (watch events after the first).
    ``list_meta`` becomes the table's metadata (``resourceVersion``, ``continue``, ...).
    """
    mode = include_object or INCLUDE_METADATA
    if mode not in (INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT):
        raise BadRequest(f'unrecognized includeObject value: "{include_object}"')
    printer = _printer(kind, group, columns)
    moment = _now(now)
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": printer.cells(obj, moment)}
        if kind == "Pod" and not group and not columns:
            conditions = _POD_ROW_CONDITIONS.get(_status(obj).get("phase", ""))
            if conditions:
                row["conditions"] = [dict(c) for c in conditions]
        if mode == INCLUDE_OBJECT:
            row["object"] = {"kind": kind, "apiVersion": api_version, **obj}
        elif mode == INCLUDE_METADATA:
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": TABLE_API_VERSION,
                "metadata": dict(obj.get("metadata") or {}),
            }
        else:
            row["object"] = None
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": dict(list_meta or {}),
        "columnDefinitions": [] if no_headers else [c.definition() for c in printer.columns],
        "rows": rows,
    }


# --------------------------------------------------------------------------- text rendering


def _cell_text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, str):
        cut = min((i for i in (cell.find(c) for c in "\f\n\r") if i >= 0), default=-1)
        return cell if cut < 0 else cell[:cut] + "..."
    return _text(cell)


def render(tbl: Mapping[str, Any], *, wide: bool = False, no_headers: bool = False) -> str:
    """A Table as ``kubectl get`` prints it: upper-case headers, columns padded to their widest
    cell plus 3 spaces (at least 6), priority > 0 columns only when ``wide``."""
    defs = tbl.get("columnDefinitions") or []
    keep = [i for i, d in enumerate(defs) if wide or not d.get("priority")]
    lines: list[list[str]] = []
    if not no_headers:
        lines.append([defs[i]["name"].upper() for i in keep])
    for row in tbl.get("rows") or []:
        cells = row.get("cells") or []
        lines.append([_cell_text(cells[i]) if i < len(cells) else "" for i in keep])
    if not lines or not keep:
        return ""
    widths = [max(6, max(len(line[c]) for line in lines) + 3) for c in range(len(keep) - 1)]
    out = []
    for line in lines:
        padded = [cell.ljust(widths[c]) for c, cell in enumerate(line[:-1])]
        out.append("".join(padded) + line[-1])
    return "\n".join(out) + "\n"
