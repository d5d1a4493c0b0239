"""The pod start path asks the runtime and the API server only what it does not know yet.

Against the fake CRI runtime (it counts RPCs) and the fake API server (it records requests):
a start pass reads back just the sandbox and container it created, an unchanged status is not
written again (the API server drops ``None`` members, so they must not count as changes),
Service variables come from one watch instead of a LIST per pod, and a running worker makes no
pass for what it did itself (its status write coming back, the runtime poller reporting the
containers it started, or a poll listed before its own last look) but does for anything else.
A pod the agent knows the runtime holds nothing of (its poller's last relist did not show it)
starts without reading the runtime first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kubelet.agent import AgentConfig, NodeAgent
from kubelet.env import ServiceCache, fetch_services
from kubelet.observe import observe, runtime_view
from kubelet.podworker import PodWorker
from machinery.kinds import lookup
from tests.unit.test_kubelet_worker import NODE, Env, env, settle, sleeper  # noqa: F401

SERVICES = lookup("services")


def _svc(name: str, ns: str, ip: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "ports": [{"port": 80}]},
    }


def _without_none(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


async def test_start_pass_reads_back_only_what_it_created(env: Env) -> None:  # noqa: F811
    pod = env.seed("web", [sleeper()])
    worker = PodWorker(env.context(), pod)
    env.fake.calls.clear()
    await worker.sync()

    calls = env.fake.calls
    assert calls["RunPodSandbox"] == calls["CreateContainer"] == calls["StartContainer"] == 1
    assert calls["PodSandboxStatus"] == 1  # once for the IP, not again for the status
    assert calls["ListPodSandbox"] == calls["ListContainers"] == 1  # only before acting
    assert calls["ContainerStatus"] == 1  # the new container, read back once
    status = env.status("web")
    assert status["phase"] == "Running"
    assert status["podIP"]
    main = env.container("web", "main")
    assert main["state"]["running"]["startedAt"]
    assert main["containerID"] == f"containerd://{env.running_ids()[0]}"


async def test_fresh_pod_starts_without_reading_the_runtime_first(env: Env) -> None:  # noqa: F811
    pod = env.seed("web", [sleeper()])
    worker = PodWorker(env.context(), pod, fresh=True)
    env.fake.calls.clear()
    await worker.sync()

    calls = env.fake.calls
    assert calls["ListPodSandbox"] == calls["ListContainers"] == 0
    assert calls["RunPodSandbox"] == calls["StartContainer"] == 1
    assert env.status("web")["phase"] == "Running"
    await worker.sync()  # only the first pass trusts what the agent knew
    assert calls["ListPodSandbox"] == calls["ListContainers"] == 1
    assert calls["RunPodSandbox"] == 1


def test_agent_starts_pods_fresh_only_when_its_relist_showed_nothing_of_them(env: Env) -> None:  # noqa: F811
    agent = NodeAgent(env.api.async_client(), env.runtime, AgentConfig(node_name=NODE))
    agent.ctx = env.context()
    started: dict[str, bool] = {}

    def start_worker(pod: dict, gone: bool = False, fresh: bool = False) -> None:
        started[pod["metadata"]["uid"]] = fresh

    agent._start_worker = start_worker  # type: ignore[method-assign]
    new, known = env.seed("new", [sleeper()]), env.seed("known", [sleeper()])
    agent.pod_event(new)  # no relist yet: the runtime may hold anything (an agent restart)
    assert started == {new["metadata"]["uid"]: False}

    started.clear()
    agent.pods.clear()
    agent._relisted = True
    agent._pleg_seen = {"sabc": (known["metadata"]["uid"], "ready")}
    agent.pod_event(new)
    agent.pod_event(known)
    assert started == {new["metadata"]["uid"]: True, known["metadata"]["uid"]: False}


async def test_pod_ip_env_waits_for_the_new_sandbox(env: Env) -> None:  # noqa: F811
    pod_ip = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    pod = env.seed("web", [sleeper(env=[pod_ip])])
    await PodWorker(env.context(), pod).sync()

    container = next(iter(env.fake.containers.values()))
    envs = {kv.key: kv.value for kv in container.config.envs}
    assert envs["POD_IP"] == env.status("web")["podIP"] != ""


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def test_no_pass_for_the_workers_own_doing(env: Env) -> None:  # noqa: F811
    pod = env.seed("web", [sleeper()])
    ctx = env.context()
    ctx.resync = None
    worker = PodWorker(ctx, pod)
    task = asyncio.create_task(worker.run())
    try:
        await _until(lambda: env.status("web").get("phase") == "Running", "pod not Running")
        await asyncio.sleep(0.05)
        passes = worker.syncs
        assert passes == 1  # the start pass wrote the status from what it created

        worker.update(env.pod("web"))  # the watch hands back the status it wrote
        worker.runtime_changed(runtime_view(await observe(env.runtime, worker.uid, NODE)))
        await asyncio.sleep(0.05)
        assert worker.syncs == passes

        # A poll listed before the pass's last look at the runtime (here: one reporting a
        # container still being created) is older than what the pass saw.
        stale = {key: "created" for key in worker._seen}
        worker.runtime_changed(stale, listed_at=worker._snapshot_at - 0.001)
        await asyncio.sleep(0.05)
        assert worker.syncs == passes
        worker.runtime_changed(stale)  # the same news listed now is news
        # (``syncs`` counts finished passes: the runtime changes below come after this one)
        await _until(lambda: worker.syncs > passes, "no pass for a newer poll")
        passes = worker.syncs

        env.exit_all(1)  # not its doing: the poller sees the container exit
        worker.runtime_changed(runtime_view(await observe(env.runtime, worker.uid, NODE)))
        await _until(lambda: worker.syncs > passes, "no pass after the container exited")
        passes = worker.syncs

        changed = env.pod("web")
        changed["metadata"]["resourceVersion"] = "999999"  # a newer version of the pod
        worker.update(changed)
        await _until(lambda: worker.syncs > passes, "no pass for a new pod version")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_unchanged_status_is_not_written_again(env: Env) -> None:  # noqa: F811
    pod = env.seed("web", [sleeper()])
    worker = PodWorker(env.context(), pod)
    await settle(worker, env)
    stored = env.pod("web")
    # What a real API server hands back: conditions without ``lastProbeTime: null``.
    stored["status"] = _without_none(stored["status"])
    worker.update(stored)
    before = len(env.api.requests_matching("PATCH", "/status"))
    await worker.sync()
    assert len(env.api.requests_matching("PATCH", "/status")) == before


async def test_service_cache_answers_without_asking_the_api(env: Env) -> None:  # noqa: F811
    env.api.seed(SERVICES, _svc("kubernetes", "default", "10.96.0.1"))
    env.api.seed(SERVICES, _svc("db", "shop", "10.96.0.20"))
    env.api.seed(SERVICES, _svc("other", "elsewhere", "10.96.0.30"))
    client = env.api.async_client()
    cache = ServiceCache(client)
    task = asyncio.create_task(cache.run())
    try:
        deadline = time.monotonic() + 5
        while not cache.synced and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert cache.synced
        pod = {"metadata": {"namespace": "shop"}, "spec": {}}
        gets = len(env.api.requests_matching("GET", "/services", watch=False))
        cached = await fetch_services(client, pod, cache)
        assert len(env.api.requests_matching("GET", "/services", watch=False)) == gets
        fetched = await fetch_services(client, pod)
        assert sorted(s["metadata"]["name"] for s in cached) == ["db", "kubernetes"]
        assert sorted(s["metadata"]["name"] for s in fetched) == ["db", "kubernetes"]
        no_links = {"metadata": {"namespace": "shop"}, "spec": {"enableServiceLinks": False}}
        assert [s["metadata"]["name"] for s in await fetch_services(client, no_links, cache)] == [
            "kubernetes"
        ]

        env.api.seed(SERVICES, _svc("cache", "shop", "10.96.0.21"))  # seen through the watch
        deadline = time.monotonic() + 5
        while len(cache.namespace("shop")) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        names = sorted(s["metadata"]["name"] for s in await fetch_services(client, pod, cache))
        assert names == ["cache", "db", "kubernetes"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
