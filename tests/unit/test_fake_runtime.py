"""The fake CRI runtime, driven through the real gRPC client over a real (loopback) server."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubelet.cri import api_pb2 as pb
from kubelet.cri.client import AsyncRuntimeClient, RuntimeClient
from kubelet.cri.errors import CriError, CriNotFound, RuntimeUnavailable
from kubelet.cri.fake import FakeRuntime, FakeServer, ThreadedFakeServer
from kubelet.cri.logs import read_log

MiB = 1024 * 1024


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    runtime: FakeRuntime
    clock: FakeClock
    server: FakeServer
    client: AsyncRuntimeClient


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock()
    runtime = FakeRuntime(pod_cidr="10.99.0.0/24", pullable={"busybox:1.36"}, clock=clock)
    server = FakeServer(runtime)
    await server.start("127.0.0.1:0")
    client = AsyncRuntimeClient(server.endpoint, timeout=5)
    try:
        yield Env(runtime, clock, server, client)
    finally:
        await client.close()
        await server.stop()


def sandbox_config(
    name: str, uid: str, log_dir: Path | None = None, host_network: bool = False
) -> pb.PodSandboxConfig:
    ns = pb.NamespaceOption(network=pb.NODE if host_network else pb.POD, pid=pb.CONTAINER)
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="default"),
        hostname=name,
        log_directory=str(log_dir) if log_dir else "",
        labels={"app": name},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=f"/tugboat/pod{uid}",
            security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns),
        ),
    )


def container_config(name: str, command: list[str] | None = None, image: str = "busybox:1.35"):
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=image),
        command=command or ["sleep", "3600"],
        labels={"container": name},
        log_path=f"{name}/0.log",
    )


async def start_pod(
    env: Env, name: str, containers: dict[str, list[str] | None], log_dir: Path | None = None
) -> tuple[str, dict[str, str]]:
    config = sandbox_config(name, f"uid-{name}", log_dir)
    sandbox_id = await env.client.run_pod_sandbox(config)
    ids = {}
    for cname, command in containers.items():
        ids[cname] = await env.client.create_container(
            sandbox_id, container_config(cname, command), config
        )
        await env.client.start_container(ids[cname])
    return sandbox_id, ids


async def test_version_and_status(env: Env) -> None:
    version = await env.client.version()
    assert (version.runtime_name, version.runtime_api_version) == ("tugboat-fake", "v1")
    conditions = {c.type: c.status for c in (await env.client.status()).status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}


async def test_sandboxes_get_sequential_ips_and_release_them(env: Env) -> None:
    ids = [await env.client.run_pod_sandbox(sandbox_config(f"p{i}", f"u{i}")) for i in range(3)]
    ips = [(await env.client.pod_sandbox_status(i)).network.ip for i in ids]
    assert ips == ["10.99.0.2", "10.99.0.3", "10.99.0.4"]
    await env.client.stop_pod_sandbox(ids[0])
    status = await env.client.pod_sandbox_status(ids[0])
    assert status.state == pb.SANDBOX_NOTREADY
    # host-local hands out addresses round-robin: a released IP is not reused at once.
    new = await env.client.run_pod_sandbox(sandbox_config("p3", "u3"))
    assert (await env.client.pod_sandbox_status(new)).network.ip == "10.99.0.5"
    host = await env.client.run_pod_sandbox(sandbox_config("h", "uh", host_network=True))
    assert (await env.client.pod_sandbox_status(host)).network.ip == ""

    info = json.loads((await env.client.pod_sandbox_info(ids[1]))["info"])
    assert info["config"]["linux"]["cgroup_parent"] == "/tugboat/podu1"
    ready = await env.client.list_pod_sandbox(state=pb.SANDBOX_READY)
    assert {s.id for s in ready} == {ids[1], ids[2], new, host}
    assert [s.id for s in await env.client.list_pod_sandbox(labels={"app": "p1"})] == [ids[1]]


async def test_pod_cidr_exhaustion_is_an_error() -> None:
    runtime = FakeRuntime(pod_cidr="10.98.0.0/29")  # .2 - .6 usable
    async with FakeServer(runtime) as server, AsyncRuntimeClient(server.endpoint) as client:
        for i in range(5):
            await client.run_pod_sandbox(sandbox_config(f"p{i}", f"u{i}"))
        with pytest.raises(CriError, match="no IP addresses available"):
            await client.run_pod_sandbox(sandbox_config("p5", "u5"))


async def test_container_lifecycle_created_running_exited(env: Env) -> None:
    config = sandbox_config("web", "uid-web")
    sandbox_id = await env.client.run_pod_sandbox(config)
    cid = await env.client.create_container(sandbox_id, container_config("web"), config)
    assert (await env.client.container_status(cid)).state == pb.CONTAINER_CREATED
    env.clock.advance(1)
    await env.client.start_container(cid)
    running = await env.client.container_status(cid)
    assert running.state == pb.CONTAINER_RUNNING
    assert running.started_at == int(env.clock.now * 1e9)
    assert running.image.image == "docker.io/library/busybox:1.35"

    env.clock.advance(2)
    env.runtime.exit_container(cid, 3)
    status = await env.client.container_status(cid)
    assert (status.state, status.exit_code, status.reason) == (pb.CONTAINER_EXITED, 3, "Error")
    assert status.finished_at - status.started_at == 2_000_000_000
    with pytest.raises(ValueError):
        env.runtime.exit_container(cid, 0)

    listed = await env.client.list_containers(pod_sandbox_id=sandbox_id, state=pb.CONTAINER_EXITED)
    assert [c.id for c in listed] == [cid]
    assert await env.client.list_containers(state=pb.CONTAINER_RUNNING) == []
    await env.client.remove_container(cid)
    with pytest.raises(CriNotFound):
        await env.client.container_status(cid)
    await env.client.remove_container(cid)  # idempotent, as in containerd


@pytest.mark.parametrize(
    ("command", "code", "reason", "lines"),
    [
        (["echo", "hello", "world"], 0, "Completed", ["hello world"]),
        (["sh", "-c", "echo one; echo two; exit 4"], 4, "Error", ["one", "two"]),
        (["false"], 1, "Error", []),
    ],
    ids=["echo", "sh-exit", "false"],
)
async def test_known_commands_run_to_completion_and_log(
    env: Env, tmp_path: Path, command: list[str], code: int, reason: str, lines: list[str]
) -> None:
    _, ids = await start_pod(env, "job", {"main": command}, log_dir=tmp_path)
    status = await env.client.container_status(ids["main"])
    assert (status.state, status.exit_code, status.reason) == (pb.CONTAINER_EXITED, code, reason)
    assert status.log_path == str(tmp_path / "main/0.log")
    entries = read_log(status.log_path)
    assert [e.text for e in entries] == lines
    assert all(e.stream == "stdout" for e in entries)


async def test_write_log_appends_cri_records(env: Env, tmp_path: Path) -> None:
    _, ids = await start_pod(env, "app", {"app": None}, log_dir=tmp_path)
    env.runtime.write_log(ids["app"], "line 1\nline 2\n")
    env.runtime.write_log(ids["app"], "bad thing", stream="stderr")
    entries = read_log(tmp_path / "app/0.log")
    assert [(e.stream, e.text) for e in entries] == [
        ("stdout", "line 1"),
        ("stdout", "line 2"),
        ("stderr", "bad thing"),
    ]
    assert entries[0].time_ns == int(env.clock.now * 1e9)


async def test_stop_sandbox_kills_containers_and_remove_cleans_up(env: Env) -> None:
    sandbox_id, ids = await start_pod(env, "pod", {"a": None, "b": None})
    await env.client.stop_pod_sandbox(sandbox_id)
    await env.client.stop_pod_sandbox(sandbox_id)  # idempotent
    for cid in ids.values():
        status = await env.client.container_status(cid)
        assert (status.state, status.exit_code) == (pb.CONTAINER_EXITED, 137)
    with pytest.raises(CriError):
        await env.client.create_container(
            sandbox_id, container_config("late"), sandbox_config("pod", "uid-pod")
        )
    await env.client.remove_pod_sandbox(sandbox_id)
    assert await env.client.list_pod_sandbox() == []
    assert await env.client.list_containers() == []
    await env.client.remove_pod_sandbox(sandbox_id)  # unknown: success, as in containerd
    with pytest.raises(CriNotFound):
        await env.client.stop_pod_sandbox(sandbox_id)


async def test_stop_container(env: Env) -> None:
    _, ids = await start_pod(env, "pod", {"a": None})
    await env.client.stop_container(ids["a"], timeout=5)
    status = await env.client.container_status(ids["a"])
    assert (status.state, status.exit_code, status.reason) == (pb.CONTAINER_EXITED, 0, "Completed")


async def test_container_stats_integrate_the_set_load(env: Env) -> None:
    _, ids = await start_pod(env, "load", {"a": None})
    env.runtime.set_usage(ids["a"], cpu_millicores=250, memory_bytes=64 * MiB)
    env.clock.advance(2)
    stats = await env.client.container_stats(ids["a"])
    assert stats.cpu.usage_nano_cores.value == 250_000_000
    assert stats.cpu.usage_core_nano_seconds.value == 500_000_000
    assert stats.memory.working_set_bytes.value == 64 * MiB

    env.runtime.set_usage(ids["a"], cpu_millicores=1000, memory_bytes=80 * MiB)
    env.clock.advance(1)
    stats = await env.client.container_stats(ids["a"])
    assert stats.cpu.usage_core_nano_seconds.value == 1_500_000_000

    env.runtime.exit_container(ids["a"], 0)
    env.clock.advance(5)  # an exited container accumulates nothing
    stats = await env.client.container_stats(ids["a"])
    assert stats.cpu.usage_core_nano_seconds.value == 1_500_000_000
    assert stats.cpu.usage_nano_cores.value == 0


async def test_pod_usage_is_shared_by_running_containers(env: Env) -> None:
    sandbox_id, ids = await start_pod(env, "pair", {"a": None, "b": None})
    env.runtime.set_usage("uid-pair", cpu_millicores=500, memory_bytes=100 * MiB)
    env.clock.advance(4)
    per_container = {s.attributes.id: s for s in await env.client.list_container_stats()}
    assert set(per_container) == set(ids.values())
    for stats in per_container.values():
        assert stats.cpu.usage_nano_cores.value == 250_000_000
        assert stats.cpu.usage_core_nano_seconds.value == 1_000_000_000
        assert stats.memory.working_set_bytes.value == 50 * MiB
    pod = await env.client.pod_sandbox_stats(sandbox_id)
    assert pod.linux.cpu.usage_core_nano_seconds.value == 2_000_000_000
    assert pod.linux.memory.working_set_bytes.value == 100 * MiB
    assert len(pod.linux.containers) == 2
    filtered = await env.client.list_container_stats(labels={"container": "a"})
    assert [s.attributes.id for s in filtered] == [ids["a"]]


async def test_exec_sync(env: Env) -> None:
    _, ids = await start_pod(env, "exec", {"a": None, "b": None})
    echo = await env.client.exec_sync(ids["a"], ["echo", "hi"])
    assert (echo.exit_code, echo.stdout) == (0, b"hi\n")
    assert (await env.client.exec_sync(ids["a"], ["sh", "-c", "exit 2"])).exit_code == 2
    env.runtime.set_exec_result(ids["b"], stdout=b"ready\n", stderr=b"warn\n", exit_code=5)
    configured = await env.client.exec_sync(ids["b"], ["cat", "/tmp/ready"])
    assert (configured.exit_code, configured.stdout, configured.stderr) == (
        5,
        b"ready\n",
        b"warn\n",
    )
    env.runtime.exec_handler = lambda cid, cmd: (9, cid.encode(), b"") if cmd == ["who"] else None
    handled = await env.client.exec_sync(ids["a"], ["who"])
    assert (handled.exit_code, handled.stdout) == (9, ids["a"].encode())
    env.runtime.exit_container(ids["a"], 0)
    with pytest.raises(CriError, match="not running"):
        await env.client.exec_sync(ids["a"], ["true"])
    url = await env.client.exec(ids["b"], ["sh"])  # served by kubelet.cri.fakestream
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url


async def test_images_presence_pull_and_remove(env: Env) -> None:
    present = await env.client.image_status("busybox:1.35")
    assert present is not None and present.repo_tags == ["docker.io/library/busybox:1.35"]
    assert await env.client.ensure_image("docker.io/library/busybox:1.35") == present.id
    assert env.runtime.calls["PullImage"] == 0  # present images are never pulled

    # Pulling a present image goes to the registry in containerd: offline it fails.
    with pytest.raises(CriNotFound):
        await env.client.pull_image("busybox:1.35")
    assert await env.client.image_status("busybox:1.36") is None
    ref = await env.client.ensure_image("busybox:1.36")
    assert env.runtime.has_image("docker.io/library/busybox:1.36")
    assert (await env.client.image_status(ref)).repo_tags == ["docker.io/library/busybox:1.36"]
    with pytest.raises(CriNotFound, match="not found"):
        await env.client.ensure_image("nginx:1.25")

    config = sandbox_config("img", "uid-img")
    sandbox_id = await env.client.run_pod_sandbox(config)
    with pytest.raises(CriNotFound):
        await env.client.create_container(
            sandbox_id, container_config("x", image="nginx:1.25"), config
        )
    await env.client.remove_image("busybox:1.36")
    assert await env.client.image_status("busybox:1.36") is None
    tags = {t for image in await env.client.list_images() for t in image.repo_tags}
    assert "docker.io/tugboat/web:1" in tags
    assert (await env.client.image_fs_info())[0].used_bytes.value == len(tags) * 1_000_000


async def test_one_server_serves_many_nodes() -> None:
    server = FakeServer()
    for i in range(3):
        server.add(f"node-{i}", FakeRuntime(pod_cidr=f"10.97.{i}.0/24"))
    async with server:
        clients = [AsyncRuntimeClient(server.endpoint, node=f"node-{i}") for i in range(3)]
        for i, client in enumerate(clients):
            sid = await client.run_pod_sandbox(sandbox_config("p", f"u{i}"))
            ip = (await client.pod_sandbox_status(sid)).network.ip
            assert ipaddress.ip_address(ip) in ipaddress.ip_network(f"10.97.{i}.0/24")
            assert len(await client.list_pod_sandbox()) == 1
        with pytest.raises(RuntimeUnavailable, match="no fake runtime"):
            await AsyncRuntimeClient(server.endpoint, node="nope").version()
        for client in clients:
            await client.close()


async def test_missing_socket_is_runtime_unavailable(tmp_path: Path) -> None:
    endpoint = f"unix://{tmp_path}/absent.sock"
    async with AsyncRuntimeClient(endpoint, timeout=5) as client:
        with pytest.raises(RuntimeUnavailable, match="does not exist"):
            await client.version()
    with RuntimeClient(endpoint, timeout=5) as sync_client, pytest.raises(RuntimeUnavailable):
        sync_client.version()


async def test_new_client_does_not_inherit_a_failed_connection_to_the_same_address() -> None:
    """A runtime back at an address an older client saw go away answers a new client at once."""
    first = FakeServer(FakeRuntime())
    endpoint = await first.start()
    stale = AsyncRuntimeClient(endpoint, timeout=5)
    await stale.version()
    await first.stop()
    with pytest.raises(RuntimeUnavailable):
        await stale.version()

    async with (
        FakeServer(FakeRuntime(), address=endpoint),
        AsyncRuntimeClient(endpoint, timeout=5) as fresh,
    ):
        assert (await fresh.version()).runtime_name == "tugboat-fake"
    await stale.close()


async def test_unix_socket_endpoint(tmp_path: Path) -> None:
    runtime = FakeRuntime()
    async with FakeServer(runtime, address=f"unix://{tmp_path}/cri.sock") as server:
        assert server.endpoint == f"unix://{tmp_path}/cri.sock"
        async with AsyncRuntimeClient(server.endpoint) as client:
            assert (await client.version()).runtime_name == "tugboat-fake"
    assert not (tmp_path / "cri.sock").exists()


def test_blocking_client_against_threaded_server() -> None:
    runtime = FakeRuntime(pod_cidr="10.96.128.0/24")
    server = ThreadedFakeServer(FakeServer(runtime))
    with server, RuntimeClient(server.endpoint, timeout=5) as client:
        config = sandbox_config("sync", "uid-sync")
        sandbox_id = client.run_pod_sandbox(config)
        cid = client.create_container(sandbox_id, container_config("c"), config)
        client.start_container(cid)
        runtime.exit_container(cid, 0)
        status = client.container_status(cid)
        assert (status.state, status.reason) == (pb.CONTAINER_EXITED, "Completed")
        assert client.pod_sandbox_status(sandbox_id).network.ip == "10.96.128.2"
        assert client.image_status("busybox:1.35") is not None
