"""The node agent on a real containerd: pods bound with ``spec.nodeName`` become containers.

API server (session ``api`` fixture) + one :class:`~tests.e2e.kubelet_env.RealNode` per test;
no scheduler. Every assertion is on what the API server reports and what the host sees
(HTTP from the host, /proc, cgroupfs, CRI listings).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kubelet import labels as L
from machinery.client import AsyncClient
from tests.conftest import ApiServerProcess, free_port
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    PODS,
    RealNode,
    container,
    container_id,
    delete_all_pods,
    eventually,
    pod,
    pod_cgroup_dirs,
    running,
    start_node,
    status_of,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client(api: ApiServerProcess) -> AsyncIterator[AsyncClient]:
    c = api.async_client()
    yield c
    await c.aclose()


@pytest.fixture
async def node(
    client: AsyncClient, containerd_runtime: ContainerdRuntime
) -> AsyncIterator[RealNode]:
    n = await start_node(client, containerd_runtime)
    try:
        yield n
    finally:
        if n.agent is None:
            await n.start()
        try:
            await delete_all_pods(client, n.name)
        finally:
            await n.stop()


async def http_text(url: str) -> str | None:
    try:
        async with httpx.AsyncClient(timeout=2) as web:
            r = await web.get(url)
    except httpx.HTTPError:
        return None
    return r.text if r.status_code == 200 else None


def host_pids(cgroup_root: str, uid: str, cid: str) -> list[int]:
    pod_dir = next(d for d in pod_cgroup_dirs(cgroup_root, uid) if d.parts[4] == "pids")
    procs = pod_dir / cid / "cgroup.procs"
    return [int(x) for x in procs.read_text().split()]


async def test_web_pod_gets_ip_answers_from_host_and_own_pid_namespace(
    client: AsyncClient, node: RealNode, containerd_runtime: ContainerdRuntime
) -> None:
    host_port = free_port()
    web = container(
        "web",
        containerd_runtime.web_images[1],
        ports=[{"containerPort": 8080, "hostPort": host_port}],
    )
    await client.create(PODS, pod("web", node.name, [web]), "default")
    p = await eventually("web running", lambda: running(client, "web"))
    ip = p["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(containerd_runtime.pod_cidr)
    assert p["status"]["hostIP"] == "127.0.0.1"
    assert {c["type"]: c["status"] for c in p["status"]["conditions"]}["Ready"] == "True"

    page = await eventually("page on the pod IP", lambda: http_text(f"http://{ip}:8080/"))
    assert "v1" in page and "hostname: web" in page
    mapped = await eventually(
        "page on the hostPort", lambda: http_text(f"http://127.0.0.1:{host_port}/")
    )
    assert "v1" in mapped

    # PID 1 inside is the container's own entrypoint; on the host it has another pid.
    cid = container_id(p)
    result = await node.runtime.exec_sync(cid, ["cat", "/proc/1/cmdline"], timeout=10)
    assert result.stdout.split(b"\0")[:2] == [b"/bin/sh", b"/entrypoint.sh"]
    pids = host_pids(containerd_runtime.cgroup_root, p["metadata"]["uid"], cid)
    nspid_lines = [
        line
        for pid in pids
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("NSpid:")
    ]
    assert any(line.split()[-1] == "1" and len(line.split()) == 3 for line in nspid_lines)


def seccomp_mode(status_text: str) -> str:
    return next(x.split()[1] for x in status_text.splitlines() if x.startswith("Seccomp:"))


async def test_seccomp_containers_confined_pause_only_when_it_shares_their_pids(
    client: AsyncClient, node: RealNode, containerd_runtime: ContainerdRuntime
) -> None:
    """Containers run under RuntimeDefault (mode 2: filter); the pause process is left
    unconfined (0) unless the pod shares its PID namespace with it."""
    box = containerd_runtime.busybox_image
    sleeper = container("main", box, command=["sleep", "3600"])
    await client.create(PODS, pod("own-pids", node.name, [sleeper]), "default")
    shared = pod("shared-pids", node.name, [sleeper])
    shared["spec"]["shareProcessNamespace"] = True
    await client.create(PODS, shared, "default")
    for name, pause_mode in (("own-pids", "0"), ("shared-pids", "2")):
        p = await eventually(f"{name} running", lambda n=name: running(client, n))
        cid = container_id(p)
        own = await node.runtime.exec_sync(cid, ["cat", "/proc/self/status"], timeout=10)
        assert seccomp_mode(own.stdout.decode()) == "2"
        (listed,) = await node.runtime.list_containers(id=cid)
        sandbox = listed.pod_sandbox_id
        pause_pid = json.loads((await node.runtime.pod_sandbox_info(sandbox))["info"])["pid"]
        assert seccomp_mode(Path(f"/proc/{pause_pid}/status").read_text()) == pause_mode


async def test_restart_policy_restart_count_and_last_state(
    client: AsyncClient, node: RealNode, containerd_runtime: ContainerdRuntime
) -> None:
    bb = containerd_runtime.busybox_image
    crash = container("crash", bb, command=["sh", "-c", "echo bye; exit 3"])
    await client.create(PODS, pod("crash", node.name, [crash]), "default")

    async def restarted() -> dict | None:
        s = (await status_of(client, "crash")).get("containerStatuses") or []
        return s[0] if s and s[0]["restartCount"] >= 1 and s[0]["lastState"] else None

    cs = await eventually("a restart", restarted)
    last = cs["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    assert last["finishedAt"] >= last["startedAt"]

    # Back-off after the immediate first restart: CrashLoopBackOff while waiting.
    async def crash_looping() -> dict | None:
        s = (await status_of(client, "crash"))["containerStatuses"][0]
        waiting = s["state"].get("waiting") or {}
        return s if waiting.get("reason") == "CrashLoopBackOff" else None

    looping = await eventually("CrashLoopBackOff", crash_looping)
    assert looping["restartCount"] >= 1

    # OnFailure does not restart a container that exited 0; the pod Succeeds.
    done = container("done", bb, command=["sh", "-c", "exit 0"])
    await client.create(PODS, pod("once", node.name, [done], restartPolicy="OnFailure"), "default")

    async def succeeded() -> dict | None:
        s = await status_of(client, "once")
        return s if s.get("phase") == "Succeeded" else None

    s = await eventually("Succeeded", succeeded)
    term = s["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], s["containerStatuses"][0]["restartCount"]) == (
        0,
        "Completed",
        0,
    )


async def test_memory_limit_oom_killed(
    client: AsyncClient, node: RealNode, containerd_runtime: ContainerdRuntime
) -> None:
    hog = container(
        "hog",
        containerd_runtime.busybox_image,
        command=["tail", "/dev/zero"],  # buffers an endless line
        resources={"limits": {"memory": "32Mi"}},
    )
    await client.create(PODS, pod("hog", node.name, [hog], restartPolicy="Never"), "default")

    async def failed() -> dict | None:
        s = await status_of(client, "hog")
        return s if s.get("phase") == "Failed" else None

    s = await eventually("the OOM kill", failed, timeout=60)
    term = s["containerStatuses"][0]["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)
    assert s["qosClass"] == "Burstable"


async def test_env_and_args_arrive(
    client: AsyncClient, node: RealNode, containerd_runtime: ContainerdRuntime
) -> None:
    shell = container(
        "main",
        containerd_runtime.busybox_image,
        command=["sh", "-c", 'echo "greet=$GREETING pod=$POD_NAME args=$*"; exec sleep 3600'],
        args=["argv0", "one", "$(GREETING)"],
        env=[
            {"name": "GREETING", "value": "hello"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
    )
    await client.create(PODS, pod("envy", node.name, [shell]), "default")
    p = await eventually("envy running", lambda: running(client, "envy"))
    cid = container_id(p)
    result = await node.runtime.exec_sync(cid, ["sh", "-c", "echo $GREETING"], timeout=10)
    assert result.stdout == b"hello\n"

    async def first_line() -> str | None:
        r = await client.request("GET", "/api/v1/namespaces/default/pods/envy/log")
        return r.text or None

    text = await eventually("the log line", first_line)
    assert text == "greet=hello pod=envy args=one hello\n"


async def test_delete_removes_containers_sandbox_and_cgroup(
    client: AsyncClient, node: RealNode, containerd_runtime: ContainerdRuntime
) -> None:
    sleeper = container("main", containerd_runtime.busybox_image, command=["sleep", "3600"])
    await client.create(PODS, pod("doomed", node.name, [sleeper]), "default")
    p = await eventually("doomed running", lambda: running(client, "doomed"))
    uid = p["metadata"]["uid"]
    selector = {L.POD_UID: uid}
    assert len(await node.runtime.list_pod_sandbox(labels=selector)) == 1
    assert pod_cgroup_dirs(containerd_runtime.cgroup_root, uid)

    await client.delete(PODS, "doomed", "default", grace_period_seconds=1)

    async def gone() -> bool:
        try:
            await client.get(PODS, "doomed", "default")
        except Exception:
            return True
        return False

    await eventually("the pod deleted", gone)
    assert await node.runtime.list_pod_sandbox(labels=selector) == []
    assert await node.runtime.list_containers(labels=selector) == []
    assert pod_cgroup_dirs(containerd_runtime.cgroup_root, uid) == []
    log_dir = Path(containerd_runtime.log_root) / f"default_doomed_{uid}"
    assert not log_dir.exists()


async def test_agent_restart_keeps_pod_untouched(
    client: AsyncClient, node: RealNode, containerd_runtime: ContainerdRuntime
) -> None:
    web = container("web", containerd_runtime.web_images[2])
    await client.create(PODS, pod("steady", node.name, [web]), "default")
    before = await eventually("steady running", lambda: running(client, "steady"))
    cid = container_id(before)
    sandboxes = [s.id for s in await node.runtime.list_pod_sandbox(labels={L.NODE: node.name})]

    await node.restart()

    async def observed_again() -> dict | None:
        # The new agent has written a status (resync) or at least seen the pod.
        return await running(client, "steady") if node.agent and node.agent.workers else None

    after = await eventually("the new agent serves the pod", observed_again)
    assert container_id(after) == cid
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    assert [s.id for s in await node.runtime.list_pod_sandbox(labels={L.NODE: node.name})] == (
        sandboxes
    )
    status = await node.runtime.container_status(cid)
    assert status.state == 1  # still CONTAINER_RUNNING, never stopped
    page = await eventually(
        "page after restart", lambda: http_text(f"http://{after['status']['podIP']}:8080/")
    )
    assert "v2" in page
