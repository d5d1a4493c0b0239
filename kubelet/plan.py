"""Decide, then act: :func:`compute_plan` is the pod worker's pure state machine.

From a pod (the desired state), its :class:`~kubelet.observe.PodRuntime` (the actual state) and
the restart back-off it returns the next steps, mirroring the Kubernetes kubelet's
``computePodActions``:

1. No ready sandbox → (re)create it, killing what is left of the old one; after a sandbox
   died, a ``restartPolicy: Never`` pod whose containers already ran is not restarted.
2. Init containers run one at a time, in order; the next starts only when the previous exited
   0. A failed init container is restarted (with back-off) unless the policy is Never, which
   fails the pod.
3. Then every app container: started when missing; replaced when its spec hash changed;
   restarted after an exit per ``restartPolicy`` (Always; OnFailure on a non-zero code) unless
   in back-off (``CrashLoopBackOff``, wake when it ends).
4. When no app container will run again the pod is finished and its sandbox is stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .backoff import Backoff
from .observe import CREATED, EXITED, ContainerRecord, PodRuntime
from .specs import container_hash, meta, spec

Obj = dict[str, Any]

CRASH_LOOP = "CrashLoopBackOff"


@dataclass(frozen=True)
class Start:
    """Create and start ``container`` as attempt ``restart_count``.

    ``backoff_event`` (the previous instance's exit time) is set for a restart: the executor
    arms the back-off with it."""

    container: Obj
    restart_count: int
    init: bool = False
    backoff_event: float | None = None


@dataclass
class Plan:
    kill_pod: bool = False  # stop every container and the sandbox first
    create_sandbox: bool = False
    sandbox_attempt: int = 0
    kill: list[tuple[ContainerRecord, str]] = field(default_factory=list)  # (instance, why)
    remove: list[ContainerRecord] = field(default_factory=list)  # never-started leftovers
    start: list[Start] = field(default_factory=list)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → (reason, msg)
    wake_after: float | None = None  # seconds until the plan may change without an event
    finished: bool = False  # no container will run again: stop the sandbox, keep the status

    @property
    def idle(self) -> bool:
        return not (self.kill_pod or self.create_sandbox or self.kill or self.remove or self.start)

    def wake(self, seconds: float) -> None:
        if self.wake_after is None or seconds < self.wake_after:
            self.wake_after = max(0.0, seconds)


def restart_policy(pod: Obj) -> str:
    return str(spec(pod).get("restartPolicy") or "Always")


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def backoff_key(pod: Obj, name: str) -> str:
    return f"{meta(pod).get('uid')}/{name}"


def pod_ref(pod: Obj) -> str:
    m = meta(pod)
    return f"{m.get('name')}_{m.get('namespace')}({m.get('uid')})"


def _restart(
    plan: Plan,
    pod: Obj,
    c: Obj,
    latest: ContainerRecord,
    backoff: Backoff,
    init: bool,
) -> None:
    key = backoff_key(pod, c["name"])
    if backoff.in_backoff_since(key, latest.finished_at):
        delay = backoff.get(key)
        plan.waiting[c["name"]] = (
            CRASH_LOOP,
            f"back-off {delay:g}s restarting failed container={c['name']} pod={pod_ref(pod)}",
        )
        plan.wake(backoff.remaining(key, latest.finished_at))
        return
    plan.start.append(Start(c, latest.restart_count + 1, init, latest.finished_at))


def compute_plan(pod: Obj, rt: PodRuntime, backoff: Backoff) -> Plan:
    """The next steps for ``pod`` given what the runtime holds; see the module docstring."""
    plan = Plan()
    policy = restart_policy(pod)
    sandbox = rt.sandbox
    sandbox_id: str | None = None
    if sandbox is None or not sandbox.ready:
        if sandbox is not None and policy == "Never" and rt.containers:
            plan.kill_pod = bool(rt.running())
            plan.finished = True
            return plan
        plan.create_sandbox = True
        plan.sandbox_attempt = sandbox.attempt + 1 if sandbox is not None else 0
        plan.kill_pod = sandbox is not None
    else:
        sandbox_id = sandbox.id

    def latest_here(name: str) -> ContainerRecord | None:
        return rt.latest(name, sandbox_id) if sandbox_id is not None else None

    def next_count(name: str) -> int:
        prior = rt.latest(name)
        return prior.restart_count + 1 if prior is not None else 0

    # init containers, one at a time
    for c in spec(pod).get("initContainers") or []:
        latest = latest_here(c["name"])
        if latest is None:
            plan.start.append(Start(c, next_count(c["name"]), init=True))
            return plan
        if latest.state == CREATED:
            plan.remove.append(latest)
            plan.start.append(Start(c, latest.restart_count + 1, init=True))
            return plan
        if latest.state != EXITED:
            return plan  # still running
        if latest.exit_code == 0:
            continue
        if policy == "Never":
            plan.kill_pod = bool(rt.running())
            plan.finished = True
            return plan
        _restart(plan, pod, c, latest, backoff, init=True)
        return plan

    # app containers
    will_run = False
    for c in spec(pod).get("containers") or []:
        latest = latest_here(c["name"])
        if latest is None:
            plan.start.append(Start(c, next_count(c["name"])))
            will_run = True
            continue
        if latest.state == CREATED:
            plan.remove.append(latest)
            plan.start.append(Start(c, latest.restart_count + 1))
            will_run = True
            continue
        if latest.state != EXITED:
            will_run = True
            if latest.hash and latest.hash != container_hash(c):
                plan.kill.append(
                    (latest, f"Container {c['name']} definition changed, will be restarted")
                )
                plan.start.append(Start(c, latest.restart_count + 1))
            continue
        if should_restart(policy, latest.exit_code):
            will_run = True
            _restart(plan, pod, c, latest, backoff, init=False)
    if not will_run and spec(pod).get("containers"):
        plan.finished = True
        plan.kill_pod = bool(rt.running()) or bool(sandbox and sandbox.ready)
    return plan
