"""The CRI client against a real containerd + runc + CNI bridge (see tests/e2e/conftest.py)."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from kubelet.cri import api_pb2 as pb
from kubelet.cri.client import AsyncRuntimeClient, RuntimeClient
from kubelet.cri.errors import CriError, CriNotFound
from kubelet.cri.logs import read_log

from .conftest import ContainerdRuntime, Pods

pytestmark = pytest.mark.e2e

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as err:  # the thing polled may not be up yet
            last_error = err
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error})")


def container_config(
    name: str,
    image: str,
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    memory_limit: int = 0,
) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=image),
        command=command or [],
        args=args or [],
        envs=[pb.KeyValue(key=k, value=v) for k, v in (env or {}).items()],
        log_path=f"{name}/0.log",
        linux=pb.LinuxContainerConfig(
            resources=pb.LinuxContainerResources(
                cpu_shares=256, memory_limit_in_bytes=memory_limit, oom_score_adj=1000
            ),
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            ),
        ),
    )


def exited(cri: RuntimeClient, container_id: str) -> pb.ContainerStatus | None:
    status = cri.container_status(container_id)
    return status if status.state == pb.CONTAINER_EXITED else None


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.read().decode()


def test_version_and_status(cri: RuntimeClient) -> None:
    version = cri.version()
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"
    conditions = {c.type: c.status for c in cri.status().status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}


def test_images_present_and_never_pulled(
    containerd_runtime: ContainerdRuntime, cri: RuntimeClient
) -> None:
    names = [containerd_runtime.pause_image, containerd_runtime.busybox_image]
    names += list(containerd_runtime.web_images.values())
    for name in names:
        image = cri.image_status(name)
        assert image is not None, name
        assert name in image.repo_tags
        # Present: ensure_image must not pull (offline, a pull would fail).
        assert cri.ensure_image(name) == image.id
    assert cri.image_status("busybox:1.35") is not None  # short names are normalised
    assert cri.image_status("127.0.0.1:1/absent/image:1") is None
    with pytest.raises(CriError):
        cri.ensure_image("127.0.0.1:1/absent/image:1")
    listed = {tag for image in cri.list_images() for tag in image.repo_tags}
    assert set(names) <= listed
    # containerd samples usage every 10 s (0 until then); the filesystem is our own root's.
    mountpoint = cri.image_fs_info()[0].fs_id.mountpoint
    assert mountpoint.startswith(str(containerd_runtime.dir / "root"))


def test_web_pod_answers_http_on_pod_ip_and_host_port(
    containerd_runtime: ContainerdRuntime, cri: RuntimeClient, pods: Pods
) -> None:
    host_port = 31080
    config = pods.sandbox_config(
        "web", port_mappings=[pb.PortMapping(container_port=8080, host_port=host_port)]
    )
    sandbox_id = pods.run(config)
    status = cri.pod_sandbox_status(sandbox_id)
    assert status.state == pb.SANDBOX_READY
    ip = ipaddress.ip_address(status.network.ip)
    assert ip in ipaddress.ip_network(containerd_runtime.pod_cidr)

    web = containerd_runtime.web_images[1]
    container_id = cri.create_container(sandbox_id, container_config("web", web), config)
    cri.start_container(container_id)
    page = wait_for("the web page", lambda: http_get(f"http://{ip}:8080/"))
    assert "v1" in page
    assert "hostname: web" in page
    via_host_port = wait_for("hostPort", lambda: http_get(f"http://127.0.0.1:{host_port}/"))
    assert "v1" in via_host_port

    # The entrypoint traps SIGTERM: a graceful stop exits 0 (a SIGKILL at the timeout: 137).
    cri.stop_container(container_id, timeout=10)
    final = cri.container_status(container_id)
    assert (final.state, final.exit_code, final.reason) == (pb.CONTAINER_EXITED, 0, "Completed")


def test_own_pid_namespace_env_args_logs_exec_and_stats(
    containerd_runtime: ContainerdRuntime, cri: RuntimeClient, pods: Pods
) -> None:
    config = pods.sandbox_config("shell")
    sandbox_id = pods.run(config)
    script = 'echo "pid=$$ greeting=$GREETING args=$*"; echo oops >&2; exec sleep 3600'
    cfg = container_config(
        "shell",
        containerd_runtime.busybox_image,
        command=["sh", "-c", script],
        args=["argv0", "one", "two"],
        env={"GREETING": "hello world"},
    )
    container_id = cri.create_container(sandbox_id, cfg, config)
    cri.start_container(container_id)

    status = cri.container_status(container_id)
    assert status.state == pb.CONTAINER_RUNNING
    log_path = Path(status.log_path)
    assert log_path == Path(config.log_directory) / "shell/0.log"
    entries = wait_for("two log lines", lambda: len(read_log(log_path)) >= 2 and read_log(log_path))
    by_stream = {e.stream: e.text for e in entries}
    assert by_stream == {"stdout": "pid=1 greeting=hello world args=one two", "stderr": "oops"}

    # PID 1 is the container's own process (sleep), not the sandbox's pause.
    result = cri.exec_sync(container_id, ["cat", "/proc/1/comm"], timeout=10)
    assert (result.exit_code, result.stdout) == (0, b"sleep\n")
    result = cri.exec_sync(container_id, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    result = cri.exec_sync(container_id, ["hostname"])
    assert result.stdout == b"shell\n"
    resolv = cri.exec_sync(container_id, ["cat", "/etc/resolv.conf"]).stdout.decode()
    assert "nameserver 10.96.0.10" in resolv and "search e2e.svc.cluster.local" in resolv
    cgroups = cri.exec_sync(container_id, ["cat", "/proc/1/cgroup"]).stdout.decode()
    assert f"{config.linux.cgroup_parent}/{container_id}" in cgroups

    stats = cri.container_stats(container_id)
    assert stats.attributes.id == container_id
    assert stats.memory.working_set_bytes.value > 0
    assert stats.cpu.usage_core_nano_seconds.value > 0
    pod_stats = cri.pod_sandbox_stats(sandbox_id)
    assert pod_stats.attributes.id == sandbox_id
    assert [c.attributes.id for c in pod_stats.linux.containers] == [container_id]

    listed = cri.list_containers(pod_sandbox_id=sandbox_id, state=pb.CONTAINER_RUNNING)
    assert [c.id for c in listed] == [container_id]
    assert cri.exec(container_id, ["sh"]).startswith("http://127.0.0.1:")


PEER_SERVER = """
import socket, sys
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    conn, peer = srv.accept()
    conn.sendall(peer[0].encode() + b"\\n")
    conn.close()
