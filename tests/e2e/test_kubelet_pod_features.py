"""What users expect of a pod, on containerd with the real kubectl: probes, configuration from
ConfigMaps and Secrets, volumes (configMap updates, emptyDir on disk and tmpfs, hostPath,
subPath, readOnly, downward API), a PersistentVolumeClaim whose data outlives its pod and an
administrator's PersistentVolume bound to a claim.

API server (session ``api``) + one node agent per test (events recorded); no scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from controllers.localpath import LocalPathProvisioner
from controllers.storageprotection import StorageProtection
from controllers.volumebinder import VolumeBinder
from machinery.client import AsyncClient
from machinery.controller import run_workers
from machinery.informer import InformerFactory
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    PODS,
    RealNode,
    container,
    container_id,
    delete_all_pods,
    eventually,
    kubectl,
    node_session,
    pod,
    pod_cgroup_dirs,
    require_kubectl,
    running,
    status_of,
)

pytestmark = pytest.mark.e2e
EVENTS = lookup("events")


@pytest.fixture
async def node(
    api: ApiServerProcess, containerd_runtime: ContainerdRuntime, tmp_path: Path
) -> AsyncIterator[tuple[AsyncClient, RealNode]]:
    require_kubectl()
    session = node_session(
        api,
        containerd_runtime,
        "e2e-feat",
        record_events=True,
        resync=2.0,
        root_dir=str(tmp_path / "kl"),
    )
    async with session as pair:
        yield pair


async def run_kubectl(api: ApiServerProcess, *args: str, stdin: str | None = None) -> str:
    out = await asyncio.to_thread(kubectl, api, *args, stdin=stdin)
    assert out.returncode == 0, (args, out.stderr)
    return out.stdout


async def reasons(client: AsyncClient, name: str) -> list[tuple[str, str]]:
    items = (
        await client.list_all(EVENTS, "default", field_selector=f"involvedObject.name={name}")
    )["items"]
    return [(e["reason"], e["message"]) for e in items]


def condition(status: dict, kind: str) -> str | None:
    return next((c["status"] for c in status.get("conditions") or [] if c["type"] == kind), None)


async def test_probes_drive_readiness_and_restart(
    api: ApiServerProcess, node: tuple[AsyncClient, RealNode], containerd_runtime: ContainerdRuntime
) -> None:
    client, n = node
    bb = containerd_runtime.busybox_image
    web = container(
        "web",
        bb,
        command=[
            "sh",
            "-c",
            "sleep 3; mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www",
        ],
        ports=[{"name": "http", "containerPort": 8080}],
        startupProbe={"tcpSocket": {"port": "http"}, "periodSeconds": 1, "failureThreshold": 30},
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    )
    await client.create(PODS, pod("ready", n.name, [web]), "default")
    await eventually("ready running", lambda: running(client, "ready"))
    status = await status_of(client, "ready")
    assert condition(status, "Ready") == "False"  # httpd is not listening yet
    assert status["containerStatuses"][0]["started"] is False

    async def ready() -> dict | None:
        s = await status_of(client, "ready")
        return s if condition(s, "Ready") == "True" else None

    status = await eventually("ready Ready", ready, timeout=60)
    assert condition(status, "ContainersReady") == "True"
    assert status["containerStatuses"][0]["started"] is True
    assert status["containerStatuses"][0]["restartCount"] == 0

    live = container(
        "main",
        bb,
        command=["sh", "-c", "touch /tmp/alive; sleep 2; rm /tmp/alive; exec sleep 3600"],
        livenessProbe={
            "exec": {"command": ["cat", "/tmp/alive"]},
            "periodSeconds": 1,
            "failureThreshold": 2,
        },
    )
    await client.create(PODS, pod("live", n.name, [live]), "default")

    async def restarted() -> bool:
        s = await status_of(client, "live")
        return any(c["restartCount"] >= 1 for c in s.get("containerStatuses") or [])

    await eventually("live restarted", restarted, timeout=40)
    out = await run_kubectl(
        api, "get", "events", "--field-selector", "involvedObject.name=live", "-o", "yaml"
    )
    seen = {(e["reason"], e["message"]) for e in yaml.safe_load(out)["items"]}
    assert ("Killing", "Container main failed liveness probe, will be restarted") in seen
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed: cat:") for r, m in seen), (
        seen
    )


async def test_configuration_from_configmaps_and_secrets(
    api: ApiServerProcess, node: tuple[AsyncClient, RealNode], containerd_runtime: ContainerdRuntime
) -> None:
    client, n = node
    suffix = uuid.uuid4().hex[:6]
    cm, secret = f"app-{suffix}", f"creds-{suffix}"
    await run_kubectl(api, "create", "secret", "generic", secret, "--from-literal=password=s3cret")
    main = container(
        "main",
        containerd_runtime.busybox_image,
        command=["sh", "-c", "echo $(GREETING) from $(POD_NAME); exec sleep 3600"],
        envFrom=[{"configMapRef": {"name": cm}, "prefix": "CFG_"}],
        env=[
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": cm, "key": "mode"}}},
            {
                "name": "PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}},
            },
            {"name": "GREETING", "value": "hello-$(MODE)"},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
        ],
        resources={"limits": {"memory": "48Mi"}},
    )
    await client.create(PODS, pod("cfg", n.name, [main]), "default")

    async def config_error() -> dict | None:
        s = await status_of(client, "cfg")
        waiting = ((s.get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting")
        return waiting if waiting and waiting["reason"] == "CreateContainerConfigError" else None

    waiting = await eventually("config error", config_error)
    assert waiting["message"] == f'configmap "{cm}" not found'
    out = await asyncio.to_thread(kubectl, api, "get", "pod", "cfg")
    assert "CreateContainerConfigError" in out.stdout, out.stderr

    await run_kubectl(api, "create", "configmap", cm, "--from-literal=mode=fast")
    p = await eventually("cfg running", lambda: running(client, "cfg"), timeout=60)
    env = await run_kubectl(api, "exec", "cfg", "--", "env")
    variables = dict(line.split("=", 1) for line in env.splitlines() if "=" in line)
    assert variables["CFG_mode"] == "fast"
    assert variables["MODE"] == "fast"
    assert variables["PASSWORD"] == "s3cret"
    assert variables["POD_NAME"] == "cfg"
    assert variables["POD_IP"] == p["status"]["podIP"]
    assert variables["GREETING"] == "hello-fast"
    assert variables["MEM"] == "48"
    log = await eventually(
        "cfg log", lambda: asyncio.to_thread(lambda: kubectl(api, "logs", "cfg").stdout)
    )
    assert log == "hello-fast from cfg\n"


async def test_volumes(
    api: ApiServerProcess,
    node: tuple[AsyncClient, RealNode],
    containerd_runtime: ContainerdRuntime,
    tmp_path: Path,
) -> None:
    client, n = node
    cm = f"files-{uuid.uuid4().hex[:6]}"
    await run_kubectl(api, "create", "configmap", cm, "--from-literal=greeting=v1")
    host_dir = tmp_path / "host" / "shared"
    bb = containerd_runtime.busybox_image
    writer = container(
        "writer",
        bb,
        command=["sh", "-c", "echo shared > /scratch/note; exec sleep 3600"],
        volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
    )
    reader = container(
        "reader",
        bb,
        command=["sh", "-c", "echo data > /sub/file; exec sleep 3600"],
        volumeMounts=[
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "cfg", "mountPath": "/etc/app"},
            {"name": "ram", "mountPath": "/cache"},
            {"name": "host", "mountPath": "/host"},
            {"name": "host", "mountPath": "/sub", "subPath": "nested"},
            {"name": "host", "mountPath": "/ro", "readOnly": True},
            {"name": "info", "mountPath": "/info"},
        ],
    )
    volumes = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": cm}},
        {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
        {"name": "host", "hostPath": {"path": str(host_dir), "type": "DirectoryOrCreate"}},
        {
            "name": "info",
            "downwardAPI": {
                "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
            },
        },
    ]
    body = pod("vols", n.name, [writer, reader], volumes=volumes)
    body["metadata"]["labels"] = {"app": "vols"}
    await client.create(PODS, body, "default")
    await eventually("vols running", lambda: running(client, "vols"), timeout=60)

    async def sh(script: str, ok: bool = True) -> str:
        out = await asyncio.to_thread(
            kubectl, api, "exec", "vols", "-c", "reader", "--", "sh", "-c", script
        )
        assert (out.returncode == 0) == ok, (script, out.stdout, out.stderr)
        return out.stdout

    async def note() -> str | None:
        return await sh("cat /scratch/note 2>/dev/null || true") or None

    assert await eventually("shared note", note) == "shared\n"
    assert await sh("cat /etc/app/greeting") == "v1"
    assert await sh("cat /info/labels") == 'app="vols"'
    assert "tmpfs" in await sh("grep ' /cache ' /proc/mounts")
    assert (host_dir / "nested" / "file").read_text() == "data\n"
    await sh("echo from-pod > /host/h")
    assert (host_dir / "h").read_text() == "from-pod\n"
    await sh("touch /ro/x", ok=False)
    await sh("touch /etc/app/x", ok=False)

    await run_kubectl(
        api, "patch", "configmap", cm, "--type=merge", "-p", '{"data":{"greeting":"v2"}}'
    )

    async def updated() -> bool:
        return await sh("cat /etc/app/greeting") == "v2"

    await eventually("configMap update reaches the files", updated, timeout=20)


async def test_claim_data_outlives_the_pod(
    api: ApiServerProcess,
    node: tuple[AsyncClient, RealNode],
    containerd_runtime: ContainerdRuntime,
    tmp_path: Path,
) -> None:
    client, n = node
    factory = InformerFactory(client)
    provisioner = LocalPathProvisioner.from_factory(factory, base_dir=str(tmp_path / "pv"))
    await factory.start()
    await factory.wait_synced()
    workers = asyncio.create_task(run_workers(provisioner.queue, provisioner.reconcile, 1))
    claim = f"data-{uuid.uuid4().hex[:6]}"
    try:
        manifest = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            # No scheduler here: the pods name their node, so the claim names it too (the
            # class waits for the first consumer's node, as Kubernetes' local volumes do).
            "metadata": {
                "name": claim,
                "namespace": "default",
                "annotations": {"volume.kubernetes.io/selected-node": n.name},
            },
            "spec": {
                "storageClassName": "local-path",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "100Mi"}},
            },
        }
        await run_kubectl(api, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))

        async def bound() -> bool:
            out = await run_kubectl(api, "get", "pvc", claim, "-o", "jsonpath={.status.phase}")
            return out == "Bound"

        await eventually("claim bound", bound)
        pv = await run_kubectl(api, "get", "pvc", claim, "-o", "jsonpath={.spec.volumeName}")
        affinity = await run_kubectl(
            api, "get", "pv", pv, "-o", "jsonpath={.spec.nodeAffinity.required}"
        )
        assert yaml.safe_load(affinity) == {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [n.name]}
                    ]
                }
            ]
        }
        volume = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
        mount = [{"name": "data", "mountPath": "/var/lib/db"}]
        bb = containerd_runtime.busybox_image
        first = container(
            "db",
            bb,
            command=["sh", "-c", "echo kept > /var/lib/db/row; exec sleep 3600"],
            volumeMounts=mount,
        )
        await client.create(PODS, pod("db1", n.name, [first], volumes=volume), "default")
        await eventually("db1 running", lambda: running(client, "db1"), timeout=60)
        await eventually(
            "row written",
            lambda: asyncio.to_thread(
                lambda: kubectl(api, "exec", "db1", "--", "cat", "/var/lib/db/row").stdout
            ),
        )
        await delete_all_pods(client, n.name)
        second = container("db", bb, command=["sleep", "3600"], volumeMounts=mount)
        await client.create(PODS, pod("db2", n.name, [second], volumes=volume), "default")
        await eventually("db2 running", lambda: running(client, "db2"), timeout=60)
        assert await run_kubectl(api, "exec", "db2", "--", "cat", "/var/lib/db/row") == "kept\n"
    finally:
        workers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await workers
        provisioner.queue.shutdown()
        await factory.stop()


async def test_static_volume_binds_its_claim_and_is_released_after_it(
    api: ApiServerProcess,
    node: tuple[AsyncClient, RealNode],
    containerd_runtime: ContainerdRuntime,
    tmp_path: Path,
) -> None:
    """An administrator's hostPath PersistentVolume, a claim of its class, a pod writing to it:
    the binder pairs them, the data lands in the volume's directory, and once the claim is
    deleted the volume (Retain) is Released with its data kept."""
    client, n = node
    factory = InformerFactory(client)
    binder = VolumeBinder.from_factory(factory)
    protection = StorageProtection.from_factory(factory)  # the claim's finalizer
    await factory.start()
    await factory.wait_synced()
    workers = asyncio.gather(
        run_workers(binder.queue, binder.reconcile, 1),
        run_workers(protection.queue, protection.reconcile, 1),
    )
    suffix = uuid.uuid4().hex[:6]
    volume, claim, data = f"static-{suffix}", f"claim-{suffix}", tmp_path / "static"
    try:
        manifests = [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": volume},
                "spec": {
                    "storageClassName": "manual",
                    "capacity": {"storage": "64Mi"},
                    "accessModes": ["ReadWriteOnce"],
                    "hostPath": {"path": str(data), "type": "DirectoryOrCreate"},
                },
            },
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": "default"},
                "spec": {
                    "storageClassName": "manual",
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "32Mi"}},
                },
            },
        ]
        await run_kubectl(api, "apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))

        async def claim_bound() -> bool:
            out = await run_kubectl(
                api, "get", "pvc", claim, "-o", "jsonpath={.status.phase} {.spec.volumeName}"
            )
            return out == f"Bound {volume}"

        await eventually("claim bound to the static volume", claim_bound)
        row = await run_kubectl(api, "get", "pv", volume, "--no-headers")
        assert row.split()[:6] == [volume, "64Mi", "RWO", "Retain", "Bound", f"default/{claim}"]

        mount = [{"name": "data", "mountPath": "/data"}]
        writer = container(
            "w",
            containerd_runtime.busybox_image,
            command=["sh", "-c", "echo kept > /data/row; exec sleep 3600"],
            volumeMounts=mount,
        )
        volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
        await client.create(PODS, pod("static-w", n.name, [writer], volumes=volumes), "default")
        await eventually("static-w running", lambda: running(client, "static-w"), timeout=60)

        async def row_written() -> bool:
            return (data / "row").exists()

        await eventually("the row in the volume's directory", row_written)
        await delete_all_pods(client, n.name)
        await run_kubectl(api, "delete", "pvc", claim)

        async def released() -> bool:
            phase = await run_kubectl(api, "get", "pv", volume, "-o", "jsonpath={.status.phase}")
            return phase == "Released"

        await eventually("the volume released", released)
        assert (data / "row").read_text() == "kept\n"
        # no longer bound, so its pv-protection finalizer goes and the delete completes
        await run_kubectl(api, "delete", "pv", volume, "--timeout=30s")
    finally:
        workers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await workers
        binder.queue.shutdown()
        protection.queue.shutdown()
        await factory.stop()
        with contextlib.suppress(Exception):
            await run_kubectl(api, "delete", "pv", volume, "--ignore-not-found", "--wait=false")


async def test_logs_previous_after_a_crash_and_rotation(
    api: ApiServerProcess, containerd_runtime: ContainerdRuntime, tmp_path: Path
) -> None:
    require_kubectl()
    session = node_session(
        api,
        containerd_runtime,
        "e2e-logs",
        root_dir=str(tmp_path / "kl"),
        container_log_max_size=4096,
        log_rotate_period=0.3,
    )
    async with session as (client, n):
        script = (
            "n=$(cat /d/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /d/n; "
            "echo run $n; sleep 1; exit 3"
        )
        crash = container(
            "crash",
            containerd_runtime.busybox_image,
            command=["sh", "-c", script],
            volumeMounts=[{"name": "d", "mountPath": "/d"}],
        )
        chatty = container(
            "chatty",
            containerd_runtime.busybox_image,
            command=["sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.01; done"],
        )
        body = pod("crashy", n.name, [crash, chatty], volumes=[{"name": "d", "emptyDir": {}}])
        await client.create(PODS, body, "default")

        async def restarted() -> int:
            s = await status_of(client, "crashy")
            counts = [
                c["restartCount"] for c in s.get("containerStatuses") or [] if c["name"] == "crash"
            ]
            return counts[0] if counts and counts[0] >= 1 else 0

        count = await eventually("crash restarted", restarted, timeout=60)
        previous = await run_kubectl(api, "logs", "crashy", "-c", "crash", "--previous")
        assert previous == f"run {count}\n"

        log_dir = next(containerd_runtime.log_root.glob("default_crashy_*/chatty"))

        async def rotated() -> list[Path]:
            return sorted(log_dir.glob("0.log.*"))

        await eventually("chatty log rotated", rotated, timeout=30)
        last = await run_kubectl(api, "logs", "crashy", "-c", "chatty", "--tail=1")
        assert last.startswith("line ") and int(last.split()[1]) > 50
        assert (log_dir / "0.log").stat().st_size < 64 * 1024


async def test_limit_range_and_quota_admission_with_kubectl(api: ApiServerProcess) -> None:
    require_kubectl()
    ns = f"quota-{uuid.uuid4().hex[:6]}"
    await run_kubectl(api, "create", "namespace", ns)
    objects = [
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "defaults", "namespace": ns},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "500m", "memory": "64Mi"},
                        "defaultRequest": {"cpu": "250m", "memory": "32Mi"},
                        "max": {"memory": "256Mi"},
                    }
                ]
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "compute", "namespace": ns},
            "spec": {"hard": {"requests.cpu": "600m", "pods": "5"}},
        },
    ]
    await run_kubectl(api, "apply", "-f", "-", stdin=yaml.safe_dump_all(objects))

    def manifest(name: str, **resources: dict) -> str:
        c = {"name": "main", "image": "localhost/busybox:1.35", "resources": resources}
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [c]},
        }
        return yaml.safe_dump(body)

    await run_kubectl(api, "apply", "-f", "-", stdin=manifest("q1"))
    out = await run_kubectl(
        api, "get", "pod", "q1", "-n", ns, "-o", "jsonpath={.spec.containers[0].resources}"
    )
    assert yaml.safe_load(out) == {
        "limits": {"cpu": "500m", "memory": "64Mi"},
        "requests": {"cpu": "250m", "memory": "32Mi"},
    }
    big = await asyncio.to_thread(
        kubectl, api, "apply", "-f", "-", stdin=manifest("q2", limits={"memory": "1Gi"})
    )
    assert big.returncode == 1
    assert (
        'pods "q2" is forbidden: maximum memory usage per Container is 256Mi, but limit is 1Gi'
        in big.stderr
    )
    over = await asyncio.to_thread(
        kubectl, api, "apply", "-f", "-", stdin=manifest("q3", requests={"cpu": "400m"})
    )
    assert over.returncode == 1
    assert "Error from server (Forbidden)" in over.stderr
    assert (
        'pods "q3" is forbidden: exceeded quota: compute, requested: requests.cpu=400m, '
        "used: requests.cpu=250m, limited: requests.cpu=600m"
    ) in over.stderr
    await run_kubectl(api, "delete", "pod", "q1", "-n", ns, "--wait=false")


def _cgroup_file(controller: str, path: str, name: str) -> str:
    return (Path("/sys/fs/cgroup") / controller / path.strip("/") / name).read_text().strip()


async def test_qos_classes_get_pod_cgroups_with_pod_limits(
    node: tuple[AsyncClient, RealNode], containerd_runtime: ContainerdRuntime
) -> None:
    client, n = node
    root = containerd_runtime.cgroup_root.strip("/")
    bb = containerd_runtime.busybox_image
    sleep = ["sleep", "3600"]
    guaranteed = [
        container("a", bb, command=sleep, resources={"limits": {"cpu": "500m", "memory": "64Mi"}}),
        container("b", bb, command=sleep, resources={"limits": {"cpu": "250m", "memory": "32Mi"}}),
    ]
    burstable = [
        container(
            "a",
            bb,
            command=sleep,
            resources={"requests": {"cpu": "100m"}, "limits": {"memory": "48Mi"}},
        )
    ]
    for name, containers in (
        ("gu", guaranteed),
        ("bu", burstable),
        ("be", [container("a", bb, command=sleep)]),
    ):
        await client.create(PODS, pod(name, n.name, containers), "default")
    pods = {
        name: await eventually(f"{name} running", lambda name=name: running(client, name))
        for name in ("gu", "bu", "be")
    }
    uids = {name: p["metadata"]["uid"] for name, p in pods.items()}
    assert {name: p["status"]["qosClass"] for name, p in pods.items()} == {
        "gu": "Guaranteed",
        "bu": "Burstable",
        "be": "BestEffort",
    }

    gu = f"{root}/kubepods/pod{uids['gu']}"
    assert _cgroup_file("cpu", gu, "cpu.shares") == str(750 * 1024 // 1000)
    assert _cgroup_file("cpu", gu, "cpu.cfs_quota_us") == "75000"
    assert _cgroup_file("cpu", gu, "cpu.cfs_period_us") == "100000"
    assert _cgroup_file("memory", gu, "memory.limit_in_bytes") == str(96 << 20)

    bu = f"{root}/kubepods/burstable/pod{uids['bu']}"
    assert _cgroup_file("cpu", bu, "cpu.shares") == "102"
    assert _cgroup_file("cpu", bu, "cpu.cfs_quota_us") == "-1"  # not every container limits cpu
    assert _cgroup_file("memory", bu, "memory.limit_in_bytes") == str(48 << 20)

    be = f"{root}/kubepods/besteffort/pod{uids['be']}"
    assert _cgroup_file("cpu", be, "cpu.shares") == "2"
    assert _cgroup_file("cpu", f"{root}/kubepods/besteffort", "cpu.shares") == "2"
    assert _cgroup_file("cpu", f"{root}/kubepods/burstable", "cpu.shares") == "102"

    # each container's cgroup sits inside its pod's, in every hierarchy
    for name, path in (("gu", gu), ("bu", bu), ("be", be)):
        cid = container_id(pods[name])
        result = await n.runtime.exec_sync(cid, ["cat", "/proc/self/cgroup"], timeout=10)  # type: ignore[union-attr]
        lines = result.stdout.decode().splitlines()
        by_controller = {line.split(":")[1]: line.split(":", 2)[2] for line in lines}
        for controller in ("cpu", "memory", "pids"):
            assert by_controller[controller] == f"/{path}/{cid}", (name, controller, lines)
    first = f"{gu}/{container_id(pods['gu'])}"  # container "a": its own limits, inside the pod's
    assert _cgroup_file("memory", first, "memory.limit_in_bytes") == str(64 << 20)
    assert _cgroup_file("cpu", first, "cpu.cfs_quota_us") == "50000"
    assert _cgroup_file("cpu", first, "cpu.shares") == "512"

    for name in ("gu", "bu", "be"):
        await client.delete(PODS, name, "default", grace_period_seconds=1)

    async def cgroups_gone() -> bool:
        return not any(pod_cgroup_dirs(containerd_runtime.cgroup_root, u) for u in uids.values())

    await eventually("pod cgroups removed", cgroups_gone, timeout=60)

    async def burstable_idle() -> bool:
        return _cgroup_file("cpu", f"{root}/kubepods/burstable", "cpu.shares") == "2"

    await eventually("the Burstable class back to the minimum shares", burstable_idle)


async def test_emptydir_over_its_size_limit_evicts_the_pod(
    api: ApiServerProcess, containerd_runtime: ContainerdRuntime, tmp_path: Path
) -> None:
    session = node_session(
        api,
        containerd_runtime,
        "e2e-evict",
        record_events=True,
        root_dir=str(tmp_path / "kl"),
        eviction_period=0.5,
    )
    async with session as (client, n):
        bb = containerd_runtime.busybox_image
        hog = container(
            "hog",
            bb,
            command=[
                "sh",
                "-c",
                "sleep 1; head -c 3145728 /dev/urandom > /scratch/blob; sleep 3600",
            ],
            volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
        )
        volumes = [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]
        await client.create(PODS, pod("hog", n.name, [hog], volumes=volumes), "default")

        async def evicted() -> dict | None:
            status = await status_of(client, "hog")
            return status if status.get("phase") == "Failed" else None

        status = await eventually("hog evicted", evicted, timeout=60)
        message = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
        assert (status["reason"], status["message"]) == ("Evicted", message)
        assert "terminated" in status["containerStatuses"][0]["state"]

        async def event() -> bool:
            return ("Evicted", message) in await reasons(client, "hog")

        await eventually("the Evicted event", event, timeout=20)
        described = await run_kubectl(api, "describe", "pod", "hog")
        lines = [line.split() for line in described.splitlines()]
        assert ["Reason:", "Evicted"] in lines
        assert ["Message:", *message.split()] in lines


async def test_secret_volumes_live_on_tmpfs(
    api: ApiServerProcess,
    node: tuple[AsyncClient, RealNode],
    containerd_runtime: ContainerdRuntime,
) -> None:
    client, n = node
    secret = f"creds-{uuid.uuid4().hex[:6]}"
    await run_kubectl(api, "create", "secret", "generic", secret, "--from-literal=password=one")
    reader = container(
        "main",
        containerd_runtime.busybox_image,
        command=["sleep", "3600"],
        volumeMounts=[
            {"name": "creds", "mountPath": "/etc/creds"},
            {"name": "mixed", "mountPath": "/etc/mixed"},
        ],
    )
    volumes = [
        {"name": "creds", "secret": {"secretName": secret}},
        {"name": "mixed", "projected": {"sources": [{"secret": {"name": secret}}]}},
    ]
    await client.create(PODS, pod("secrets", n.name, [reader], volumes=volumes), "default")
    p = await eventually("secrets running", lambda: running(client, "secrets"), timeout=60)

    async def sh(script: str) -> str:
        return await run_kubectl(api, "exec", "secrets", "--", "sh", "-c", script)

    mounts = await sh("cat /proc/mounts")
    for target in ("/etc/creds", "/etc/mixed"):
        fstype = next(line.split()[2] for line in mounts.splitlines() if line.split()[1] == target)
        assert fstype == "tmpfs", (target, mounts)
    pod_dir = Path(n.config.root_dir) / "pods" / p["metadata"]["uid"] / "volumes"
    host = {
        line.split()[1]: line.split()[2] for line in Path("/proc/mounts").read_text().splitlines()
    }
    assert host[str(pod_dir / "kubernetes.io~secret" / "creds")] == "tmpfs"
    assert host[str(pod_dir / "kubernetes.io~projected" / "mixed")] == "tmpfs"
    assert await sh("cat /etc/creds/password /etc/mixed/password") == "oneone"
    before = await sh("readlink /etc/creds/..data")

    await run_kubectl(
        api, "patch", "secret", secret, "--type=merge", "-p", '{"stringData":{"password":"two"}}'
    )

    async def updated() -> bool:
        return await sh("cat /etc/creds/password /etc/mixed/password") == "twotwo"

    await eventually("the secret update reaches both volumes", updated, timeout=20)
    assert await sh("readlink /etc/creds/..data") != before
    assert await sh("readlink /etc/creds/password") == "..data/password\n"

    await client.delete(PODS, "secrets", "default", grace_period_seconds=1)

    async def unmounted() -> bool:
        return str(pod_dir) not in Path("/proc/mounts").read_text()

    await eventually("the tmpfs volumes unmounted", unmounted, timeout=30)
