"""Two node agents on two containerd instances, the controller-manager and the scheduler (as
processes, with shortened node-lifecycle timers): a stopped node agent makes its node NotReady
and the Deployment's pods there are recreated on the other node; a claim of the local-path
class is provisioned on the node the scheduler picks for its first pod, and its later pods
follow the data there; a pod whose claim needs a static local volume goes to that volume's
node."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from kubelet import labels as L
from machinery.client import AsyncClient
from machinery.kinds import lookup
from machinery.volumes import CLASSES, HOSTNAME_LABEL, NO_PROVISIONER, PVCS, PVS
from tests.conftest import ApiServerProcess
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    NODES,
    PODS,
    RealNode,
    agent_config,
    container_id,
    delete_all_pods,
    eventually,
    extra_containerd,
    running,
)

pytestmark = pytest.mark.e2e
DEPLOYMENTS, EVENTS = lookup("deployments"), lookup("events")
SECOND_BRIDGE = os.environ.get("TUG_E2E_BRIDGE2", "tugb1")
SECOND_CIDR = os.environ.get("TUG_E2E_POD_CIDR2", "10.244.251.0/24")


@pytest.fixture(scope="module")
def second_runtime(
    containerd_runtime: ContainerdRuntime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ContainerdRuntime]:
    """Another containerd (own bridge and pod CIDR) with the same images."""
    with extra_containerd(
        tmp_path_factory.mktemp("containerd2"),
        SECOND_BRIDGE,
        SECOND_CIDR,
        containerd_runtime.cgroup_root + "-b",
        sorted((containerd_runtime.dir / "images").glob("*.tar")),
    ) as runtime:
        yield runtime


def spawn(module: str, *args: str, log: Path) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=out,
        stderr=out,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture
def control_plane(fresh_api: ApiServerProcess, tmp_path: Path) -> Iterator[ApiServerProcess]:
    """controller-manager (node grace 3 s) and scheduler against ``fresh_api``."""
    procs = [
        spawn(
            "controllers",
            "--server",
            fresh_api.url,
            "--no-leader-elect",
            "--port",
            "0",
            "--node-monitor-grace-period",
            "3",
            "--node-monitor-period",
            "0.5",
            "--local-path-dir",
            str(tmp_path / "local-path"),
            log=tmp_path / "controller-manager.log",
        ),
        spawn("scheduler", "--server", fresh_api.url, log=tmp_path / "scheduler.log"),
    ]
    try:
        yield fresh_api
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
async def nodes(
    control_plane: ApiServerProcess,
    containerd_runtime: ContainerdRuntime,
    second_runtime: ContainerdRuntime,
) -> AsyncIterator[tuple[AsyncClient, list[RealNode]]]:
    client = control_plane.async_client()
    started: list[RealNode] = []
    for name, rt in (("fo-a", containerd_runtime), ("fo-b", second_runtime)):
        config = agent_config(rt, name, lease_period=0.5)
        started.append(await RealNode(client, rt.endpoint, config).start())
    try:
        yield client, started
    finally:
        try:
            with_suppressed = []
            try:
                await client.delete(DEPLOYMENTS, "web", "default")
            except Exception as err:  # the test may have failed before creating it
                with_suppressed.append(err)
            for n in started:
                if n.agent is None:
                    await n.start()  # back, it finishes the evicted pods' deletion
            for n in started:
                await delete_all_pods(client, n.name, timeout=90)
        finally:
            for n in started:
                await n.stop()
            await client.aclose()


def deployment(replicas: int) -> dict:
    toleration = {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "tolerations": [
                toleration | {"key": "node.kubernetes.io/unreachable"},
                toleration | {"key": "node.kubernetes.io/not-ready"},
            ],
            "containers": [
                {
                    "name": "web",
                    "image": "tugboat/web:1",
                    "ports": [{"containerPort": 8080}],
                }
            ],
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template,
        },
    }


async def live_pods(client: AsyncClient) -> list[dict]:
    items = (await client.list(PODS, "default", label_selector="app=web"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def page(ip: str) -> str | None:
    try:
        async with httpx.AsyncClient(timeout=2) as web:
            r = await web.get(f"http://{ip}:8080/")
            return r.text if r.status_code == 200 else None
    except httpx.HTTPError:
        return None


async def test_stopped_node_agent_pods_recreated_on_the_other_node(
    nodes: tuple[AsyncClient, list[RealNode]], second_runtime: ContainerdRuntime
) -> None:
    client, (a, b) = nodes

    async def both_ready() -> bool:
        items = (await client.list(NODES))["items"]
        ready = {
            n["metadata"]["name"]
            for n in items
            if any(
                c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]
            )
        }
        return {a.name, b.name} <= ready

    await eventually("both nodes Ready", both_ready)
    await client.create(DEPLOYMENTS, deployment(4), "default")

    async def all_running() -> list[dict] | None:
        pods = await live_pods(client)
        ok = len(pods) == 4 and all(p["status"].get("phase") == "Running" for p in pods)
        return pods if ok else None

    pods = await eventually("4 pods running", all_running, timeout=60)
    on_node = {p["spec"]["nodeName"] for p in pods}
    victim, survivor = (a, b) if a.name in on_node else (b, a)
    doomed = {p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == victim.name}
    doomed_uids = {p["metadata"]["uid"] for p in pods if p["spec"]["nodeName"] == victim.name}
    assert doomed

    await victim.stop()  # no more heartbeats; its containers keep running

    async def not_ready() -> dict | None:
        n = await client.get(NODES, victim.name)
        ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
        return n if ready["status"] == "Unknown" and n["spec"].get("taints") else None

    n = await eventually("victim NotReady", not_ready, timeout=30)
    taints = {(t["key"], t["effect"]) for t in n["spec"].get("taints") or []}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in taints

    async def moved() -> list[dict] | None:
        pods = await live_pods(client)
        ok = (
            len(pods) == 4
            and all(p["spec"].get("nodeName") == survivor.name for p in pods)
            and all(p["status"].get("phase") == "Running" for p in pods)
        )
        return pods if ok else None

    pods = await eventually("pods recreated on the survivor", moved, timeout=90)
    assert not doomed & {p["metadata"]["name"] for p in pods}
    survivor_cidr = second_runtime.pod_cidr if survivor is b else None
    for p in pods:
        if survivor_cidr:
            assert p["status"]["podIP"].startswith(survivor_cidr.rsplit(".", 1)[0] + ".")
        text = await eventually("page", lambda p=p: page(p["status"]["podIP"]))
        assert "v1" in text

    # the victim comes back: it removes what it still runs of the pods that moved away and
    # finishes their deletion
    await victim.start()

    async def victim_cleaned_up() -> bool:
        assert victim.runtime is not None
        mine = {L.NODE: victim.name}
        uids = {s.labels.get(L.POD_UID) for s in await victim.runtime.list_pod_sandbox(labels=mine)}
        uids |= {c.labels.get(L.POD_UID) for c in await victim.runtime.list_containers(labels=mine)}
        left = (await client.list(PODS, "default", label_selector="app=web"))["items"]
        return not uids & doomed_uids and not doomed & {p["metadata"]["name"] for p in left}

    await eventually("the returning node to remove the moved pods", victim_cleaned_up, timeout=60)


def claim_pod(name: str, claim: str, command: str, **spec: object) -> dict:
    """A pod without a node that mounts ``claim`` at /data and runs ``command``."""
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "db",
                    "image": "busybox:1.35",
                    "command": ["sh", "-c", command],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
            **spec,
        },
    }


def on_host(node: str) -> dict:
    """The node selector term for the node named ``node``."""
    return {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}


def prefer(node: str) -> dict:
    """Node affinity that prefers ``node`` as strongly as a pod can without requiring it."""
    term = {"weight": 100, "preference": on_host(node)}
    return {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [term]}}


def require(node: str) -> dict:
    """Node affinity that allows ``node`` only."""
    terms = {"nodeSelectorTerms": [on_host(node)]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}}


async def test_claim_is_provisioned_where_its_first_pod_is_scheduled_and_keeps_its_pods_there(
    nodes: tuple[AsyncClient, list[RealNode]], tmp_path: Path
) -> None:
    client, (a, b) = nodes
    names = {a.name, b.name}
    await client.create(
        PVCS,
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "64Mi"}},
            },
        },
        "default",
    )

    async def waiting() -> bool:
        items = (await client.list(EVENTS, "default"))["items"]
        return any(
            e["involvedObject"]["name"] == "data" and e["reason"] == "WaitForFirstConsumer"
            for e in items
        )

    await eventually("the claim to wait for its first consumer", waiting)
    claim = await client.get(PVCS, "data", "default")
    assert claim["spec"]["storageClassName"] == "local-path"
    assert claim["status"]["phase"] == "Pending"

    write = "echo kept > /data/row && exec sleep 3600"
    await client.create(PODS, claim_pod("db1", "data", write), "default")
    first = await eventually("db1 running", lambda: running(client, "db1"), timeout=60)
    home = first["spec"]["nodeName"]
    assert home in names
    claim = await client.get(PVCS, "data", "default")
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == home
    assert claim["status"]["phase"] == "Bound"
    volume = await client.get(PVS, claim["spec"]["volumeName"])
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [on_host(home)]
    data_dir = Path(volume["spec"]["hostPath"]["path"])
    assert data_dir.parent == tmp_path / "local-path"

    async def row_written() -> bool:
        return (data_dir / "row").exists()

    await eventually("db1 to write its row", row_written)
    await client.delete(PODS, "db1", "default", grace_period_seconds=1)

    async def gone() -> bool:
        return not (await client.list(PODS, "default"))["items"]

    await eventually("db1 gone", gone)

    # The next pod prefers the other node; the data pins it to the claim's node.
    (other,) = names - {home}
    read = "cat /data/row && exec sleep 3600"
    await client.create(PODS, claim_pod("db2", "data", read, affinity=prefer(other)), "default")
    second = await eventually("db2 running", lambda: running(client, "db2"), timeout=60)
    assert second["spec"]["nodeName"] == home
    node = a if home == a.name else b
    assert node.runtime is not None
    res = await node.runtime.exec_sync(container_id(second), ["cat", "/data/row"], timeout=10)
    assert (res.exit_code, res.stdout) == (0, b"kept\n")

    # A pod that can only run on the other node cannot have the claim: it stays Pending.
    await client.create(PODS, claim_pod("db3", "data", read, affinity=require(other)), "default")

    async def refused() -> str | None:
        items = (await client.list(EVENTS, "default"))["items"]
        return next(
            (
                e["message"]
                for e in items
                if e["involvedObject"]["name"] == "db3" and e["reason"] == "FailedScheduling"
            ),
            None,
        )

    message = await eventually("db3 refused by the scheduler", refused)
    assert "volume node affinity conflict" in message
    assert not (await client.get(PODS, "db3", "default"))["spec"].get("nodeName")


async def test_pod_goes_to_the_node_of_an_available_local_volume(
    nodes: tuple[AsyncClient, list[RealNode]], tmp_path: Path
) -> None:
    """A class of static volumes (no provisioner, WaitForFirstConsumer), a volume an
    administrator made on one node, a claim and a pod: the scheduler puts the pod where the
    volume is, the binder binds the claim to it, and the pod writes into its directory."""
    client, (a, b) = nodes
    disk = tmp_path / "disk-b"
    await client.create(
        CLASSES,
        {
            "metadata": {"name": "local-disks"},
            "provisioner": NO_PROVISIONER,
            "volumeBindingMode": "WaitForFirstConsumer",
        },
    )
    await client.create(
        PVS,
        {
            "metadata": {"name": "disk-b"},
            "spec": {
                "storageClassName": "local-disks",
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": str(disk), "type": "DirectoryOrCreate"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [on_host(b.name)]}},
            },
        },
    )
    await client.create(
        PVCS,
        {
            "metadata": {"name": "local"},
            "spec": {
                "storageClassName": "local-disks",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "512Mi"}},
            },
        },
        "default",
    )
    write = "echo here > /data/row && exec sleep 3600"
    # it prefers the other node: only the volume takes it to b
    pod = claim_pod("db", "local", write, affinity=prefer(a.name))
    await client.create(PODS, pod, "default")
    placed = await eventually("db running", lambda: running(client, "db"), timeout=60)
    assert placed["spec"]["nodeName"] == b.name
    claim = await client.get(PVCS, "local", "default")
    assert (claim["status"]["phase"], claim["spec"]["volumeName"]) == ("Bound", "disk-b")

    async def row_written() -> bool:
        return (disk / "row").exists()

    await eventually("the row on the volume", row_written)