"""


@contextlib.contextmanager
def peer_server(address: str, port: int, netns: str | None = None) -> Iterator[None]:
    """A TCP server on ``address:port`` (in network namespace ``netns``) that answers each
    connection with the address it came from."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    cmd = [*prefix, sys.executable, "-c", PEER_SERVER, address, str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def outside_network(name: str, host_ip: str, peer_ip: str) -> Iterator[None]:
    """A network namespace ``name`` joined to the host by a veth pair (host side ``host_ip``,
    its side ``peer_ip``, a /30) that routes everything back through the host."""
    veth = f"{name[:10]}h"
    run = functools.partial(subprocess.run, check=True, timeout=10)
    run(["ip", "netns", "add", name])
    try:
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name])
        run(["ip", "addr", "add", f"{host_ip}/30", "dev", veth])
        run(["ip", "link", "set", veth, "up"])
        run(["ip", "-n", name, "addr", "add", f"{peer_ip}/30", "dev", "eth0"])
        run(["ip", "-n", name, "link", "set", "eth0", "up"])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        run(["ip", "-n", name, "route", "add", "default", "via", host_ip])
        yield
    finally:
        subprocess.run(["ip", "link", "del", veth], check=False, timeout=10)
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)


def test_pod_traffic_leaving_the_pod_network_is_masqueraded(
    containerd_runtime: ContainerdRuntime, cri: RuntimeClient, pods: Pods
) -> None:
    """To an address outside the pod CIDR a pod's connections come from the host's address
    (the outside network routes back to the pod CIDR, so unrewritten ones would arrive from
    the pod IP); within the pod network they keep the pod's own address."""
    config = pods.sandbox_config("masq")
    sandbox_id = pods.run(config)
    pod_ip = cri.pod_sandbox_status(sandbox_id).network.ip
    cfg = container_config("main", containerd_runtime.busybox_image, command=["sleep", "3600"])
    container_id = cri.create_container(sandbox_id, cfg, config)
    cri.start_container(container_id)

    def source_seen(address: str, port: int) -> str:
        result = cri.exec_sync(container_id, ["nc", "-w", "5", address, str(port)], timeout=10)
        assert result.exit_code == 0, result.stderr
        return result.stdout.decode().strip()

    netns = f"tugmasq{uuid.uuid4().hex[:6]}"
    host_ip, peer_ip = "10.250.77.1", "10.250.77.2"
    with outside_network(netns, host_ip, peer_ip), peer_server(peer_ip, 9477, netns):
        assert source_seen(peer_ip, 9477) == host_ip
    gateway = str(next(ipaddress.ip_network(containerd_runtime.pod_cidr).hosts()))
    with peer_server(gateway, 9478):
        assert source_seen(gateway, 9478) == pod_ip


