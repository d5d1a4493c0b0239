"""Pure pod status computation: phase, conditions, container statuses, IPs, QoS.

:func:`pod_status` turns the runtime snapshot plus the worker's waiting reasons into the
``status`` the API server should hold, following Kubernetes' rules (``getPhase``,
``generateAPIPodStatus``):

- phase: Pending until every init container succeeded and no app container is still waiting
  for its first start; Running while a container runs or will be restarted; Succeeded when
  every app container exited 0 and none restarts; Failed when one failed and none restarts
  (or an init container failed under ``restartPolicy: Never``). A terminal phase never changes.
- container ``state``: waiting (ContainerCreating, PodInitializing, CrashLoopBackOff,
  ErrImagePull, ...), running or terminated; ``lastState`` is the instance before; the
  restart count comes from the runtime's annotations, so it survives agent restarts.
- conditions keep their ``lastTransitionTime`` while their status does not change.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from .observe import CREATED, EXITED, RUNNING, ContainerRecord, PodRuntime
from .plan import restart_policy
from .specs import qos_class, spec

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _terminated(c: ContainerRecord, runtime_name: str) -> Obj:
    out: Obj = {
        "exitCode": c.exit_code,
        "reason": c.reason or ("Completed" if c.exit_code == 0 else "Error"),
        "startedAt": rfc3339(c.started_at) if c.started_at else None,
        "finishedAt": rfc3339(c.finished_at) if c.finished_at else None,
        "containerID": f"{runtime_name}://{c.id}",
    }
    if c.message:
        out["message"] = c.message
    return {"terminated": out}


def container_status(
    c: Obj,
    rt: PodRuntime,
    waiting: tuple[str, str] | None,
    default_waiting: str,
    runtime_name: str,
    probed: tuple[bool, bool] | None = None,
) -> Obj:
    """The ``containerStatuses`` entry for spec container ``c``; ``probed`` is (ready,
    started) from its probes when it runs (both true without probes)."""
    name = c["name"]
    latest, previous = rt.latest(name), rt.previous(name)
    status: Obj = {
        "name": name,
        "image": c.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": latest.restart_count if latest else 0,
        "started": False,
        "state": {},
        "lastState": {},
    }
    if latest is not None:
        status["imageID"] = latest.image_ref
        status["containerID"] = f"{runtime_name}://{latest.id}"
    if waiting is not None:
        reason, message = waiting
        status["state"] = {"waiting": {"reason": reason, "message": message}}
        if latest is not None and latest.state == EXITED:
            status["lastState"] = _terminated(latest, runtime_name)
        return status
    if latest is None or latest.state == CREATED:
        status["state"] = {"waiting": {"reason": default_waiting}}
        if latest is not None and previous is not None and previous.state == EXITED:
            status["lastState"] = _terminated(previous, runtime_name)
        return status
    if previous is not None and previous.state == EXITED:
        status["lastState"] = _terminated(previous, runtime_name)
    if latest.state == RUNNING:
        status["state"] = {"running": {"startedAt": rfc3339(latest.started_at)}}
        if probed is None:  # not probed yet: a probe must pass first
            startup = bool(c.get("startupProbe"))
            probed = (not (startup or c.get("readinessProbe")), not startup)
        status["ready"], status["started"] = probed
    elif latest.state == EXITED:
        status["state"] = _terminated(latest, runtime_name)
    else:
        status["state"] = {"waiting": {"reason": "ContainerStatusUnknown"}}
    return status


def _state(status: Obj) -> str:
    return next(iter(status.get("state") or {"waiting": None}))


def phase(pod: Obj, init_statuses: list[Obj], statuses: list[Obj]) -> str:
    """Kubernetes' ``getPhase`` over the computed container statuses."""
    policy = restart_policy(pod)
    for s in init_statuses:
        term = (s["state"].get("terminated") or {}) if _state(s) == "terminated" else None
        if term is not None and term.get("exitCode") == 0:
            continue
        failed = term is not None or bool((s.get("lastState") or {}).get("terminated"))
        if failed and policy == "Never":
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for s in statuses:
        kind = _state(s)
        if kind == "running":
            running += 1
        elif kind == "terminated":
            stopped += 1
            if s["state"]["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif (s.get("lastState") or {}).get("terminated"):
            stopped += 1  # waiting to restart
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"  # OnFailure: the failed ones restart
    return "Pending"


def _condition(
    old: list[Obj], type_: str, status: str, now: float, reason: str = "", message: str = ""
) -> Obj:
    prior = next((c for c in old if c.get("type") == type_), None)
    when = rfc3339(now)
    if prior is not None and prior.get("status") == status and prior.get("lastTransitionTime"):
        when = prior["lastTransitionTime"]
    cond: Obj = {"type": type_, "status": status, "lastProbeTime": None}
    cond["lastTransitionTime"] = when
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def conditions(
    old: list[Obj], phase_: str, init_statuses: list[Obj], statuses: list[Obj], now: float
) -> list[Obj]:
    out = []
    pending_init = [
        s["name"]
        for s in init_statuses
        if (s["state"].get("terminated") or {}).get("exitCode", -1) != 0
    ]
    if pending_init:
        out.append(
            _condition(
                old,
                "Initialized",
                "False",
                now,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending_init)}]",
            )
        )
    else:
        out.append(_condition(old, "Initialized", "True", now))
    unready = [s["name"] for s in statuses if not s["ready"]]
    if phase_ in TERMINAL:
        ready = ("False", "PodCompleted", "")
    elif unready:
        ready = ("False", "", f"containers with unready status: [{' '.join(unready)}]")
    else:
        ready = ("True", "", "")
    status, reason, message = ready
    out.append(_condition(old, "Ready", status, now, reason or "ContainersNotReady", message))
    out.append(
        _condition(old, "ContainersReady", status, now, reason or "ContainersNotReady", message)
    )
    if status == "True":
        out[-1].pop("reason", None)
        out[-2].pop("reason", None)
    out.append(_condition(old, "PodScheduled", "True", now))
    return out


