"""Pod volumes on a temporary root: atomic payloads, hostPath checks, subPath mounts, claims,
tmpfs through a fake mounter; and the pod worker waiting on a missing ConfigMap volume."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from kubelet.cri import api_pb2 as pb
from kubelet.env import Sources
from kubelet.podworker import PodWorker
from kubelet.volumes import (
    DATA,
    Claim,
    HostVolume,
    PodVolumes,
    VolumeError,
    check_host_path,
    container_mounts,
    write_atomic,
)
from machinery.kinds import lookup
from tests.unit.test_kubelet_worker import NODE, Env, env, settle, sleeper  # noqa: F401


class FakeMounter:
    def __init__(self) -> None:
        self.mounted: dict[str, int | None] = {}
        self.modes: dict[str, int] = {}

    def mount_tmpfs(self, path: str, size: int | None, mode: int = 0o777) -> None:
        self.mounted[path] = size
        self.modes[path] = mode

    def is_mounted(self, path: str) -> bool:
        return path in self.mounted

    def unmount(self, path: str) -> None:
        self.mounted.pop(path)


def _files(target: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in target.iterdir() if not p.name.startswith("..")}


def test_write_atomic_swaps_data_and_prunes(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    first = os.readlink(target / DATA)
    assert (target / "a").read_bytes() == b"1" and (target / "dir" / "b").read_bytes() == b"2"
    assert os.readlink(target / "a") == f"{DATA}/a"
    assert stat.S_IMODE((target / "dir" / "b").stat().st_mode) == 0o600
    assert not write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert os.readlink(target / DATA) == first

    assert write_atomic(target, {"a": (b"changed", 0o644)})
    assert os.readlink(target / DATA) != first
    assert _files(target) == {"a": b"changed"}
    assert not (target / first).exists()  # the old payload is gone
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [DATA, "a", os.readlink(target / DATA)]
    )


@pytest.mark.parametrize(
    ("kind", "make", "error"),
    [
        ("Directory", "dir", None),
        ("Directory", "file", "is not a directory"),
        ("Directory", None, "is not a directory"),
        ("File", "file", None),
        ("File", "dir", "is not a file"),
        ("Socket", "socket", None),
        ("Socket", "file", "is not a socket file"),
        ("CharDevice", "file", "is not a character device"),
        ("BlockDevice", "file", "is not a block device"),
        ("", None, None),
    ],
    ids=lambda x: str(x),
)
def test_host_path_type_checks(tmp_path: Path, kind: str, make: str | None, error: str) -> None:
    path = tmp_path / "thing"
    if make == "dir":
        path.mkdir()
    elif make == "file":
        path.write_text("x")
    elif make == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    if error is None:
        check_host_path("v", str(path), kind)
        return
    with pytest.raises(VolumeError) as err:
        check_host_path("v", str(path), kind)
    assert str(err.value) == (
        f'MountVolume.SetUp failed for volume "v" : hostPath type check failed: {path} {error}'
    )


def test_host_path_or_create(tmp_path: Path) -> None:
    check_host_path("v", str(tmp_path / "d" / "e"), "DirectoryOrCreate")
    assert (tmp_path / "d" / "e").is_dir()
    check_host_path("v", str(tmp_path / "f"), "FileOrCreate")
    assert (tmp_path / "f").is_file()


POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"a": "b"}},
    "spec": {
        "containers": [{"name": "c", "resources": {"limits": {"memory": "32Mi"}}}],
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
            {
                "name": "cfg",
                "configMap": {
                    "name": "cm",
                    "items": [{"key": "k1", "path": "conf/one.txt", "mode": 0o400}],
                },
            },
            {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o440}},
            {
                "name": "info",
                "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {
                            "path": "mem",
                            "resourceFieldRef": {
                                "containerName": "c",
                                "resource": "limits.memory",
                                "divisor": "1Mi",
                            },
                        },
                    ]
                },
            },
            {
                "name": "all",
                "projected": {
                    "sources": [
                        {"configMap": {"name": "cm"}},
                        {"secret": {"name": "s", "items": [{"key": "token", "path": "t"}]}},
                        {"configMap": {"name": "absent", "optional": True}},
                    ]
                },
            },
        ],
    },
}
SOURCES = Sources(
    configmaps={"cm": {"k1": b"one", "k2": b"two"}, "absent": None},
    secrets={"s": {"token": b"xyz"}},
)


def test_setup_every_kind_then_teardown(tmp_path: Path) -> None:
    mounter = FakeMounter()
    volumes = PodVolumes(str(tmp_path), "u1", mounter)
    paths = volumes.setup(POD, SOURCES, {})
    base = tmp_path / "pods" / "u1" / "volumes"
    assert paths["scratch"] == HostVolume(str(base / "kubernetes.io~empty-dir" / "scratch"))
    assert mounter.mounted == {
        str(base / "kubernetes.io~empty-dir" / "ram"): 16 << 20,
        str(base / "kubernetes.io~secret" / "sec"): 2 << 20,
        str(base / "kubernetes.io~projected" / "all"): 3 * (2 << 20),
    }
    assert mounter.modes[str(base / "kubernetes.io~secret" / "sec")] == 0o755
    cfg = Path(paths["cfg"].path)
    assert paths["cfg"].read_only
    assert (cfg / "conf" / "one.txt").read_bytes() == b"one"
    assert stat.S_IMODE((cfg / "conf" / "one.txt").stat().st_mode) == 0o400
    assert not (cfg / "k2").exists()
    sec = Path(paths["sec"].path)
    assert (sec / "token").read_bytes() == b"xyz"
    assert stat.S_IMODE((sec / "token").stat().st_mode) == 0o440
    info = Path(paths["info"].path)
    assert (info / "labels").read_text() == 'a="b"'
    assert (info / "mem").read_text() == "32"
    assert _files(Path(paths["all"].path)) == {"k1": b"one", "k2": b"two", "t": b"xyz"}

    updated = Sources(configmaps={"cm": {"k1": b"uno"}}, secrets=SOURCES.secrets)
    volumes.setup(POD, updated, {})
    assert (cfg / "conf" / "one.txt").read_bytes() == b"uno"

    volumes.teardown()
    assert mounter.mounted == {}
    assert not (tmp_path / "pods" / "u1").exists()


@pytest.mark.parametrize(
    ("volume", "sources", "message"),
    [
        (
            {"configMap": {"name": "cm"}},
            Sources(configmaps={"cm": None}),
            'configmap "cm" not found',
        ),
        (
            {"secret": {"secretName": "s", "items": [{"key": "nope", "path": "x"}]}},
            Sources(secrets={"s": {"k": b"v"}}),
            "secret references non-existent config key: nope",
        ),
        (
            {"configMap": {"name": "cm", "items": [{"key": "k", "path": "../x"}]}},
            Sources(configmaps={"cm": {"k": b"v"}}),
            "invalid path '../x': must be relative without '..'",
        ),
        (
            {"persistentVolumeClaim": {"claimName": "db"}},
            Sources(),
            'persistentvolumeclaim "db" not found',
        ),
    ],
    ids=["missing-configmap", "missing-key", "escaping-path", "missing-claim"],
)
def test_setup_failures(tmp_path: Path, volume: dict, sources: Sources, message: str) -> None:
    pod = {"spec": {"volumes": [{"name": "v", **volume}]}}
    with pytest.raises(VolumeError) as err:
        PodVolumes(str(tmp_path), "u", FakeMounter()).setup(pod, sources, {})
    assert str(err.value) == f'MountVolume.SetUp failed for volume "v" : {message}'


def test_bound_claim_uses_the_volume_host_path(tmp_path: Path) -> None:
    pod = {"spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "db"}}]}}
    pvc = {"spec": {"volumeName": "pv1"}, "status": {"phase": "Pending"}}
    pv = {"spec": {"hostPath": {"path": str(tmp_path / "data" / "pv1")}}}
    volumes = PodVolumes(str(tmp_path), "u", FakeMounter())
    with pytest.raises(VolumeError, match="is not bound"):
        volumes.setup(pod, Sources(), {"db": Claim(pvc, pv)})
    pvc["status"]["phase"] = "Bound"
    paths = volumes.setup(pod, Sources(), {"db": Claim(pvc, pv)})
    assert paths["v"] == HostVolume(str(tmp_path / "data" / "pv1"))
    assert (tmp_path / "data" / "pv1").is_dir()
    volumes.teardown()
    assert (tmp_path / "data" / "pv1").is_dir()  # claim data outlives the pod


def test_container_mounts_subpath_and_read_only(tmp_path: Path) -> None:
    volumes = {"data": HostVolume(str(tmp_path)), "cfg": HostVolume("/cfg", read_only=True)}
    c = {
        "name": "c",
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/mysql", "subPath": "mysql"},
            {"name": "data", "mountPath": "/ro", "readOnly": True},
            {"name": "cfg", "mountPath": "/etc/app", "mountPropagation": "HostToContainer"},
        ],
    }
    mounts = container_mounts(c, volumes)
    assert [(m.container_path, m.host_path, m.readonly) for m in mounts] == [
        ("/var/lib/mysql", str(tmp_path / "mysql"), False),
        ("/ro", str(tmp_path), True),
        ("/etc/app", "/cfg", True),
    ]
    assert mounts[2].propagation == pb.PROPAGATION_HOST_TO_CONTAINER
    assert (tmp_path / "mysql").is_dir()
    with pytest.raises(ValueError, match="subPath"):
        container_mounts(
            {"volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "../up"}]}, volumes
        )
    with pytest.raises(ValueError, match="cannot find volume"):
        container_mounts({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, volumes)


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def event(self, obj, type, reason, message):
        self.seen.append((type, reason, message))


async def test_worker_waits_for_a_missing_configmap_volume(env: Env) -> None:  # noqa: F811
    mount = {"name": "cfg", "mountPath": "/etc/cfg"}
    pod = env.seed(
        "vol",
        [sleeper(volumeMounts=[mount])],
        volumes=[{"name": "cfg", "configMap": {"name": "app"}}],
    )
    events = Events()
    ctx = env.context()
    ctx.recorder = events
    worker = PodWorker(ctx, pod)
    wake = await settle(worker, env)
    assert env.fake.calls["RunPodSandbox"] == 0
    assert env.container("vol", "main")["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert (
        "Warning",
        "FailedMount",
        'MountVolume.SetUp failed for volume "cfg" : configmap "app" not found',
    ) in events.seen
    assert wake is not None and 0 < wake <= 30

    env.api.seed(
        lookup("configmaps"),
        {"metadata": {"name": "app", "namespace": "default"}, "data": {"k": "v"}},
    )
    await settle(worker, env)
    assert "running" in env.container("vol", "main")["state"]
    created = next(iter(env.fake.containers.values()))
    (m,) = created.config.mounts
    assert m.container_path == "/etc/cfg" and m.readonly
    assert (Path(m.host_path) / "k").read_text() == "v"

    await env.api.async_client().patch(
        lookup("configmaps"), "app", {"data": {"k": "v2"}}, "default"
    )
    await settle(worker, env)
    assert (Path(m.host_path) / "k").read_text() == "v2"  # refreshed in a later pass


def pinned_volume(name: str, node: str, path: Path) -> dict:
    term = {
        "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]
    }
    return {
        "metadata": {"name": name},
        "spec": {
            "hostPath": {"path": str(path)},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [term]}},
        },
    }


async def test_worker_refuses_a_volume_pinned_to_another_node(env: Env) -> None:  # noqa: F811
    """As the kubelet checks before mounting: a pod bound here directly (past the scheduler)
    whose claim's volume is pinned to another node stays ContainerCreating with FailedMount;
    one pinned here starts."""
    env.api.seed(
        lookup("nodes"),
        {"metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}},
    )
    for claim, node in (("elsewhere", "node-b"), ("here", NODE)):
        env.api.seed(
            lookup("persistentvolumes"), pinned_volume(f"pv-{claim}", node, env.tmp / claim)
        )
        env.api.seed(
            lookup("persistentvolumeclaims"),
            {
                "metadata": {"name": claim, "namespace": "default"},
                "spec": {"volumeName": f"pv-{claim}"},
                "status": {"phase": "Bound"},
            },
        )
    mount = {"name": "data", "mountPath": "/data"}
    events = Events()
    ctx = env.context()
    ctx.recorder = events
    for claim in ("elsewhere", "here"):
        volume = {"name": "data", "persistentVolumeClaim": {"claimName": claim}}
        env.seed(f"db-{claim}", [sleeper(volumeMounts=[mount])], volumes=[volume])
    await settle(PodWorker(ctx, env.pod("db-elsewhere")), env)
    assert env.fake.calls["RunPodSandbox"] == 0
    assert env.container("db-elsewhere", "main")["state"] == {
        "waiting": {"reason": "ContainerCreating"}
    }
    message = (
        'MountVolume.NodeAffinity check failed for volume "pv-elsewhere" : '
        "no matching NodeSelectorTerms"
    )
    assert ("Warning", "FailedMount", message) in events.seen
    assert not (env.tmp / "elsewhere").exists()

    await settle(PodWorker(ctx, env.pod("db-here")), env)
    assert "running" in env.container("db-here", "main")["state"]
    assert (env.tmp / "here").is_dir()


class FailingMounter(FakeMounter):
    def mount_tmpfs(self, path: str, size: int | None, mode: int = 0o777) -> None:
        raise OSError("mount: permission denied")


def test_secret_tmpfs_failure_leaves_nothing_on_disk(tmp_path: Path) -> None:
    pod = {"metadata": {"uid": "u"}, "spec": {"volumes": [POD["spec"]["volumes"][3]]}}
    volumes = PodVolumes(str(tmp_path), "u", FailingMounter())
    with pytest.raises(VolumeError, match='volume "sec" : mount tmpfs: mount: permission denied'):
        volumes.setup(pod, SOURCES, {})
    assert not (tmp_path / "pods" / "u" / "volumes" / "kubernetes.io~secret" / "sec").exists()


def test_secret_left_on_disk_is_remade_on_tmpfs(tmp_path: Path) -> None:
    pod = {"metadata": {"uid": "u"}, "spec": {"volumes": [POD["spec"]["volumes"][3]]}}
    stale = tmp_path / "pods" / "u" / "volumes" / "kubernetes.io~secret" / "sec"
    stale.mkdir(parents=True)
    (stale / "old").write_text("on disk")
    mounter = FakeMounter()
    paths = PodVolumes(str(tmp_path), "u", mounter).setup(pod, SOURCES, {})
    assert mounter.mounted == {str(stale): 2 << 20}
    assert not (stale / "old").exists()
    assert (Path(paths["sec"].path) / "token").read_bytes() == b"xyz"
