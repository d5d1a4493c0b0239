"""Deployment controller: wiring, event handlers, ``reconcile`` and the steps that apply plans.

Wiring: informers on Deployments, ReplicaSets and Pods. A Deployment event enqueues its key; a
ReplicaSet event enqueues the Deployment controlling it (verified by uid) or, for an orphan,
every Deployment in its namespace whose selector matches; a pod deletion enqueues the Deployment
above its ReplicaSet (Recreate waits for old pods to go).

``reconcile(key)`` follows Kubernetes' ``syncDeployment``: claim ReplicaSets (adopt/release;
read live while the ReplicaSet cache has not reached the revision at which the Deployment was
first seen, see :mod:`controllers.freshness`);
a Deployment being deleted only gets its status refreshed; a paused Deployment or a changed
``spec.replicas`` is a *scaling* sync (:mod:`scaling`); otherwise one rollout step of the
strategy (:mod:`rolling`, :mod:`recreate`), then status and conditions (:mod:`progress`) and, once
complete, history cleanup (:mod:`revisions`). Each write carries the resourceVersion it was
computed from; a conflict raises and the key is retried from a fresh cache. The reconcile
returns a requeue for the progress deadline when nothing else will wake it.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from controllers import ownership
from controllers.conditions import get_condition, new_condition, set_condition
from controllers.deployment import progress, revisions
from controllers.deployment.hashing import equal_ignore_hash
from controllers.deployment.plans import ScalePlan
from controllers.deployment.recreate import plan_recreate_step
from controllers.deployment.rolling import (
    is_rolling,
    max_surge,
    new_rs_new_replicas,
    plan_new_rs,
    plan_old_rss,
)
from controllers.deployment.scaling import is_scaling_event, plan_scale
from controllers.freshness import FirstSeen
from controllers.objects import (
    controller_ref,
    is_deleting,
    key_of,
    labels_of,
    meta,
    name_of,
    namespace_of,
    spec_replicas,
    split_key,
    uid_of,
)
from machinery import errors
from machinery.controller import Result
from machinery.informer import InformerFactory, Store
from machinery.kinds import lookup
from machinery.selectors import LabelSelector
from machinery.workqueue import WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEPLOYMENTS = lookup("deployments")
REPLICASETS = lookup("replicasets")
PODS = lookup("pods")


class Recorder(Protocol):
    def event(self, obj: Obj, type: str, reason: str, message: str) -> None: ...


class DeploymentController:
    """See the module docstring. ``now`` is wall-clock time (conditions, deadlines)."""

    name = "deployment"

    def __init__(
        self,
        client: Any,
        *,
        deployments: Store,
        replicasets: Store,
        pods: Store,
        recorder: Recorder,
        queue: WorkQueue | None = None,
        now: Callable[[], float] = time.time,
        replicasets_revision: Callable[[], str | None] | None = None,
    ) -> None:
        self.client = client
        self.deployments = deployments
        self.replicasets = replicasets
        self.pods = pods
        self.recorder = recorder
        self.queue = queue or WorkQueue(name=self.name)
        self.now = now
        self.replicasets_revision = replicasets_revision  # the ReplicaSet cache's last revision
        self.first_seen = FirstSeen()

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Recorder, **kw: Any
    ) -> DeploymentController:
        d_inf = factory.informer(DEPLOYMENTS)
        rs_inf = factory.informer(REPLICASETS)
        pod_inf = factory.informer(PODS)
        kw.setdefault("replicasets_revision", lambda: rs_inf.last_resource_version)
        ctl = cls(
            factory.client,
            deployments=d_inf.store,
            replicasets=rs_inf.store,
            pods=pod_inf.store,
            recorder=recorder,
            **kw,
        )
        d_inf.add_handler(ctl.on_add, lambda _old, new: ctl.enqueue(new), ctl.on_delete)
        rs_inf.add_handler(ctl.on_rs_add, ctl.on_rs_update, ctl.on_rs_delete)
        pod_inf.add_handler(on_delete=ctl.on_pod_delete)
        return ctl

    # -- event handlers (only enqueue) ---------------------------------------------------------

    def enqueue(self, d: Obj) -> None:
        self.queue.add(key_of(d))

    def on_add(self, d: Obj) -> None:
        self.first_seen.observe(d)
        self.enqueue(d)

    def on_delete(self, d: Obj) -> None:
        self.first_seen.forget(d)
        self.enqueue(d)

    def _owner_of(self, rs: Obj) -> Obj | None:
        ref = controller_ref(rs)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.deployments.get_by(namespace_of(rs), ref.get("name", ""))
        return d if d is not None and uid_of(d) == ref.get("uid") else None

    def _enqueue_matching(self, rs: Obj) -> None:
        for d in self.deployments.list(namespace_of(rs)):
            if _selector(d).matches(labels_of(rs)):
                self.enqueue(d)

    def on_rs_add(self, rs: Obj) -> None:
        if controller_ref(rs) is not None:
            if (d := self._owner_of(rs)) is not None:
                self.enqueue(d)
            return
        self._enqueue_matching(rs)

    def on_rs_update(self, old: Obj, new: Obj) -> None:
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        changed = old_ref and (not new_ref or old_ref.get("uid") != new_ref.get("uid"))
        if changed and (d := self._owner_of(old)) is not None:
            self.enqueue(d)
        if new_ref is not None:
            if (d := self._owner_of(new)) is not None:
                self.enqueue(d)
            return
        if labels_of(old) != labels_of(new) or old_ref:
            self._enqueue_matching(new)

    def on_rs_delete(self, rs: Obj) -> None:
        if (d := self._owner_of(rs)) is not None:
            self.enqueue(d)

    def on_pod_delete(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get_by(namespace_of(pod), ref.get("name", ""))
        if rs is not None and (d := self._owner_of(rs)) is not None and not is_rolling(d):
            self.enqueue(d)

    # -- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        cached = self.deployments.get_by(namespace, name)
        if cached is None:
            return None
        d = copy.deepcopy(cached)
        d.setdefault("apiVersion", DEPLOYMENTS.api_version)
        d.setdefault("kind", DEPLOYMENTS.kind)
        selector = _selector(d)
        if selector.matches_nothing:  # missing or unparsable: the API server should have refused
            self.recorder.event(d, "Warning", "InvalidSelector", "invalid or missing selector")
            return None
        if selector.empty:
            self.recorder.event(
                d,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            status = copy.deepcopy(d.get("status") or {})
            if status.get("observedGeneration", 0) < int(meta(d).get("generation") or 0):
                status["observedGeneration"] = int(meta(d).get("generation") or 0)
                await self._update_status(d, status)
            return None
        rs_list = await self._claim_replicasets(d, selector)
        if is_deleting(d):
            return await self._sync_status_only(d, rs_list)
        if (paused_status := progress.paused_condition(d, self.now())) is not None:
            d = await self._update_status(d, paused_status)
        if (d.get("spec") or {}).get("paused"):
            return await self._sync(d, rs_list)
        new_rs, old_rss = revisions.split_new_old(d, rs_list)
        if is_scaling_event(d, new_rs, old_rss):
            return await self._sync(d, rs_list)
        if is_rolling(d):
            return await self._rollout_rolling(d, rs_list)
        return await self._rollout_recreate(d, rs_list)

    # -- strategies ----------------------------------------------------------------------------

    async def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> Result | None:
        d, new_rs, old_rss = await self._new_and_old(d, rs_list, create=True)
        assert new_rs is not None
        all_rss = [*old_rss, new_rs]
        plan = plan_new_rs(d, all_rss, new_rs)
        if not plan:
            plan = plan_old_rss(d, all_rss, old_rss, new_rs)
        if plan:
            all_rss = await self._apply(d, all_rss, plan)
            new_rs = next(rs for rs in all_rss if uid_of(rs) == uid_of(new_rs))
            return await self._sync_rollout_status(d, all_rss, new_rs)
        if progress.is_complete(d, d.get("status") or {}):
            await self._cleanup(d, old_rss)
        return await self._sync_rollout_status(d, all_rss, new_rs)

    async def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> Result | None:
        d, new_rs, old_rss = await self._new_and_old(d, rs_list, create=False)
        all_rss = [*old_rss, *([new_rs] if new_rs else [])]
        step = plan_recreate_step(d, new_rs, old_rss, self._pods_by_rs(d, rs_list))
        if step.scale_down:
            all_rss = await self._apply(d, all_rss, step.scale_down)
            return await self._sync_rollout_status(d, all_rss, new_rs)
        if step.wait_for_old_pods:
            return await self._sync_rollout_status(d, all_rss, new_rs)
        if new_rs is None:
            d, new_rs, old_rss = await self._new_and_old(d, rs_list, create=True)
            assert new_rs is not None
            all_rss = [*old_rss, new_rs]
        if spec_replicas(new_rs, 0) != spec_replicas(d):
            all_rss = await self._apply(d, all_rss, plan_scale(d, new_rs, []))
            new_rs = next(rs for rs in all_rss if uid_of(rs) == uid_of(new_rs))
        if progress.is_complete(d, d.get("status") or {}):
            await self._cleanup(d, old_rss)
        return await self._sync_rollout_status(d, all_rss, new_rs)

    async def _sync(self, d: Obj, rs_list: list[Obj]) -> Result | None:
        """Scaling (or paused): resize without rolling out, then plain status."""
        d, new_rs, old_rss = await self._new_and_old(d, rs_list, create=False)
        all_rss = [*old_rss, *([new_rs] if new_rs else [])]
        all_rss = await self._apply(d, all_rss, plan_scale(d, new_rs, old_rss))
        if (d.get("spec") or {}).get("paused"):
            olds = [rs for rs in all_rss if new_rs is None or uid_of(rs) != uid_of(new_rs)]
            await self._cleanup(d, olds)
        new_rs = next((rs for rs in all_rss if new_rs and uid_of(rs) == uid_of(new_rs)), None)
        await self._update_status(d, progress.calculate_status(d, all_rss, new_rs, self.now()))
        return None

    async def _sync_status_only(self, d: Obj, rs_list: list[Obj]) -> Result | None:
        d, new_rs, old_rss = await self._new_and_old(d, rs_list, create=False)
        all_rss = [*old_rss, *([new_rs] if new_rs else [])]
        await self._update_status(d, progress.calculate_status(d, all_rss, new_rs, self.now()))
        return None

    async def _sync_rollout_status(
        self, d: Obj, all_rss: list[Obj], new_rs: Obj | None
    ) -> Result | None:
        now = self.now()
        status = progress.rollout_status(d, all_rss, new_rs, now)
        if status == (d.get("status") or {}):
            after = progress.requeue_for_deadline(d, status, now)
            return Result(requeue_after=after) if after is not None else None
        await self._update_status(d, status)
        return None

    # -- steps ---------------------------------------------------------------------------------

    async def _claim_replicasets(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        if self.first_seen.covered(d, self.replicasets_revision):
            candidates = self.replicasets.list(namespace_of(d))
        else:
            body = await self.client.list(REPLICASETS, namespace_of(d))
            candidates = body.get("items") or []
            for rs in candidates:
                rs.setdefault("apiVersion", REPLICASETS.api_version)
                rs.setdefault("kind", REPLICASETS.kind)
        plan = ownership.plan_claim(d, lambda rs: selector.matches(labels_of(rs)), candidates)
        owned = list(plan.owned)
        if plan.adopt:
            fresh = await self.client.get(DEPLOYMENTS, name_of(d), namespace_of(d))
            if uid_of(fresh) == uid_of(d) and not is_deleting(fresh):
                for rs in plan.adopt:
                    if adopted := await ownership.adopt(self.client, REPLICASETS, rs, d):
                        owned.append(adopted)
        for rs in plan.release:
            await ownership.release(self.client, REPLICASETS, rs, uid_of(d))
        return owned

    def _pods_by_rs(self, d: Obj, rs_list: list[Obj]) -> dict[str, list[Obj]]:
        uids = {uid_of(rs) for rs in rs_list}
        selector = _selector(d)
        out: dict[str, list[Obj]] = {u: [] for u in uids}
        for pod in self.pods.list(namespace_of(d)):
            ref = controller_ref(pod)
            if ref and ref.get("uid") in uids and selector.matches(labels_of(pod)):
                out[ref["uid"]].append(pod)
        return out

    async def _new_and_old(
        self, d: Obj, rs_list: list[Obj], *, create: bool
    ) -> tuple[Obj, Obj | None, list[Obj]]:
        """Kubernetes ``getAllReplicaSetsAndSyncRevision``: find (or create) the new ReplicaSet,
        bring its revision annotations up to date and mirror its revision on the Deployment.
        Returns the (possibly re-read) Deployment, the new ReplicaSet and the old ones."""
        new_rs, old_rss = revisions.split_new_old(d, rs_list)
        new_revision = revisions.max_revision(old_rss) + 1
        if new_rs is not None:
            rs = copy.deepcopy(new_rs)
            changed = revisions.set_new_rs_annotations(d, rs, new_revision, exists=True)
            min_ready = (d.get("spec") or {}).get("minReadySeconds") or 0
            if changed or ((rs.get("spec") or {}).get("minReadySeconds") or 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                rs = await self.client.update(REPLICASETS, rs)
            d = await self._set_revision(d, revisions.revision_of(rs))
            if (
                progress.progress_deadline(d) is not None
                and get_condition(d.get("status"), progress.PROGRESSING) is None
            ):
                status = copy.deepcopy(d.get("status") or {})
                set_condition(
                    status,
                    new_condition(
                        progress.PROGRESSING,
                        "True",
                        progress.FOUND_NEW_RS,
                        f'Found new replica set "{name_of(rs)}"',
                        self.now(),
                    ),
                )
                d = await self._update_status(d, status)
            return d, rs, old_rss
        if not create:
            return d, None, old_rss
        d, created = await self._create_new_rs(d, old_rss, new_revision)
        return d, created, old_rss

    async def _create_new_rs(
        self, d: Obj, old_rss: list[Obj], new_revision: int
    ) -> tuple[Obj, Obj]:
        status = d.get("status") or {}
        rs = revisions.build_new_rs(d, status.get("collisionCount"))
        rs["spec"]["replicas"] = new_rs_new_replicas(d, [*old_rss, rs], rs)
        revisions.set_new_rs_annotations(d, rs, new_revision, exists=False)
        try:
            created = await self.client.create(REPLICASETS, rs, namespace_of(d))
            already = False
        except errors.AlreadyExists:
            existing = await self.client.get(REPLICASETS, name_of(rs), namespace_of(d))
            ref = controller_ref(existing)
            same = equal_ignore_hash(
                (existing.get("spec") or {}).get("template"), (d.get("spec") or {}).get("template")
            )
            if not (ref and ref.get("uid") == uid_of(d) and same):
                bumped = copy.deepcopy(status)
                bumped["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                await self._update_status(d, bumped)
                raise errors.TemporaryError(
                    f"hash collision for ReplicaSet {name_of(rs)}; collisionCount now "
                    f"{bumped['collisionCount']}",
                    delay=0.0,
                ) from None
            created, already = existing, True
        except errors.Forbidden:
            raise
        except errors.ApiError as e:
            msg = f'Failed to create new replica set "{name_of(rs)}": {e}'
            if progress.progress_deadline(d) is not None:
                failed = copy.deepcopy(status)
                set_condition(
                    failed,
                    new_condition(
                        progress.PROGRESSING, "False", progress.FAILED_RS_CREATE, msg, self.now()
                    ),
                )
                await self._update_status(d, failed)
            self.recorder.event(d, "Warning", "FailedCreate", msg)
            raise
        if not already and spec_replicas(created, 0) > 0:
            self.recorder.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {name_of(created)} to {spec_replicas(created, 0)}",
            )
        d = await self._set_revision(d, new_revision)
        if not already and progress.progress_deadline(d) is not None:
            st = copy.deepcopy(d.get("status") or {})
            set_condition(
                st,
                new_condition(
                    progress.PROGRESSING,
                    "True",
                    progress.NEW_RS_CREATED,
                    f'Created new replica set "{name_of(created)}"',
                    self.now(),
                ),
            )
            d = await self._update_status(d, st)
        return d, created

    async def _set_revision(self, d: Obj, revision: int) -> Obj:
        """Mirror the new ReplicaSet's revision in the Deployment's annotation (guarded by the
        resourceVersion the decision was made from)."""
        if revision <= 0 or (meta(d).get("annotations") or {}).get(revisions.REVISION) == str(
            revision
        ):
            return d
        patch = {
            "metadata": {
                "resourceVersion": meta(d).get("resourceVersion"),
                "annotations": {revisions.REVISION: str(revision)},
            }
        }
        return await self.client.patch(DEPLOYMENTS, name_of(d), patch, namespace_of(d))

    async def _update_status(self, d: Obj, status: Obj) -> Obj:
        if status == (d.get("status") or {}):
            return d
        body = copy.deepcopy(d)
        body["status"] = status
        return await self.client.update(DEPLOYMENTS, body, subresource="status")

    async def _apply(self, d: Obj, all_rss: list[Obj], plan: ScalePlan) -> list[Obj]:
        """Write each resize (with the replicas annotations); returns the updated list."""
        by_name = {name_of(rs): rs for rs in all_rss}
        desired = spec_replicas(d)
        max_replicas = desired + max_surge(d)
        for scale in plan.scales:
            rs = by_name[scale.name]
            old = spec_replicas(rs, 0)
            if old == scale.replicas and not revisions.replicas_annotations_need_update(
                rs, desired, max_replicas
            ):
                continue
            body = copy.deepcopy(rs)
            body["spec"]["replicas"] = scale.replicas
            revisions.set_replicas_annotations(body, desired, max_replicas)
            by_name[scale.name] = await self.client.update(REPLICASETS, body)
            if old != scale.replicas:
                direction = "up" if scale.replicas > old else "down"
                self.recorder.event(
                    d,
                    "Normal",
                    "ScalingReplicaSet",
                    f"Scaled {direction} replica set {scale.name} to {scale.replicas} from {old}",
                )
        return [by_name[name_of(rs)] for rs in all_rss]

    async def _cleanup(self, d: Obj, old_rss: list[Obj]) -> None:
        for name in revisions.plan_history_cleanup(d, old_rss).delete:
            rs = next(r for r in old_rss if name_of(r) == name)
            try:
                await self.client.delete(
                    REPLICASETS, name, namespace_of(d), preconditions={"uid": uid_of(rs)}
                )
            except errors.NotFound:
                pass


def _selector(d: Obj) -> LabelSelector:
    try:
        return LabelSelector.from_dict((d.get("spec") or {}).get("selector"))
    except ValueError:
        return LabelSelector.nothing()
