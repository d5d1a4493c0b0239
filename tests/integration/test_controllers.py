"""Controllers against the real API server on loopback, no kubelet.

A small stand-in kubelet marks pods Running and Ready by patching ``pods/status``; everything
else is the real controller-manager code. Waits poll with a deadline; rollout bounds are
checked on every pod change an informer observes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from controllers.deployment.revisions import REVISION, REVISION_HISTORY
from controllers.manager import LEASE_NAME, LEASE_NAMESPACE, ControllerManager
from controllers.objects import controller_ref, is_deleting, is_pod_ready
from machinery import errors
from machinery.informer import Informer
from machinery.kinds import ResourceType, lookup
from machinery.leaderelection import JITTER

NS, POD, RS, DEPLOY, CM, LEASE = (
    lookup(n) for n in ("namespaces", "pods", "replicasets", "deployments", "configmaps", "leases")
)

_seq = itertools.count()


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 20.0, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except errors.NotFound:
            last = None
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubelet:
    """Marks pods of a namespace Running+Ready (all of them, or only when told)."""

    def __init__(self, client, namespace: str, *, auto: bool = True, delay: float = 0.0):
        self.client, self.namespace, self.auto, self.delay = client, namespace, auto, delay
        self.informer = Informer(client, POD, namespace=namespace)
        self.informer.add_handler(on_add=self._seen)
        self.pending: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []

    def _seen(self, pod: dict) -> None:
        if self.auto and not is_pod_ready(pod) and not is_deleting(pod):
            self.pending.put_nowait(pod["metadata"]["name"])

    async def ready(self, name: str) -> None:
        status = {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now_rfc3339()}
                ],
            }
        }
        with contextlib.suppress(errors.NotFound):
            await self.client.patch(POD, name, status, self.namespace, subresource="status")

    async def _run(self) -> None:
        while True:
            name = await self.pending.get()
            if self.delay:
                await asyncio.sleep(self.delay)
            await self.ready(name)

    async def __aenter__(self) -> FakeKubelet:
        self._tasks = [asyncio.create_task(self.informer.run()), asyncio.create_task(self._run())]
        await self.informer.wait_synced(10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Cluster:
    def __init__(self, client, namespace: str):
        self.client, self.ns = client, namespace

    def kubelet(self, **kw) -> FakeKubelet:
        return FakeKubelet(self.client, self.ns, **kw)

    async def create_deployment(self, name="web", replicas=3, image="app:1", **spec) -> dict:
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
                **spec,
            },
        }
        return await self.client.create(DEPLOY, body, self.ns)

    async def deployment(self, name="web") -> dict:
        return await self.client.get(DEPLOY, name, self.ns)

    async def items(self, rt, **kw) -> list[dict]:
        return (await self.client.list(rt, self.ns, **kw))["items"]

    async def live_pods(self, app="web") -> list[dict]:
        return [p for p in await self.items(POD, label_selector=f"app={app}") if not is_deleting(p)]

    async def complete(self, name="web") -> dict | None:
        """The deployment once ``kubectl rollout status`` would call it done."""
        d = await self.deployment(name)
        st = d.get("status") or {}
        want = d["spec"]["replicas"]
        done = (
            st.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and st.get("updatedReplicas", 0) == want
            and st.get("replicas", 0) == want
            and st.get("availableReplicas", 0) >= want
        )
        return d if done else None

    async def set_image(self, image: str, name="web") -> None:
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
        await self.client.patch(DEPLOY, name, patch, self.ns, patch_type="strategic")


@pytest.fixture
async def cluster(api):
    client = api.async_client()
    manager = ControllerManager(client, workers=4, leader_elect=False, resync_period=None)
    task = asyncio.create_task(manager.run())

    async def synced():
        if task.done():
            task.result()
        return manager.synced

    await eventually(synced, 20, "caches to sync")
    ns = f"ctl-{os.getpid()}-{next(_seq)}"
    await client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        yield Cluster(client, ns)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()


def condition(obj: dict, ctype: str) -> dict:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {}
    )


# -- ReplicaSets and scaling ------------------------------------------------------------------


async def test_scale_up_and_down(cluster):
    async with cluster.kubelet():
        await cluster.create_deployment(replicas=3)
        d = await eventually(cluster.complete, what="3 available replicas")
        assert d["metadata"]["annotations"][REVISION] == "1"
        pods = await cluster.live_pods()
        assert len(pods) == 3
        [rs] = await cluster.items(RS)
        assert all(controller_ref(p)["uid"] == rs["metadata"]["uid"] for p in pods)
        assert controller_ref(rs)["uid"] == d["metadata"]["uid"]

        for replicas in (5, 1):
            await cluster.client.patch(
                DEPLOY, "web", {"spec": {"replicas": replicas}}, cluster.ns, subresource="scale"
            )
            await eventually(cluster.complete, what=f"{replicas} replicas")
            await eventually(lambda r=replicas: _count_is(cluster, r), what=f"{replicas} pods")
        events = await cluster.items(lookup("events"))
        messages = {e["message"] for e in events if e["reason"] == "ScalingReplicaSet"}
        rs_name = rs["metadata"]["name"]
        assert f"Scaled up replica set {rs_name} to 5 from 3" in messages
        assert f"Scaled down replica set {rs_name} to 1 from 5" in messages


async def _count_is(cluster: Cluster, n: int, app: str = "web") -> bool:
    return len(await cluster.live_pods(app)) == n


async def test_adoption_and_release(cluster):
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": "solo"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    await cluster.client.create(POD, orphan, cluster.ns)
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "solo", "namespace": cluster.ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "solo"}},
            "template": {
                "metadata": {"labels": {"app": "solo"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }
    rs = await cluster.client.create(RS, rs, cluster.ns)

    async def adopted():
        pod = await cluster.client.get(POD, "orphan", cluster.ns)
        ref = controller_ref(pod)
        return ref and ref["uid"] == rs["metadata"]["uid"]

    await eventually(adopted, what="the orphan to be adopted")
    await eventually(lambda: _solo_count(cluster, 2), what="two pods")
    # relabel: the pod is released and replaced
    await cluster.client.patch(POD, "orphan", {"metadata": {"labels": {"app": "gone"}}}, cluster.ns)

    async def released():
        pod = await cluster.client.get(POD, "orphan", cluster.ns)
        return controller_ref(pod) is None

    await eventually(released, what="the relabelled pod to be released")
    await eventually(lambda: _solo_count(cluster, 2), what="a replacement pod")


async def _solo_count(cluster: Cluster, n: int) -> bool:
    return len(await cluster.live_pods("solo")) == n


# -- rollouts ---------------------------------------------------------------------------------


async def test_rolling_update_stays_within_bounds(cluster):
    replicas, surge, unavailable = 6, 2, 1
    violations: list[str] = []
    watcher = Informer(cluster.client, POD, namespace=cluster.ns)
    observed = {"states": 0, "peak": 0}

    def check(*_: object) -> None:
        pods = [p for p in watcher.store.list() if not is_deleting(p)]
        ready = sum(1 for p in pods if is_pod_ready(p))
        observed["states"] += 1
        observed["peak"] = max(observed["peak"], len(pods))
        if checking and len(pods) > replicas + surge:
            violations.append(f"{len(pods)} pods > {replicas + surge}")
        if checking and ready < replicas - unavailable:
            violations.append(f"{ready} ready < {replicas - unavailable}")

    checking = False
    watcher.add_handler(check, lambda o, n: check(), check)
    watch_task = asyncio.create_task(watcher.run())
    try:
        async with cluster.kubelet(delay=0.05):
            strategy = {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            }
            await cluster.create_deployment(replicas=replicas, strategy=strategy)
            await eventually(cluster.complete, what="the first rollout")
            await eventually(lambda: _ready_count_is(watcher, replicas))
            checking = True
            before = observed["states"]
            await cluster.set_image("app:2")
            d = await eventually(cluster.complete, 30, "the rolling update")
            await eventually(lambda: _count_is(cluster, replicas))
    finally:
        watch_task.cancel()
        await asyncio.gather(watch_task, return_exceptions=True)
    assert violations == []
    assert observed["states"] - before > replicas  # the check really ran during the rollout
    assert observed["peak"] > replicas  # and the rollout did surge
    assert d["metadata"]["annotations"][REVISION] == "2"
    sizes = sorted(r["spec"]["replicas"] for r in await cluster.items(RS))
    assert sizes == [0, replicas]
    assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert condition(d, "Available")["status"] == "True"


async def _ready_count_is(watcher: Informer, n: int) -> bool:
    return sum(1 for p in watcher.store.list() if is_pod_ready(p) and not is_deleting(p)) == n


async def test_recreate_never_mixes_old_and_new_pods(cluster):
    mixed: list[str] = []
    watcher = Informer(cluster.client, POD, namespace=cluster.ns)

    def check(*_: object) -> None:
        owners = {
            controller_ref(p)["name"]
            for p in watcher.store.list()
            if controller_ref(p) and not is_deleting(p)
        }
        if len(owners) > 1:
            mixed.append(",".join(sorted(owners)))

    watcher.add_handler(check, lambda o, n: check(), check)
    task = asyncio.create_task(watcher.run())
    try:
        async with cluster.kubelet():
            await cluster.create_deployment(replicas=3, strategy={"type": "Recreate"})
            await eventually(cluster.complete)
            await cluster.set_image("app:2")
            d = await eventually(cluster.complete, what="the recreate rollout")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert mixed == []
    assert d["metadata"]["annotations"][REVISION] == "2"
    assert sorted(r["spec"]["replicas"] for r in await cluster.items(RS)) == [0, 3]


async def test_rollback_reuses_replicaset(cluster):
    async with cluster.kubelet():
        await cluster.create_deployment(replicas=2)
        await eventually(cluster.complete)
        await cluster.set_image("app:2")
        await eventually(lambda: _revision_complete(cluster, "2"))
        rss = await cluster.items(RS)
        first = next(r for r in rss if r["metadata"]["annotations"][REVISION] == "1")
        # what `kubectl rollout undo --to-revision=1` sends
        template = copy.deepcopy(first["spec"]["template"])
        template["metadata"]["labels"].pop("pod-template-hash")
        template["metadata"]["creationTimestamp"] = None
        await cluster.client.patch(
            DEPLOY,
            "web",
            [{"op": "replace", "path": "/spec/template", "value": template}],
            cluster.ns,
            patch_type="json",
        )
        d = await eventually(lambda: _revision_complete(cluster, "3"))
    rss = {r["metadata"]["name"]: r for r in await cluster.items(RS)}
    assert len(rss) == 2  # reused, no third ReplicaSet
    reused = rss[first["metadata"]["name"]]
    assert reused["metadata"]["annotations"][REVISION] == "3"
    assert reused["metadata"]["annotations"][REVISION_HISTORY] == "1"
    assert reused["spec"]["replicas"] == 2
    assert d["metadata"]["annotations"][REVISION] == "3"


async def _revision_complete(cluster: Cluster, revision: str) -> dict | None:
    d = await cluster.complete()
    return d if d and d["metadata"].get("annotations", {}).get(REVISION) == revision else None


async def _undo_to(cluster: Cluster, rs: dict) -> None:
    """What ``kubectl rollout undo --to-revision=N`` sends: ``rs``'s template, without its
    ``pod-template-hash``, written back into the Deployment."""
    template = copy.deepcopy(rs["spec"]["template"])
    template["metadata"]["labels"].pop("pod-template-hash")
    await cluster.client.patch(
        DEPLOY,
        "web",
        [{"op": "replace", "path": "/spec/template", "value": template}],
        cluster.ns,
        patch_type="json",
    )


async def test_rollback_to_an_older_revision(cluster):
    async with cluster.kubelet():
        await cluster.create_deployment(replicas=2)
        await eventually(cluster.complete)
        for revision in (2, 3):
            await cluster.set_image(f"app:{revision}")
            await eventually(lambda r=revision: _revision_complete(cluster, str(r)))
        by_revision = {r["metadata"]["annotations"][REVISION]: r for r in await cluster.items(RS)}
        assert sorted(by_revision) == ["1", "2", "3"]
        original = by_revision["1"]
        await _undo_to(cluster, original)
        d = await eventually(lambda: _revision_complete(cluster, "4"), what="revision 4")
    rss = {r["metadata"]["name"]: r for r in await cluster.items(RS)}
    assert len(rss) == 3  # the original ReplicaSet came back; no fourth one
    reused = rss[original["metadata"]["name"]]
    assert reused["metadata"]["uid"] == original["metadata"]["uid"]
    assert reused["metadata"]["annotations"][REVISION] == "4"
    assert reused["metadata"]["annotations"][REVISION_HISTORY] == "1"
    assert reused["spec"]["replicas"] == 2
    assert d["metadata"]["annotations"][REVISION] == "4"
    others = sorted(
        (r["metadata"]["annotations"][REVISION], r["spec"]["replicas"])
        for n, r in rss.items()
        if n != original["metadata"]["name"]
    )
    assert others == [("2", 0), ("3", 0)]
    images = {p["spec"]["containers"][0]["image"] for p in await cluster.live_pods()}
    assert images == {"app:1"}


async def test_min_ready_seconds_is_copied_to_replicasets(cluster):
    await cluster.create_deployment(replicas=1, minReadySeconds=4)

    async def rs_min_ready(expected: int):
        rss = await cluster.items(RS)
        return len(rss) == 1 and rss[0]["spec"].get("minReadySeconds") == expected and rss

    [rs] = await eventually(lambda: rs_min_ready(4), what="the ReplicaSet with minReadySeconds")
    await cluster.client.patch(DEPLOY, "web", {"spec": {"minReadySeconds": 9}}, cluster.ns)
    [updated] = await eventually(lambda: rs_min_ready(9), what="minReadySeconds to follow")
    assert updated["metadata"]["uid"] == rs["metadata"]["uid"]  # updated, not a new rollout


async def test_pause_and_resume(cluster):
    async with cluster.kubelet():
        await cluster.create_deployment(replicas=2)
        await eventually(cluster.complete)
        await cluster.client.patch(DEPLOY, "web", {"spec": {"paused": True}}, cluster.ns)
        await cluster.set_image("app:2")
        await cluster.client.patch(DEPLOY, "web", {"spec": {"replicas": 3}}, cluster.ns)

        async def paused_and_scaled():
            d = await cluster.deployment()
            rss = await cluster.items(RS)
            return (
                condition(d, "Progressing").get("reason") == "DeploymentPaused"
                and len(rss) == 1
                and rss[0]["spec"]["replicas"] == 3
            )

        await eventually(paused_and_scaled, what="a paused deployment that still scales")
        await cluster.client.patch(DEPLOY, "web", {"spec": {"paused": None}}, cluster.ns)
        d = await eventually(lambda: _revision_complete(cluster, "2"), what="resumed rollout")
    assert len(await cluster.items(RS)) == 2
    assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"


async def test_progress_deadline_exceeded(cluster):
    await cluster.create_deployment(replicas=1, progressDeadlineSeconds=2)  # no kubelet

    async def timed_out():
        cond = condition(await cluster.deployment(), "Progressing")
        return cond if cond.get("reason") == "ProgressDeadlineExceeded" else None

    cond = await eventually(timed_out, 15, "ProgressDeadlineExceeded")
    assert cond["status"] == "False"
    assert cond["message"].endswith("has timed out progressing.")


async def test_revision_history_cleanup(cluster):
    async with cluster.kubelet():
        await cluster.create_deployment(replicas=1, revisionHistoryLimit=1)
        await eventually(cluster.complete)
        for i in (2, 3, 4):
            await cluster.set_image(f"app:{i}")
            await eventually(lambda i=i: _revision_complete(cluster, str(i)))

    async def trimmed():
        rss = await cluster.items(RS)
        return sorted(int(r["metadata"]["annotations"][REVISION]) for r in rss) == [3, 4]

    await eventually(trimmed, what="history trimmed to one old ReplicaSet")


# -- garbage collection and namespaces ---------------------------------------------------------


@pytest.mark.parametrize("policy", ["Background", "Orphan"])
async def test_deletion_propagation(cluster, policy):
    await cluster.create_deployment(replicas=2)
    await eventually(lambda: _count_is(cluster, 2))
    [rs] = await cluster.items(RS)
    await cluster.client.delete(DEPLOY, "web", cluster.ns, propagation_policy=policy)

    async def deployment_gone():
        try:
            await cluster.deployment()
        except errors.NotFound:
            return True
        return False

    await eventually(deployment_gone, what="the deployment to go")
    if policy == "Orphan":
        rss = await cluster.items(RS)
        assert [r["metadata"]["name"] for r in rss] == [rs["metadata"]["name"]]
        assert not rss[0]["metadata"].get("ownerReferences")
        assert len(await cluster.live_pods()) == 2
    else:
        await eventually(lambda: _all_gone(cluster), what="ReplicaSet and pods to go")


async def test_foreground_deletion_removes_the_owner_last(cluster):
    """Foreground: the Deployment stays, deleting, with the ``foregroundDeletion`` finalizer
    while any dependent exists, and goes only after the last of them. A finalizer on one pod
    holds the cascade so the middle state can be observed."""
    client, ns = cluster.client, cluster.ns
    await cluster.create_deployment(replicas=2)
    await eventually(lambda: _count_is(cluster, 2))
    held = (await cluster.live_pods())[0]["metadata"]["name"]
    await client.patch(POD, held, {"metadata": {"finalizers": [HOLD]}}, ns)
    await client.delete(DEPLOY, "web", ns, propagation_policy="Foreground")

    async def observe() -> tuple[bool, int, int]:
        """One state, the owner read first: once it is gone, no dependent may be left."""
        try:
            d = await cluster.deployment()
        except errors.NotFound:
            d = None
        rss, left = await cluster.items(RS), await cluster.items(POD)
        if d is None:
            assert (rss, left) == ([], []), "the owner went before its dependents"
        else:
            assert is_deleting(d) and "foregroundDeletion" in d["metadata"]["finalizers"]
        return d is not None, len(rss), len(left)

    async def only_held_pod_left():
        return await observe() == (True, 1, 1)

    await eventually(only_held_pod_left, what="the cascade to stop at the held pod")
    [rs] = await cluster.items(RS)  # deleted in the foreground too: it waits for its pod
    assert is_deleting(rs) and "foregroundDeletion" in rs["metadata"]["finalizers"]
    assert (await client.get(POD, held, ns))["metadata"]["deletionTimestamp"]

    await _release(client, POD, held, ns)

    async def owner_gone():
        return await observe() == (False, 0, 0)

    await eventually(owner_gone, what="the owner to go after its dependents")


async def _all_gone(cluster: Cluster) -> bool:
    return not await cluster.items(RS) and not await cluster.items(POD)


HOLD = "example.com/hold"


async def _namespace_gone(client, name: str) -> bool:
    try:
        await client.get(NS, name)
    except errors.NotFound:
        return True
    return False


async def _release(client, rt, name: str, namespace: str) -> None:
    await client.patch(rt, name, {"metadata": {"finalizers": None}}, namespace)


async def test_namespace_deletion(cluster):
    client, ns = cluster.client, cluster.ns
    await cluster.create_deployment(replicas=2)
    await client.create(
        CM,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}},
        ns,
    )
    held = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "finalizers": [HOLD]},
    }
    await client.create(CM, held, ns)
    await eventually(lambda: _count_is(cluster, 2))
    await client.delete(NS, ns)
    assert (await client.get(NS, ns))["status"]["phase"] == "Terminating"

    async def emptied_but_held():
        left = [
            (rt.plural, o["metadata"]["name"])
            for rt in (DEPLOY, RS, POD, CM)
            for o in await cluster.items(rt)
            if o["metadata"]["name"] != "kube-root-ca.crt"  # published into every namespace
        ]
        d = await client.get(NS, ns)
        content = condition(d, "NamespaceContentRemaining")
        return d if left == [("configmaps", "held")] and content.get("status") == "True" else None

    d = await eventually(emptied_but_held, 30, "everything but the held ConfigMap to go")
    assert d["status"]["phase"] == "Terminating"
    content = condition(d, "NamespaceContentRemaining")
    assert (content["reason"], content["message"]) == (
        "SomeResourcesRemain",
        "Some resources are remaining: configmaps has 1 resource instances",
    )
    fins = condition(d, "NamespaceFinalizersRemaining")
    assert (fins["status"], fins["reason"], fins["message"]) == (
        "True",
        "SomeFinalizersRemain",
        f"Some content in the namespace has finalizers remaining: {HOLD} in 1 resource instances",
    )
    failure = condition(d, "NamespaceDeletionContentFailure")
    assert (failure["status"], failure["reason"]) == ("False", "ContentDeleted")
    assert (await client.get(CM, "held", ns))["metadata"]["deletionTimestamp"]

    await _release(client, CM, "held", ns)
    await eventually(lambda: _namespace_gone(client, ns), 30, "the namespace to disappear")


# -- custom resources --------------------------------------------------------------------------

CRD = lookup("customresourcedefinitions")


async def widget_type(client) -> ResourceType:
    """A fresh namespaced CRD ``widgets.<random group>``, once the server serves it."""
    group = f"w{next(_seq)}-{os.getpid()}.example.com"
    rt = ResourceType(group, "v1", "Widget", "widgets", "widget", True)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    await client.create(CRD, crd)

    async def served():
        return await client.list(rt)

    await eventually(served, what="the CRD to be served")
    return rt


def widget(rt: ResourceType, name: str, **meta: Any) -> dict:
    return {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": {"name": name, **meta}}


def owned_by(owner: dict, **extra: Any) -> list[dict]:
    m = owner["metadata"]
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": m["name"]}
    return [{**ref, "uid": m["uid"], **extra}]


async def test_namespace_deletion_deletes_custom_resources(cluster):
    client, ns = cluster.client, cluster.ns
    rt = await widget_type(client)
    await client.create(rt, widget(rt, "plain"), ns)
    await client.create(rt, widget(rt, "held", finalizers=[HOLD]), ns)
    await client.delete(NS, ns)

    async def only_held_left():
        names = [w["metadata"]["name"] for w in (await client.list(rt, ns))["items"]]
        d = await client.get(NS, ns)
        return d if names == ["held"] and condition(d, "NamespaceContentRemaining") else None

    d = await eventually(only_held_left, 30, "the plain widget to be deleted")
    assert condition(d, "NamespaceContentRemaining")["message"] == (
        f"Some resources are remaining: widgets.{rt.group} has 1 resource instances"
    )
    assert not await _namespace_gone(client, ns)  # the namespace waits for its custom resources

    await _release(client, rt, "held", ns)

    async def widgets_gone():
        return not (await client.list(rt, ns))["items"]

    await eventually(widgets_gone, 30, "the held widget to go")
    await eventually(lambda: _namespace_gone(client, ns), 30, "then the namespace")


async def test_custom_resources_own_and_are_owned(cluster):
    """The collector's graph covers kinds served through CRDs, as owners and as dependents."""
    client, ns = cluster.client, cluster.ns
    rt = await widget_type(client)
    owner = await client.create(rt, widget(rt, "owner"), ns)
    cm = {"apiVersion": "v1", "kind": "ConfigMap"}
    await client.create(
        CM, {**cm, "metadata": {"name": "child", "ownerReferences": owned_by(owner)}}, ns
    )
    parent = await client.create(CM, {**cm, "metadata": {"name": "parent"}}, ns)
    parent = {**cm, **parent}
    await client.create(rt, widget(rt, "dependent", ownerReferences=owned_by(parent)), ns)

    await client.delete(rt, "owner", ns, propagation_policy="Background")

    async def child_gone():
        names = {c["metadata"]["name"] for c in await cluster.items(CM)}
        return "parent" in names and "child" not in names

    await eventually(child_gone, 30, "the custom resource's ConfigMap to be collected")

    await client.delete(CM, "parent", ns, propagation_policy="Background")

    async def dependent_gone():
        return not (await client.list(rt, ns))["items"]

    await eventually(dependent_gone, 30, "the ConfigMap's custom resource to be collected")