def pod_status(
    pod: Obj,
    rt: PodRuntime,
    waiting: dict[str, tuple[str, str]],
    *,
    host_ip: str,
    now: float,
    runtime_name: str = "containerd",
    probed: dict[str, tuple[bool, bool]] | None = None,
) -> Obj:
    """The pod's new ``status`` (a fresh dict; ``pod`` is not modified). ``probed``: container
    name → (ready, started) from its probes."""
    old = copy.deepcopy(pod.get("status") or {})
    if old.get("phase") in TERMINAL:
        return old
    s = spec(pod)
    sandbox = rt.sandbox
    init_statuses = []
    init_done = True
    for c in s.get("initContainers") or []:
        st = container_status(c, rt, waiting.get(c["name"]), "PodInitializing", runtime_name)
        init_statuses.append(st)
        if (st["state"].get("terminated") or {}).get("exitCode", -1) != 0:
            init_done = False
    statuses = [
        container_status(
            c,
            rt,
            waiting.get(c["name"]),
            "ContainerCreating" if init_done else "PodInitializing",
            runtime_name,
            (probed or {}).get(c["name"]),
        )
        for c in s.get("containers") or []
    ]
    ph = phase(pod, init_statuses, statuses)
    if ph in TERMINAL:
        for st in statuses:
            st["ready"] = False
    status: Obj = {
        "phase": ph,
        "conditions": conditions(old.get("conditions") or [], ph, init_statuses, statuses, now),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": old.get("startTime") or rfc3339(now),
        "qosClass": qos_class(s),
        "containerStatuses": statuses,
    }
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    ip = sandbox.ip if sandbox is not None and sandbox.ready else old.get("podIP")
    if s.get("hostNetwork"):
        ip = host_ip
    if ip:
        status["podIP"] = ip
        extra = list(sandbox.extra_ips) if sandbox is not None and sandbox.ready else []
        status["podIPs"] = [{"ip": ip}] + [{"ip": x} for x in extra]
    for key in ("nominatedNodeName", "message", "reason"):
        if old.get(key):
            status[key] = old[key]
    return status
