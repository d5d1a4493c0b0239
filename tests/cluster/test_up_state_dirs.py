"""Node state stays in the cluster's data dir: each agent's ``--root-dir`` and the local-path
provisioner's directory, so two clusters never share them; ``tug down`` unmounts what the
agents left mounted there."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cli.cluster import down, up
from controllers import manager


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_each_cluster_keeps_node_state_in_its_data_dir(tmp_path: Path) -> None:
    plans = [
        up.plan(tmp_path / name, nodes=2, runtime="containerd", port=7000, python="py")
        for name in ("a", "b")
    ]
    roots = []
    for p in plans:
        argv = {c.name: c.argv for c in p.components}
        assert flag(argv["kubelet-node-0"], "--root-dir") == str(
            p.data_dir / "nodes" / "node-0" / "kubelet"
        )
        assert flag(argv["kubelet-node-1"], "--root-dir") == str(
            p.data_dir / "nodes" / "node-1" / "kubelet"
        )
        local_path = flag(argv["controller-manager"], "--local-path-dir")
        assert local_path == str(p.data_dir / "local-path")
        roots += [flag(argv[k], "--root-dir") for k in ("kubelet-node-0", "kubelet-node-1")]
        roots.append(local_path)
    assert len(set(roots)) == len(roots)


def test_hollow_nodes_get_a_root_dir_too(tmp_path: Path) -> None:
    p = up.plan(tmp_path, nodes=3, runtime="fake", port=7000, python="py")
    kubelet = next(c for c in p.components if c.name == "kubelet").argv
    assert flag(kubelet, "--root-dir") == str(tmp_path / "nodes" / "kubelet")


def test_controller_manager_takes_the_local_path_dir() -> None:
    assert manager.parse_args([]).local_path_dir == "/var/lib/tugboat/local-path"
    assert manager.parse_args(["--local-path-dir", "/d/lp"]).local_path_dir == "/d/lp"


def test_mounts_under_the_data_dir_deepest_first() -> None:
    text = "\n".join(
        [
            "tmpfs /d/tug/nodes/node-0/kubelet/pods/u/volumes/kubernetes.io~secret/s tmpfs rw 0 0",
            "tmpfs /d/tug/nodes/node-0/kubelet/pods/u tmpfs rw 0 0",
            "tmpfs /d/tug2/x tmpfs rw 0 0",
            "tmpfs /d/tug tmpfs rw 0 0",
            r"tmpfs /d/tug/with\040space tmpfs rw 0 0",
        ]
    )
    assert down.mounts_under(text, Path("/d/tug")) == [
        "/d/tug/nodes/node-0/kubelet/pods/u/volumes/kubernetes.io~secret/s",
        "/d/tug/nodes/node-0/kubelet/pods/u",
        "/d/tug/with space",
    ]


def test_unmount_under_removes_a_left_tmpfs(tmp_path: Path) -> None:
    target = tmp_path / "nodes" / "node-0" / "kubelet" / "pods" / "u" / "vol"
    target.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(target)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {mounted.stderr.decode().strip()}")
    down.unmount_under(tmp_path)
    assert not target.is_mount()