@pytest.mark.parametrize(
    ("seccomp", "unshare_allowed"),
    [(None, True), (pb.SecurityProfile.RuntimeDefault, False)],
    ids=["unconfined", "runtime-default"],
)
def test_seccomp_profile(
    containerd_runtime: ContainerdRuntime,
    cri: RuntimeClient,
    pods: Pods,
    seccomp: int | None,
    unshare_allowed: bool,
) -> None:
    """An unset profile is unconfined; RuntimeDefault blocks unshare (no CAP_SYS_ADMIN)."""
    config = pods.sandbox_config("seccomp")
    sandbox_id = pods.run(config)
    cfg = container_config("main", containerd_runtime.busybox_image, command=["sleep", "3600"])
    if seccomp is not None:
        cfg.linux.security_context.seccomp.profile_type = seccomp  # type: ignore[assignment]
    container_id = cri.create_container(sandbox_id, cfg, config)
    cri.start_container(container_id)
    result = cri.exec_sync(container_id, ["unshare", "-U", "true"], timeout=10)
    assert (result.exit_code == 0) is unshare_allowed, result.stderr


def test_memory_limit_oom_kills(
    containerd_runtime: ContainerdRuntime, cri: RuntimeClient, pods: Pods
) -> None:
    config = pods.sandbox_config("hog")
    sandbox_id = pods.run(config)
    cfg = container_config(
        "hog",
        containerd_runtime.busybox_image,
        command=["tail", "/dev/zero"],  # buffers an endless line: grows until killed
        memory_limit=32 * 1024 * 1024,
    )
    container_id = cri.create_container(sandbox_id, cfg, config)
    cri.start_container(container_id)
    status = wait_for("the OOM kill", lambda: exited(cri, container_id), timeout=60)
    assert (status.reason, status.exit_code) == ("OOMKilled", 137)
    assert status.resources.linux.memory_limit_in_bytes == 32 * 1024 * 1024


def test_exit_codes_and_stop_remove_cleanup(
    containerd_runtime: ContainerdRuntime, cri: RuntimeClient, pods: Pods
) -> None:
    config = pods.sandbox_config("batch")
    sandbox_id = pods.run(config)
    ip = cri.pod_sandbox_status(sandbox_id).network.ip
    image = containerd_runtime.busybox_image
    ok = cri.create_container(sandbox_id, container_config("ok", image, command=["true"]), config)
    bad = cri.create_container(
        sandbox_id, container_config("bad", image, command=["sh", "-c", "exit 7"]), config
    )
    for container_id in (ok, bad):
        cri.start_container(container_id)
    assert (wait_for("ok", lambda: exited(cri, ok)).reason, cri.container_status(ok).exit_code) == (
        "Completed",
        0,
    )
    bad_status = wait_for("bad", lambda: exited(cri, bad))
    assert (bad_status.reason, bad_status.exit_code) == ("Error", 7)

    cri.remove_container(ok)
    with pytest.raises(CriNotFound):
        cri.container_status(ok)
    cri.stop_pod_sandbox(sandbox_id)
    assert cri.pod_sandbox_status(sandbox_id).state == pb.SANDBOX_NOTREADY
    # Stopping released the IP in host-local's store.
    ipam = containerd_runtime.dir / "cni" / "ipam" / f"tugboat-{containerd_runtime.bridge}"
    assert not (ipam / ip).exists()
    cri.remove_pod_sandbox(sandbox_id)
    assert cri.list_pod_sandbox(id=sandbox_id) == []
    assert cri.list_containers(pod_sandbox_id=sandbox_id) == []
    with pytest.raises(CriNotFound):
        cri.pod_sandbox_status(sandbox_id)
    cri.remove_pod_sandbox(sandbox_id)  # removing again is not an error


async def test_async_client_lifecycle_timings(
    containerd_runtime: ContainerdRuntime, pods: Pods
) -> None:
    """Sequential pod lifecycles through the asyncio client; prints median timings."""
    timings: dict[str, list[float]] = {"run": [], "create": [], "start": [], "teardown": []}
    async with AsyncRuntimeClient(containerd_runtime.endpoint, timeout=30) as client:
        for i in range(5):
            config = pods.sandbox_config(f"timed-{i}")
            t0 = time.perf_counter()
            sandbox_id = pods.track(await client.run_pod_sandbox(config), config)
            t1 = time.perf_counter()
            cfg = container_config(
                "main", containerd_runtime.busybox_image, command=["sleep", "3600"]
            )
            container_id = await client.create_container(sandbox_id, cfg, config)
            t2 = time.perf_counter()
            await client.start_container(container_id)
            t3 = time.perf_counter()
            assert (await client.container_status(container_id)).state == pb.CONTAINER_RUNNING
            t4 = time.perf_counter()
            await client.stop_pod_sandbox(sandbox_id)
            await client.remove_pod_sandbox(sandbox_id)
            t5 = time.perf_counter()
            for key, value in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t5 - t4), strict=True):
                timings[key].append(value)
    medians = {key: statistics.median(values) * 1000 for key, values in timings.items()}
    print("CRI timings (median ms, 5 pods):", {k: round(v) for k, v in medians.items()})
    assert all(value < 10_000 for value in medians.values())