# -- leader election ---------------------------------------------------------------------------


def _start_manager(url: str, identity: str, log_path, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "controllers.manager",
        "--server",
        url,
        "--identity",
        identity,
        *extra,
    ]
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, stdout=log, stderr=log)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# -- restarts ----------------------------------------------------------------------------------


class BoundsWatch:
    """Checks every pod state an informer observes against a rollout's bounds."""

    def __init__(self, client, namespace: str, replicas: int, surge: int, unavailable: int):
        self.informer = Informer(client, POD, namespace=namespace)
        self.limits = (replicas + surge, replicas - unavailable)
        self.violations: list[str] = []
        self.states = 0
        self.checking = False
        self.informer.add_handler(self.check, lambda _o, _n: self.check(), self.check)

    def check(self, *_: object) -> None:
        if not self.checking:
            return
        pods = [p for p in self.informer.store.list() if not is_deleting(p)]
        ready = sum(1 for p in pods if is_pod_ready(p))
        self.states += 1
        if len(pods) > self.limits[0]:
            self.violations.append(f"{len(pods)} pods > {self.limits[0]}")
        if ready < self.limits[1]:
            self.violations.append(f"{ready} ready < {self.limits[1]}")


def _release_kubelet(kubelet: FakeKubelet) -> None:
    """From now on the stand-in kubelet readies every pod, those already there included."""
    kubelet.auto = True
    for pod in kubelet.informer.store.list():
        kubelet._seen(pod)


