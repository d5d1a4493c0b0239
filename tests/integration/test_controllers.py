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
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from controllers.deployment.revisions import REVISION, REVISION_HISTORY
from controllers.manager import LEASE_NAME, LEASE_NAMESPACE, ControllerManager
from controllers.objects import controller_ref, is_deleting, is_pod_ready
from machinery import errors
from machinery.informer import Informer
from machinery.kinds import lookup

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


async def _count_is(cluster: Cluster, n: int) -> bool:
    return len(await cluster.live_pods()) == n


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


@pytest.mark.parametrize("policy", ["Background", "Foreground", "Orphan"])
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
        if policy == "Foreground":  # the owner waits for its dependents
            assert is_deleting(await cluster.deployment())
        return False

    await eventually(deployment_gone, what="the deployment to go")
    if policy == "Orphan":
        rss = await cluster.items(RS)
        assert [r["metadata"]["name"] for r in rss] == [rs["metadata"]["name"]]
        assert not rss[0]["metadata"].get("ownerReferences")
        assert len(await cluster.live_pods()) == 2
    else:
        await eventually(lambda: _all_gone(cluster), what="ReplicaSet and pods to go")
        if policy == "Foreground":
            # the owner went last: nothing was left behind when it disappeared
            assert await cluster.items(RS) == []


async def _all_gone(cluster: Cluster) -> bool:
    return not await cluster.items(RS) and not await cluster.items(POD)


async def test_namespace_deletion(cluster):
    await cluster.create_deployment(replicas=2)
    await cluster.client.create(
        CM,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}},
        cluster.ns,
    )
    await eventually(lambda: _count_is(cluster, 2))
    await cluster.client.delete(NS, cluster.ns)
    ns = await cluster.client.get(NS, cluster.ns)
    assert ns["status"]["phase"] == "Terminating"

    async def gone():
        try:
            await cluster.client.get(NS, cluster.ns)
        except errors.NotFound:
            return True
        return False

    await eventually(gone, 30, "the namespace to disappear")


# -- leader election ---------------------------------------------------------------------------


def _start_manager(url: str, identity: str, log_path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "controllers.manager",
        "--server",
        url,
        "--port",
        "0",
        "--identity",
        identity,
        "--leader-elect-lease-duration",
        "3",
        "--leader-elect-renew-deadline",
        "2",
        "--leader-elect-retry-period",
        "0.5",
    ]
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, stdout=log, stderr=log)


async def test_leader_failover(api, tmp_path):
    client = api.async_client()
    procs = {name: _start_manager(api.url, name, tmp_path / f"{name}.log") for name in "ab"}
    try:

        async def holder():
            lease = await client.get(LEASE, LEASE_NAME, LEASE_NAMESPACE)
            return (lease.get("spec") or {}).get("holderIdentity")

        first = await eventually(holder, 20, "a leader")
        assert first in procs
        await asyncio.sleep(1.5)  # a standby does not steal a renewed lease
        assert await holder() == first
        procs[first].send_signal(signal.SIGKILL)  # no chance to release the lease
        procs[first].wait(10)
        killed_at = time.monotonic()
        other = next(n for n in procs if n != first)

        async def taken_over():
            return await holder() == other

        await eventually(taken_over, 10, "the standby to take over")
        assert time.monotonic() - killed_at < 3 + 2.5  # lease duration plus retry slack
        ns = f"failover-{os.getpid()}"
        await client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        c = Cluster(client, ns)
        await c.create_deployment(replicas=2)
        await eventually(lambda: _count_is(c, 2), 20, "the new leader to reconcile")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        await client.aclose()
