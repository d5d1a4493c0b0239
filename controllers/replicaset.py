"""ReplicaSet controller: keeps ``spec.replicas`` pods matching the selector.

Wiring: informers on ReplicaSets and Pods. A ReplicaSet event enqueues its key; a pod event
enqueues the ReplicaSet that controls it (verified by uid), or, for an orphan, every ReplicaSet
in its namespace whose selector matches it.

``reconcile(key)`` reads the ReplicaSet and the namespace's pods from the caches (the pods live
when the pod cache has not yet reached the revision at which the ReplicaSet was first seen, see
:mod:`controllers.freshness`), adopts
matching orphans and releases owned pods that stopped matching, then, only when its
:class:`~controllers.expectations.Expectations` for the key are satisfied, creates the missing
pods in slow-start batches (1, 2, 4, ...; a batch error stops the rest) or deletes the least
valuable surplus pods (:mod:`controllers.ranking`). It finally writes ``status`` through the
status subresource: ``replicas``, ``fullyLabeledReplicas``, ``readyReplicas``,
``availableReplicas``, ``observedGeneration`` and a ``ReplicaFailure`` condition
(FailedCreate/FailedDelete) while creates or deletes fail. A failure is raised after the status
write, so the key is retried with backoff.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from controllers import ownership
from controllers.conditions import get_condition, new_condition, remove_condition, set_condition
from controllers.expectations import Expectations
from controllers.freshness import FirstSeen
from controllers.objects import (
    controller_ref,
    is_deleting,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    key_of,
    labels_of,
    meta,
    name_of,
    namespace_of,
    owner_reference,
    spec_replicas,
    split_key,
    uid_of,
)
from controllers.ranking import pods_to_delete
from machinery import errors
from machinery.controller import Result
from machinery.informer import InformerFactory, Store
from machinery.kinds import lookup
from machinery.selectors import LabelSelector
from machinery.workqueue import WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = lookup("pods")
REPLICASETS = lookup("replicasets")

BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1
REPLICA_FAILURE = "ReplicaFailure"
NAMESPACE_TERMINATING = "NamespaceTerminating"  # the StatusCause type of such a refusal


class Recorder(Protocol):
    def event(self, obj: Obj, type: str, reason: str, message: str) -> None: ...


@dataclass(frozen=True)
class ReplicaPlan:
    """What ``manage_replicas`` will do: create ``create`` pods or delete ``delete`` ones."""

    create: int = 0
    delete: tuple[Obj, ...] = ()


def plan_replicas(
    rs: Obj, pods: list[Obj], related: list[Obj] | None = None, burst: int = BURST_REPLICAS
) -> ReplicaPlan:
    """Pure: the creates or deletes that bring ``pods`` (active, owned) to ``spec.replicas``,
    at most ``burst`` per reconcile."""
    diff = len(pods) - spec_replicas(rs)
    if diff < 0:
        return ReplicaPlan(create=min(-diff, burst))
    if diff > 0:
        return ReplicaPlan(delete=tuple(pods_to_delete(pods, min(diff, burst), related)))
    return ReplicaPlan()


def calculate_status(
    rs: Obj, pods: list[Obj], error: Exception | None, error_reason: str, now: float
) -> Obj:
    """Pure: the ReplicaSet status for its active owned ``pods``."""
    status = copy.deepcopy(rs.get("status") or {})
    template_labels = LabelSelector.from_labels(
        ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels")
    )
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    status["replicas"] = len(pods)
    status["fullyLabeledReplicas"] = sum(1 for p in pods if template_labels.matches(labels_of(p)))
    status["readyReplicas"] = sum(1 for p in pods if is_pod_ready(p))
    status["availableReplicas"] = sum(1 for p in pods if is_pod_available(p, min_ready, now))
    failure = get_condition(status, REPLICA_FAILURE)
    if error is not None and failure is None:
        set_condition(
            status,
            new_condition(
                REPLICA_FAILURE, "True", error_reason, str(error), now, with_update_time=False
            ),
        )
    elif error is None and failure is not None:
        remove_condition(status, REPLICA_FAILURE)
    return status


async def slow_start_batch(
    count: int, initial: int, fn: Callable[[], Awaitable[None]]
) -> tuple[int, Exception | None]:
    """Call ``fn`` ``count`` times in growing concurrent batches (initial, 2x, 4x, ...).

    Stops after the first batch with an error; returns (successes, first error)."""
    done = 0
    batch = min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        done += batch - len(failures)
        if failures:
            err = failures[0]
            if not isinstance(err, Exception):
                raise err
            return done, err
        remaining = count - done
        batch = min(2 * batch, remaining)
    return done, None


def pod_from_template(rs: Obj) -> Obj:
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    owner = dict(rs)
    owner.setdefault("apiVersion", REPLICASETS.api_version)
    owner.setdefault("kind", REPLICASETS.kind)
    pod_meta: Obj = {
        "generateName": f"{name_of(rs)}-",
        "namespace": namespace_of(rs),
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [owner_reference(owner)],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


class ReplicaSetController:
    """See the module docstring. ``now`` is wall-clock time (for pod availability)."""

    name = "replicaset"

    def __init__(
        self,
        client: Any,
        *,
        replicasets: Store,
        pods: Store,
        recorder: Recorder,
        queue: WorkQueue | None = None,
        expectations: Expectations | None = None,
        now: Callable[[], float] = time.time,
        burst: int = BURST_REPLICAS,
        pods_revision: Callable[[], str | None] | None = None,
    ) -> None:
        self.client = client
        self.replicasets = replicasets
        self.pods = pods
        self.recorder = recorder
        self.queue = queue or WorkQueue(name=self.name)
        self.expectations = expectations or Expectations()
        self.now = now
        self.burst = burst
        self.pods_revision = pods_revision  # the pod cache's last revision (freshness)
        self.first_seen = FirstSeen()

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Recorder, **kw: Any
    ) -> ReplicaSetController:
        rs_inf = factory.informer(REPLICASETS)
        pod_inf = factory.informer(PODS)
        kw.setdefault("pods_revision", lambda: pod_inf.last_resource_version)
        ctl = cls(
            factory.client, replicasets=rs_inf.store, pods=pod_inf.store, recorder=recorder, **kw
        )
        rs_inf.add_handler(ctl.on_rs_add, lambda _old, new: ctl.enqueue(new), ctl.on_rs_delete)
        pod_inf.add_handler(ctl.on_pod_add, ctl.on_pod_update, ctl.on_pod_delete)
        return ctl

    # -- event handlers (only enqueue) ---------------------------------------------------------

    def enqueue(self, rs: Obj) -> None:
        self.queue.add(key_of(rs))

    def on_rs_add(self, rs: Obj) -> None:
        self.first_seen.observe(rs)
        self.enqueue(rs)

    def on_rs_delete(self, rs: Obj) -> None:
        self.expectations.delete(key_of(rs))
        self.first_seen.forget(rs)
        self.enqueue(rs)

    def _owner_of(self, pod: Obj) -> Obj | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        rs = self.replicasets.get_by(namespace_of(pod), ref.get("name", ""))
        return rs if rs is not None and uid_of(rs) == ref.get("uid") else None

    def _enqueue_matching(self, pod: Obj) -> None:
        for rs in self.replicasets.list(namespace_of(pod)):
            if _selector(rs).matches(labels_of(pod)):
                self.enqueue(rs)

    def on_pod_add(self, pod: Obj) -> None:
        if is_deleting(pod):
            self.on_pod_delete(pod)
            return
        if controller_ref(pod) is not None:
            rs = self._owner_of(pod)
            if rs is not None:
                self.expectations.creation_observed(key_of(rs))
                self.enqueue(rs)
            return
        self._enqueue_matching(pod)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return  # a resync: the ReplicaSet resync covers it
        if is_deleting(new) and not is_deleting(old):
            rs = self._owner_of(new)
            if rs is not None:
                self.expectations.deletion_observed(key_of(rs), key_of(new))
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref and (not new_ref or old_ref.get("uid") != new_ref.get("uid")):
            rs = self._owner_of(old)
            if rs is not None:
                self.enqueue(rs)
        if new_ref is not None:
            rs = self._owner_of(new)
            if rs is not None:
                self.enqueue(rs)
            return
        if labels_of(old) != labels_of(new) or old_ref:
            self._enqueue_matching(new)

    def on_pod_delete(self, pod: Obj) -> None:
        rs = self._owner_of(pod)
        if rs is not None:
            self.expectations.deletion_observed(key_of(rs), key_of(pod))
            self.enqueue(rs)

    # -- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        rs = self.replicasets.get_by(namespace, name)
        if rs is None:
            self.expectations.delete(key)
            return None
        needs_sync = self.expectations.satisfied(key)
        selector = _selector(rs)
        active = [p for p in await self._namespace_pods(rs) if is_pod_active(p)]
        pods = await self._claim(rs, selector, active)

        error: Exception | None = None
        reason = "FailedCreate"
        if needs_sync and not is_deleting(rs):
            plan = plan_replicas(rs, pods, self._related_pods(rs, pods), self.burst)
            reason = "FailedCreate" if plan.create else "FailedDelete"
            error = await self._manage(key, rs, plan)

        status = calculate_status(rs, pods, error, reason, self.now())
        status["observedGeneration"] = int(meta(rs).get("generation") or 0)
        updated = await self._write_status(rs, status)
        if error is not None:
            raise error
        spec = (updated or rs).get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        if (
            min_ready > 0
            and status["readyReplicas"] == spec_replicas(updated or rs)
            and status["availableReplicas"] != spec_replicas(updated or rs)
        ):
            return Result(requeue_after=float(min_ready))
        return None

    # -- steps ---------------------------------------------------------------------------------

    async def _namespace_pods(self, rs: Obj) -> list[Obj]:
        """The pods of ``rs``'s namespace: from the cache once it has seen every pod created
        before ``rs`` appeared, otherwise read live."""
        if self.first_seen.covered(rs, self.pods_revision):
            return self.pods.list(namespace_of(rs))
        body = await self.client.list(PODS, namespace_of(rs))
        items = body.get("items") or []
        for pod in items:
            pod.setdefault("apiVersion", PODS.api_version)
            pod.setdefault("kind", PODS.kind)
        return items

    async def _claim(self, rs: Obj, selector: LabelSelector, pods: list[Obj]) -> list[Obj]:
        plan = ownership.plan_claim(rs, lambda p: selector.matches(labels_of(p)), pods)
        owned = list(plan.owned)
        if plan.adopt and await self._can_adopt(rs):
            for pod in plan.adopt:
                adopted = await ownership.adopt(self.client, PODS, pod, _with_kind(rs))
                if adopted is not None:
                    owned.append(adopted)
        for pod in plan.release:
            await ownership.release(self.client, PODS, pod, uid_of(rs))
        return owned

    async def _can_adopt(self, rs: Obj) -> bool:
        """Re-read the ReplicaSet live: never adopt for an owner deleted or replaced since the
        cache saw it."""
        fresh = await self.client.get(REPLICASETS, name_of(rs), namespace_of(rs))
        return uid_of(fresh) == uid_of(rs) and not is_deleting(fresh)

    def _related_pods(self, rs: Obj, owned: list[Obj]) -> list[Obj]:
        """Pods of every ReplicaSet sharing this one's controller (for the doubled-up rule)."""
        ref = controller_ref(rs)
        if ref is None:
            return owned
        siblings = {
            uid_of(r)
            for r in self.replicasets.list(namespace_of(rs))
            if (controller_ref(r) or {}).get("uid") == ref.get("uid")
        }
        return [
            p
            for p in self.pods.list(namespace_of(rs))
            if is_pod_active(p) and (controller_ref(p) or {}).get("uid") in siblings
        ]

    async def _manage(self, key: str, rs: Obj, plan: Any) -> Exception | None:
        if plan.create:
            self.expectations.expect_creations(key, plan.create)
            template = pod_from_template(rs)

            async def create_one() -> None:
                try:
                    pod = await self.client.create(PODS, template, namespace_of(rs))
                except Exception as e:
                    if not namespace_terminating(e):  # every create would fail: no event
                        self.recorder.event(rs, "Warning", "FailedCreate", f"Error creating: {e}")
                    raise
                self.recorder.event(
                    rs, "Normal", "SuccessfulCreate", f"Created pod: {name_of(pod)}"
                )

            done, err = await slow_start_batch(plan.create, SLOW_START_INITIAL_BATCH, create_one)
            for _ in range(plan.create - done):
                self.expectations.creation_observed(key)  # these will never be seen
            return err
        if plan.delete:
            self.expectations.expect_deletions(key, [key_of(p) for p in plan.delete])
            results = await asyncio.gather(*(self._delete_pod(key, rs, p) for p in plan.delete))
            return next((r for r in results if r is not None), None)
        return None

    async def _delete_pod(self, key: str, rs: Obj, pod: Obj) -> Exception | None:
        try:
            await self.client.delete(
                PODS, name_of(pod), namespace_of(pod), preconditions={"uid": uid_of(pod)}
            )
        except errors.NotFound:
            self.expectations.deletion_observed(key, key_of(pod))
            return None
        except Exception as e:
            self.expectations.deletion_observed(key, key_of(pod))
            self.recorder.event(rs, "Warning", "FailedDelete", f"Error deleting: {e}")
            return e
        self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name_of(pod)}")
        return None

    async def _write_status(self, rs: Obj, status: Obj) -> Obj | None:
        if status == (rs.get("status") or {}):
            return rs
        body = copy.deepcopy(rs)
        body["status"] = status
        try:
            return await self.client.update(REPLICASETS, body, subresource="status")
        except errors.NotFound:
            return None


def namespace_terminating(error: Exception) -> bool:
    """True for a create refused because its namespace is being deleted (Kubernetes' status
    cause ``NamespaceTerminating``, or a 403 saying so from a server that sends no cause)."""
    if not isinstance(error, errors.Forbidden):
        return False
    causes = error.details.get("causes") or []
    if any(c.get("type") == NAMESPACE_TERMINATING for c in causes):
        return True
    return "because it is being terminated" in error.message


def _selector(rs: Obj) -> LabelSelector:
    try:
        return LabelSelector.from_dict((rs.get("spec") or {}).get("selector"))
    except ValueError:
        return LabelSelector.nothing()


def _with_kind(rs: Obj) -> Obj:
    out = dict(rs)
    out.setdefault("apiVersion", REPLICASETS.api_version)
    out.setdefault("kind", REPLICASETS.kind)
    return out
