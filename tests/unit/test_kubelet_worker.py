"""The pod worker state machine against the fake CRI runtime (over gRPC) and a fake API server.

Time is a fake clock shared by the runtime and the back-off, so back-off tests step it instead
of sleeping. Each test drives ``worker.sync()`` by hand and asserts on what the API server
holds and what the runtime did.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from kubelet import labels as L
from kubelet.backoff import Backoff
from kubelet.cri import api_pb2 as pb
from kubelet.cri.client import AsyncRuntimeClient
from kubelet.cri.fake import FakeRuntime, FakeServer
from kubelet.podworker import PodWorker, WorkerContext
from kubelet.specs import NodeContext
from machinery.kinds import lookup
from tests.unit.fake_apiserver import FakeApiServer

PODS = lookup("pods")
NODE = "node-a"


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def step(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Env:
    api: FakeApiServer
    fake: FakeRuntime
    runtime: AsyncRuntimeClient
    clock: Clock
    tmp: Any

    def context(self) -> WorkerContext:
        return WorkerContext(
            client=self.api.async_client(),
            runtime=self.runtime,
            node=NodeContext(
                name=NODE,
                ip="192.0.2.10",
                log_root=str(self.tmp / "logs"),
                root_dir=str(self.tmp / "root"),
            ),
            runtime_name="containerd",
            backoff=Backoff(clock=self.clock),
            image_backoff=Backoff(clock=self.clock),
            start_backoff=Backoff(clock=self.clock),
            clock=self.clock,
        )

    def seed(self, name: str, containers: list[dict], **spec: Any) -> dict:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": NODE, "containers": containers, **spec},
        }
        return self.api.seed(PODS, body)

    def pod(self, name: str) -> dict:
        stored = self.api.stored(PODS, "default", name)
        assert stored is not None
        return copy.deepcopy(stored)

    def status(self, name: str) -> dict:
        return self.pod(name).get("status") or {}

    def container(self, name: str, container: str) -> dict:
        statuses = self.status(name).get("containerStatuses") or []
        return next(s for s in statuses if s["name"] == container)

    def running_ids(self) -> list[str]:
        return [c.id for c in self.fake.containers.values() if c.state == pb.CONTAINER_RUNNING]

    def exit_all(self, code: int) -> None:
        for cid in self.running_ids():
            self.fake.exit_container(cid, code)


@pytest.fixture
async def env(tmp_path) -> AsyncIterator[Env]:
    clock = Clock()
    fake = FakeRuntime(clock=clock, pullable={"docker.io/library/pullable:1"})
    async with FakeServer(fake) as server:
        runtime = AsyncRuntimeClient(server.endpoint)
        yield Env(FakeApiServer(), fake, runtime, clock, tmp_path)
        await runtime.close()


def sleeper(name: str = "main", **extra: Any) -> dict:
    return {"name": name, "image": "busybox:1.35", "command": ["sleep", "3600"], **extra}


def exits(code: int, name: str = "main") -> dict:
    return {"name": name, "image": "busybox:1.35", "command": ["sh", "-c", f"exit {code}"]}


async def settle(worker: PodWorker, env: Env, rounds: int = 5) -> float | None:
    """Sync until the worker asks for no immediate re-sync, following the pod's updates."""
    wake: float | None = 0.0
    for _ in range(rounds):
        worker.update(env.pod(worker.last_pod["metadata"]["name"]))
        wake = await worker.sync()
        if wake != 0.0:
            return wake
    return wake


