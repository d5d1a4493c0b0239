"""What a user sees of a pod on containerd, with the real kubectl: the events of a pod's life
(and a crash loop aggregated, not flooding), the options of ``kubectl logs``, a volume whose
ConfigMap is missing (``FailedMount``, then running once it exists) and a claim whose volume is
pinned to another node (``FailedMount``, nothing started).

API server (session ``api``) + one node agent per test (events recorded); no scheduler.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import pytest
import yaml

from machinery.client import AsyncClient
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    PODS,
    RealNode,
    container,
    eventually,
    pod,
    running,
    status_of,
)
from tests.e2e.test_kubelet_pod_features import kubectl, node, run_kubectl

pytestmark = pytest.mark.e2e
__all__ = ["node"]  # the fixture, shared with test_kubelet_pod_features
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")


async def events_of(api: ApiServerProcess, name: str) -> list[dict]:
    out = await run_kubectl(
        api, "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "yaml"
    )
    return yaml.safe_load(out)["items"]


async def create_mounting_pod(
    client: AsyncClient, node: str, image: str, name: str, volume: dict, path: str
) -> None:
    """Pod ``name`` on ``node``: one sleeping container that mounts ``volume`` at ``path``."""
    main = container(
        "main",
        image,
        command=["sleep", "3600"],
        volumeMounts=[{"name": volume["name"], "mountPath": path}],
    )
    await client.create(PODS, pod(name, node, [main], volumes=[volume]), "default")


async def failed_mount(api: ApiServerProcess, name: str) -> dict:
    """The one FailedMount event of pod ``name``, once it is there."""

    async def found() -> list[dict] | None:
        return [e for e in await events_of(api, name) if e["reason"] == "FailedMount"] or None

    (event,) = await eventually("FailedMount", found)
    return event


async def test_events_of_a_pod_and_an_aggregated_crash_loop(
    api: ApiServerProcess, node: tuple[AsyncClient, RealNode], containerd_runtime: ContainerdRuntime
) -> None:
    client, n = node
    bb = containerd_runtime.busybox_image
    await client.create(
        PODS, pod("life", n.name, [container("main", bb, command=["sleep", "3600"])]), "default"
    )
    loop = container("main", bb, command=["sh", "-c", "echo crashing; exit 1"])
    await client.create(PODS, pod("loop", n.name, [loop]), "default")
    await eventually("life running", lambda: running(client, "life"), timeout=60)

    async def seen(name: str, *wanted: tuple[str, str]) -> set[tuple[str, str]] | None:
        got = {(e["reason"], e["message"]) for e in await events_of(api, name)}
        return got if set(wanted) <= got else None

    await eventually(
        "life's events",
        lambda: seen(
            "life",
            ("Pulled", f'Container image "{bb}" already present on machine'),
            ("Created", "Created container main"),
            ("Started", "Started container main"),
        ),
    )
    await client.delete(PODS, "life", "default", grace_period_seconds=1)
    await eventually("Killing", lambda: seen("life", ("Killing", "Stopping container main")))
    described = kubectl(api, "get", "events", "--field-selector", "involvedObject.name=life")
    assert "Killing" in described.stdout and "Started" in described.stdout, described.stderr

    async def restarted_twice() -> bool:
        statuses = (await status_of(client, "loop")).get("containerStatuses") or [{}]
        return statuses[0].get("restartCount", 0) >= 2

    await eventually("loop restarted twice", restarted_twice, timeout=90)

    async def aggregated() -> dict[str, list[dict]] | None:
        by_reason: dict[str, list[dict]] = {}
        for e in await events_of(api, "loop"):
            by_reason.setdefault(e["reason"], []).append(e)
        backoff = by_reason.get("BackOff") or []
        if not backoff or backoff[0]["count"] < 2:
            return None
        return by_reason

    by_reason = await eventually("BackOff repeated", aggregated, timeout=60)
    # One Event per (reason, message), its count growing: no new object per restart.
    assert len(by_reason["BackOff"]) == 1
    backoff = by_reason["BackOff"][0]
    assert backoff["type"] == "Warning"
    assert backoff["message"].startswith("Back-off restarting failed container main in pod loop_")
    assert backoff["lastTimestamp"] >= backoff["firstTimestamp"]
    assert len(by_reason["Started"]) == 1 and by_reason["Started"][0]["count"] >= 3
    assert len(by_reason["Created"]) == 1 and by_reason["Created"][0]["count"] >= 3
    status = await status_of(client, "loop")
    waiting = status["containerStatuses"][0]["state"].get("waiting") or {}
    terminated = status["containerStatuses"][0]["lastState"]["terminated"]
    assert terminated["exitCode"] == 1
    assert waiting.get("reason") in (None, "CrashLoopBackOff")


async def test_kubectl_logs_options(
    api: ApiServerProcess, node: tuple[AsyncClient, RealNode], containerd_runtime: ContainerdRuntime
) -> None:
    client, n = node
    script = "echo one; echo two; echo three; sleep 8; echo four; exec sleep 3600"
    main = container("main", containerd_runtime.busybox_image, command=["sh", "-c", script])
    await client.create(PODS, pod("logs", n.name, [main]), "default")
    await eventually("logs running", lambda: running(client, "logs"), timeout=60)

    async def logs(*flags: str) -> str:
        return await run_kubectl(api, "logs", "logs", *flags)

    async def four() -> str | None:
        out = await logs("--timestamps")
        return out if out.endswith(" four\n") else None

    # The first line after "four" appeared: "four" is < 5 s old, "three" >= 8 s older.
    stamped = await eventually("four logged", four, timeout=60)
    assert await logs("--since=5s") == "four\n"
    assert await logs("--since=1h") == "one\ntwo\nthree\nfour\n"

    lines = stamped.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two", "three", "four"]
    assert all(TIMESTAMP.match(line.split(" ", 1)[0]) for line in lines), lines
    since_four = lines[3].split(" ", 1)[0].split(".")[0] + "Z"  # whole seconds, as sinceTime
    assert await logs(f"--since-time={since_four}") == "four\n"

    assert await logs("--tail=2") == "three\nfour\n"
    assert await logs("--limit-bytes=6") == "one\ntw"
    assert await logs("--tail=1", "--timestamps") == lines[3] + "\n"


async def test_volume_of_a_missing_configmap_waits_then_starts(
    api: ApiServerProcess, node: tuple[AsyncClient, RealNode], containerd_runtime: ContainerdRuntime
) -> None:
    client, n = node
    cm = f"later-{uuid.uuid4().hex[:6]}"
    volume = {"name": "cfg", "configMap": {"name": cm}}
    image = containerd_runtime.busybox_image
    await create_mounting_pod(client, n.name, image, "mount", volume, "/etc/app")
    event = await failed_mount(api, "mount")
    assert event["type"] == "Warning"
    assert event["message"] == (
        f'MountVolume.SetUp failed for volume "cfg" : configmap "{cm}" not found'
    )
    status = await status_of(client, "mount")
    assert status["phase"] == "Pending"
    waiting = status["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating"
    listed = await asyncio.to_thread(kubectl, api, "get", "pod", "mount")
    assert "ContainerCreating" in listed.stdout, listed.stderr

    await run_kubectl(api, "create", "configmap", cm, "--from-literal=mode=fast")
    await eventually("mount running", lambda: running(client, "mount"), timeout=60)
    assert await run_kubectl(api, "exec", "mount", "--", "cat", "/etc/app/mode") == "fast"


async def test_claim_pinned_to_another_node_is_refused(
    api: ApiServerProcess,
    node: tuple[AsyncClient, RealNode],
    containerd_runtime: ContainerdRuntime,
    tmp_path: Path,
) -> None:
    """A pod bound here directly (no scheduler) whose claim's volume is pinned to another
    node: the node agent refuses to mount it, as the kubelet does, and starts nothing."""
    client, n = node
    name = f"pinned-{uuid.uuid4().hex[:6]}"
    elsewhere = {"key": "kubernetes.io/hostname", "operator": "In", "values": ["other-node"]}
    await client.create(
        lookup("persistentvolumes"),
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": str(tmp_path / "data")},
                "claimRef": {"namespace": "default", "name": name},
                "nodeAffinity": {
                    "required": {"nodeSelectorTerms": [{"matchExpressions": [elsewhere]}]}
                },
            },
        },
    )
    claims = lookup("persistentvolumeclaims")
    await client.create(
        claims,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": name,
            },
        },
        "default",
    )
    await client.patch(
        claims, name, {"status": {"phase": "Bound"}}, "default", subresource="status"
    )
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": name}}
    image = containerd_runtime.busybox_image
    await create_mounting_pod(client, n.name, image, "pinned", volume, "/data")
    event = await failed_mount(api, "pinned")
    assert (event["type"], event["message"]) == (
        "Warning",
        f'MountVolume.NodeAffinity check failed for volume "{name}" : '
        "no matching NodeSelectorTerms",
    )
    status = await status_of(client, "pinned")
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    uid = (await client.get(PODS, "pinned", "default"))["metadata"]["uid"]
    assert await n.runtime.list_pod_sandbox(labels={"io.kubernetes.pod.uid": uid}) == []
    assert not (tmp_path / "data").exists()