async def _rs_sizes(cluster: Cluster) -> dict[str, int]:
    return {
        r["metadata"]["annotations"].get(REVISION, ""): r["spec"]["replicas"]
        for r in await cluster.items(RS)
    }


async def test_restarted_manager_converges_mid_rollout_and_rollback(api, tmp_path):
    """The controller-manager is killed (SIGKILL) half-way through a rolling update, and again
    half-way through a rollback, and a new one started each time: every rollout completes with
    one new (or reused) ReplicaSet, exactly ``replicas`` pods, and the surge/unavailable bounds
    respected on every observed state. The stand-in kubelet holds new pods unready until the
    new manager runs, so each kill lands in the same mid-rollout state."""
    replicas, surge, unavailable = 6, 2, 1
    client = api.async_client()
    ns = f"restart-{os.getpid()}-{next(_seq)}"
    await client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    cluster = Cluster(client, ns)
    args = ("--port", "0", "--no-leader-elect", "--controllers", "replicaset,deployment")
    procs = [_start_manager(api.url, "first", tmp_path / "first.log", *args)]
    bounds = BoundsWatch(client, ns, replicas, surge, unavailable)
    watch = asyncio.create_task(bounds.informer.run())
    try:
        async with cluster.kubelet() as kubelet:
            strategy = {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            }
            await cluster.create_deployment(replicas=replicas, strategy=strategy)
            await eventually(cluster.complete, 30, "the first rollout")
            await eventually(lambda: _ready_count_is(bounds.informer, replicas))
            bounds.checking = True

            for step, (revision, change) in enumerate(
                [("2", lambda: cluster.set_image("app:2")), ("3", None)], start=1
            ):
                kubelet.auto = False
                if change is not None:
                    await change()
                    mid = {"1": replicas - unavailable, "2": surge + unavailable}
                else:  # roll back to revision 1: its ReplicaSet becomes revision 3
                    original = next(
                        r
                        for r in await cluster.items(RS)
                        if r["metadata"]["annotations"][REVISION] == "1"
                    )
                    await _undo_to(cluster, original)
                    mid = {"2": replicas - unavailable, "3": surge + unavailable}

                async def half_way(mid=mid):
                    """Stuck until new pods are ready: the old set down by maxUnavailable, the
                    new one up to the surge limit."""
                    sizes = await _rs_sizes(cluster)
                    pods = await cluster.live_pods()
                    return sizes == mid and len(pods) == replicas + surge

                await eventually(half_way, 30, f"rollout {step} to stop half-way")
                procs[-1].send_signal(signal.SIGKILL)
                procs[-1].wait(10)
                procs.append(_start_manager(api.url, f"m{step}", tmp_path / f"m{step}.log", *args))
                _release_kubelet(kubelet)
                await eventually(
                    lambda r=revision: _revision_complete(cluster, r), 60, f"revision {revision}"
                )
                await eventually(lambda: _count_is(cluster, replicas), 30, f"{replicas} pods")

            rss = await cluster.items(RS)
            assert len(rss) == 2  # one new ReplicaSet; the rollback reused the original
            assert original["metadata"]["uid"] in {r["metadata"]["uid"] for r in rss}
            assert await _rs_sizes(cluster) == {"2": 0, "3": replicas}
            owners = {controller_ref(p)["uid"] for p in await cluster.live_pods()}
            assert owners == {original["metadata"]["uid"]}
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        for p in procs:
            _stop(p)
        await client.aclose()
    assert bounds.violations == []
    assert bounds.states > 2 * replicas  # the check ran through both rollouts


LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 3.0, 2.0, 0.5
LEASE_ARGS = (
    "--leader-elect-lease-duration",
    str(LEASE_DURATION),
    "--leader-elect-renew-deadline",
    str(RENEW_DEADLINE),
    "--leader-elect-retry-period",
    str(RETRY_PERIOD),
)
# Kubernetes' bound (client-go leaderelection, which machinery.leaderelection follows): a
# standby may take a lease once leaseDuration has passed since it last saw the lease change,
# and it looks every retryPeriod (jittered up to x1.2). So measured from the dead leader's last
# renewal: at most one retry period to see that renewal, the lease duration, one more retry
# period to act, plus the time of the API calls themselves.
TAKEOVER_BOUND = LEASE_DURATION + 2 * RETRY_PERIOD * JITTER
API_CALLS = 0.5  # a GET and an update, on a loaded two-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _micro_time(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


async def _scrape(port: int, path: str = "/metrics") -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(f"http://127.0.0.1:{port}{path}")).text


def _reconciles(metrics: str) -> list[str]:
    return [
        ln for ln in metrics.splitlines() if ln.startswith("tugboat_controller_reconcile_total{")
    ]


async def test_leader_failover(api, tmp_path):
    client = api.async_client()
    ports = {name: _free_port() for name in "ab"}
    procs = {
        name: _start_manager(
            api.url, name, tmp_path / f"{name}.log", "--port", str(port), *LEASE_ARGS
        )
        for name, port in ports.items()
    }
    try:

        async def lease():
            return (await client.get(LEASE, LEASE_NAME, LEASE_NAMESPACE)).get("spec") or {}

        async def holder():
            spec = await lease()
            return spec if spec.get("holderIdentity") in procs else None

        first = (await eventually(holder, 20, "a leader"))["holderIdentity"]
        standby = next(n for n in procs if n != first)
        transitions = (await lease()).get("leaseTransitions")

        # while the leader lives it does the work, and the standby does none
        ns = f"failover-{os.getpid()}"
        await client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        c = Cluster(client, ns)
        await c.create_deployment(name="before", replicas=2)
        await eventually(lambda: _count_is(c, 2, "before"), 20, "the leader to reconcile")
        await asyncio.sleep(1.5)  # a window in which a standby must not steal a renewed lease
        assert (await lease()).get("holderIdentity") == first
        assert (await lease()).get("leaseTransitions") == transitions
        assert _reconciles(await _scrape(ports[first]))
        assert _reconciles(await _scrape(ports[standby])) == []
        assert await _scrape(ports[standby], "/healthz") == "ok"

        procs[first].send_signal(signal.SIGKILL)  # no chance to release the lease
        procs[first].wait(10)
        last_renewal = _micro_time((await lease())["renewTime"])

        async def taken_over():
            spec = await lease()
            return spec if spec.get("holderIdentity") == standby else None

        spec = await eventually(taken_over, 10 * TAKEOVER_BOUND, "the standby to take over")
        waited = _micro_time(spec["acquireTime"]) - last_renewal
        assert LEASE_DURATION - API_CALLS <= waited <= TAKEOVER_BOUND + API_CALLS, waited
        assert spec["leaseTransitions"] == transitions + 1

        await c.create_deployment(name="after", replicas=2)
        await eventually(lambda: _count_is(c, 2, "after"), 20, "the new leader to reconcile")
        metrics = await _scrape(ports[standby])
        for family in (
            'tugboat_workqueue_depth{name="deployment"}',
            'tugboat_controller_reconcile_duration_seconds_count{name="deployment"}',
            "# TYPE tugboat_controller_reconcile_errors_total counter",
        ):
            assert family in metrics
    finally:
        for p in procs.values():
            _stop(p)
        await client.aclose()