async def test_pod_runs_and_reports_status(env: Env) -> None:
    pod = env.seed("web", [sleeper(resources={"limits": {"cpu": "1", "memory": "64Mi"}})])
    worker = PodWorker(env.context(), pod)
    await settle(worker, env)

    status = env.status("web")
    assert status["phase"] == "Running"
    assert status["hostIP"] == "192.0.2.10"
    assert status["podIP"].startswith("10.244.0.")
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["qosClass"] == "Guaranteed"
    assert status["startTime"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    main = env.container("web", "main")
    assert main["ready"] and main["started"] and main["restartCount"] == 0
    assert "running" in main["state"]
    assert main["containerID"] == f"containerd://{env.running_ids()[0]}"

    sandbox = next(iter(env.fake.sandboxes.values()))
    sec = sandbox.config.linux.security_context
    assert sec.namespace_options.pid == pb.CONTAINER
    assert sandbox.config.linux.cgroup_parent == f"/tugboat/kubepods/pod{pod['metadata']['uid']}"
    container = next(iter(env.fake.containers.values()))
    assert container.config.linux.security_context.HasField("seccomp")
    assert container.config.linux.resources.memory_limit_in_bytes == 64 * 1024 * 1024
    assert container.config.labels[L.NODE] == NODE
    # A second pass with nothing changed does nothing.
    calls = dict(env.fake.calls)
    assert await worker.sync() is None
    assert env.fake.calls["CreateContainer"] == calls["CreateContainer"]


@pytest.mark.parametrize(
    ("policy", "code", "restarts", "phase"),
    [
        ("Always", 0, True, "Running"),
        ("Always", 3, True, "Running"),
        ("OnFailure", 0, False, "Succeeded"),
        ("OnFailure", 3, True, "Running"),
        ("Never", 0, False, "Succeeded"),
        ("Never", 3, False, "Failed"),
    ],
    ids=lambda v: str(v),
)
async def test_restart_policy(env: Env, policy: str, code: int, restarts: bool, phase: str) -> None:
    pod = env.seed("job", [exits(code)], restartPolicy=policy)
    worker = PodWorker(env.context(), pod)
    await settle(worker, env)

    main = env.container("job", "main")
    assert env.status("job")["phase"] == phase
    assert main["restartCount"] == (1 if restarts else 0)
    if restarts:
        # restarted once at once, then waiting in back-off with the exit as lastState
        assert main["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert main["lastState"]["terminated"]["exitCode"] == code
    else:
        assert main["state"]["terminated"]["exitCode"] == code
        assert main["state"]["terminated"]["reason"] == ("Completed" if code == 0 else "Error")
        # a finished pod's sandbox is stopped
        assert all(not s.ready for s in env.fake.sandboxes.values())


async def test_crash_loop_backoff_doubles(env: Env) -> None:
    pod = env.seed("crash", [exits(1)])
    worker = PodWorker(env.context(), pod)
    wake = await settle(worker, env)  # start, immediate first restart, then back-off
    main = env.container("crash", "main")
    assert main["restartCount"] == 1
    assert main["state"]["waiting"]["message"].startswith("back-off 10s restarting failed")
    assert wake == pytest.approx(10.0)

    for expected_count, expected_delay in ((2, 20.0), (3, 40.0), (4, 80.0)):
        env.clock.step(5)
        assert await settle(worker, env) == pytest.approx(wake - 5)  # still backing off
        assert env.container("crash", "main")["restartCount"] == expected_count - 1
        env.clock.step(wake - 5)
        wake = await settle(worker, env)
        main = env.container("crash", "main")
        assert main["restartCount"] == expected_count
        assert main["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert wake == pytest.approx(expected_delay)
    assert env.status("crash")["phase"] == "Running"
    # Only the newest two instances are kept.
    assert len(env.fake.containers) == 2


async def test_backoff_is_capped_at_five_minutes() -> None:
    clock = Clock()
    backoff = Backoff(clock=clock)
    delays = []
    for _ in range(8):
        backoff.next("k", clock())
        delays.append(backoff.get("k"))
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]
    clock.step(700)  # untouched for more than twice the cap: forgotten
    assert not backoff.in_backoff_since("k", clock() - 1)
    backoff.next("k", clock())
    assert backoff.get("k") == 10


async def test_init_containers_run_in_order_before_app(env: Env) -> None:
    inits = [exits(0, "first"), exits(0, "second")]
    pod = env.seed("init", [sleeper()], initContainers=inits)
    worker = PodWorker(env.context(), pod)
    await settle(worker, env)

    created = sorted(env.fake.containers.values(), key=lambda c: c.created_at)
    assert [c.config.metadata.name for c in created] == ["first", "second", "main"]
    status = env.status("init")
    assert status["phase"] == "Running"
    assert [s["state"]["terminated"]["exitCode"] for s in status["initContainerStatuses"]] == [
        0,
        0,
    ]


async def test_failed_init_container_fails_a_never_pod(env: Env) -> None:
    pod = env.seed(
        "bad-init", [sleeper()], initContainers=[exits(2, "setup")], restartPolicy="Never"
    )
    worker = PodWorker(env.context(), pod)
    await settle(worker, env)
    status = env.status("bad-init")
    assert status["phase"] == "Failed"
    assert [c.config.metadata.name for c in env.fake.containers.values()] == ["setup"]
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False"
    assert initialized["message"] == "containers with incomplete status: [setup]"


async def test_image_pull_errors_back_off(env: Env) -> None:
    pod = env.seed("img", [{"name": "main", "image": "docker.io/library/absent:1"}])
    worker = PodWorker(env.context(), pod)
    assert await worker.sync() == 0.0  # the sandbox was created: look again at once
    assert env.container("img", "main")["state"]["waiting"]["reason"] == "ErrImagePull"
    assert env.fake.calls["PullImage"] == 1
    worker.update(env.pod("img"))
    assert await worker.sync() == pytest.approx(10.0)
    assert env.container("img", "main")["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert env.fake.calls["PullImage"] == 1  # no pull while backing off
    env.clock.step(10)
    assert await settle(worker, env) == pytest.approx(20.0)
    assert env.fake.calls["PullImage"] == 2
    assert env.status("img")["phase"] == "Pending"


async def test_present_images_are_never_pulled_and_absent_ones_are(env: Env) -> None:
    pod = env.seed(
        "pulls",
        [
            sleeper("present", imagePullPolicy="Always"),
            {"name": "pulled", "image": "pullable:1", "command": ["sleep", "1"]},
            {"name": "never", "image": "absent:2", "imagePullPolicy": "Never"},
        ],
    )
    worker = PodWorker(env.context(), pod)
    await settle(worker, env)
    assert env.fake.calls["PullImage"] == 1
    assert "running" in env.container("pulls", "pulled")["state"]
    assert "running" in env.container("pulls", "present")["state"]
    never = env.container("pulls", "never")["state"]["waiting"]
    assert never["reason"] == "ErrImageNeverPull"
    assert env.status("pulls")["phase"] == "Pending"


async def test_unsupported_env_source_is_a_config_error(env: Env) -> None:
    env_from_secret = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    pod = env.seed("cfg", [sleeper(env=env_from_secret)])
    worker = PodWorker(env.context(), pod)
    await settle(worker, env)
    waiting = env.container("cfg", "main")["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert env.fake.calls["CreateContainer"] == 0


async def test_graceful_deletion_stops_everything_then_deletes(env: Env) -> None:
    pre_stop = {"preStop": {"exec": {"command": ["sh", "-c", "echo bye"]}}}
    pod = env.seed("gone", [sleeper(lifecycle=pre_stop)], terminationGracePeriodSeconds=5)
    worker = PodWorker(env.context(), pod)
    await settle(worker, env)
    assert env.running_ids()
    log_dir = env.tmp / "logs" / f"default_gone_{pod['metadata']['uid']}"
    assert log_dir.is_dir()

    deleting = env.api.modify(
        PODS,
        "default",
        "gone",
        {
            "metadata": {
                "deletionTimestamp": "2030-01-01T00:00:00Z",
                "deletionGracePeriodSeconds": 5,
            }
        },
    )
    worker.update(deleting)
    await worker.sync()
    assert worker.done
    assert env.fake.calls["ExecSync"] == 1  # the preStop hook ran
    assert env.fake.containers == {} and env.fake.sandboxes == {}
    assert env.api.stored(PODS, "default", "gone") is None
    assert not log_dir.exists()


async def test_pod_gone_from_api_is_torn_down(env: Env) -> None:
    pod = env.seed("forced", [sleeper()])
    worker = PodWorker(env.context(), pod)
    await settle(worker, env)
    env.api.remove(PODS, "default", "forced")
    worker.update(None)
    await worker.sync()
    assert worker.done
    assert env.fake.containers == {} and env.fake.sandboxes == {}


async def test_new_worker_readopts_without_touching_containers(env: Env) -> None:
    pod = env.seed("keep", [sleeper("restarted"), sleeper()])
    first = PodWorker(env.context(), pod)
    await settle(first, env)
    restarted = next(
        c.id for c in env.fake.containers.values() if c.config.metadata.name == "restarted"
    )
    env.fake.exit_container(restarted, 1)
    await settle(first, env)  # first restart: immediate
    assert env.container("keep", "restarted")["restartCount"] == 1
    running = sorted(env.running_ids())
    calls = dict(env.fake.calls)

    second = PodWorker(env.context(), env.pod("keep"))  # a restarted agent: fresh state
    await settle(second, env)
    assert sorted(env.running_ids()) == running
    for rpc in ("CreateContainer", "StopContainer", "RunPodSandbox", "StopPodSandbox"):
        assert env.fake.calls[rpc] == calls.get(rpc, 0), rpc
    assert env.container("keep", "restarted")["restartCount"] == 1
    assert env.container("keep", "restarted")["lastState"]["terminated"]["exitCode"] == 1
    assert env.container("keep", "main")["restartCount"] == 0


async def test_changed_container_spec_replaces_the_container(env: Env) -> None:
    pod = env.seed("upd", [sleeper()])
    worker = PodWorker(env.context(), pod)
    await settle(worker, env)
    old = env.running_ids()
    env.api.modify(
        PODS, "default", "upd", {"spec": {"containers": [sleeper(image="docker.io/tugboat/web:2")]}}
    )
    await settle(worker, env)
    new = env.running_ids()
    assert len(new) == 1 and new != old
    main = env.container("upd", "main")
    assert main["restartCount"] == 1
    assert main["image"] == "docker.io/tugboat/web:2"


async def test_dead_sandbox_is_recreated(env: Env) -> None:
    pod = env.seed("sb", [sleeper()])
    worker = PodWorker(env.context(), pod)
    await settle(worker, env)
    sandbox_id = next(iter(env.fake.sandboxes))
    env.fake.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
    await settle(worker, env)
    ready = [s for s in env.fake.sandboxes.values() if s.ready]
    assert len(ready) == 1 and ready[0].config.metadata.attempt == 1
    assert env.status("sb")["phase"] == "Running"
    assert env.container("sb", "main")["restartCount"] == 1
