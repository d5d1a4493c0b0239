"""``tug down``: stop a local cluster and everything it started.

    tug down [--data-dir D] [--purge]

Stops the supervisor (which stops every component, each node's containerd last), kills any
component process it left (matched by pid and start time, never by name), then starts each
node's containerd once more on its own and stops it with ``hack/start-containerd.sh --stop``
(removing every pod sandbox through CRI, so CNI releases addresses and NAT rules, then the
containers left, the bridge and the CNI state), removes the nodes' cgroup roots and unmounts
what node agents mounted inside ``D`` (tmpfs volumes of pods: secrets, memory emptyDirs). The store
is kept, so a later ``tug up`` resumes the same objects; ``--purge`` deletes ``D`` as well.
Running it on a stopped cluster is not an error.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import CONTAINERD_SCRIPT, REPO, ClusterError, DataDir, parser, run_main
from .kubeconfig import unmerge
from .procs import ProcessRef, terminate, wait_gone

CGROUP_MOUNT = Path("/sys/fs/cgroup")
SUPERVISOR_GRACE = 60.0


def stop_processes(d: DataDir) -> int:
    """Stop the supervisor and any component process still alive; returns how many were found
    running."""
    state = d.state() or {}
    found = 0
    supervisor = d.supervisor()
    if supervisor is not None:
        found += 1
        with_grace = [supervisor]
        os.kill(supervisor.pid, signal.SIGTERM)
        if wait_gone(with_grace, SUPERVISOR_GRACE):
            terminate(with_grace, 0)
    leftovers = [
        ref
        for comp in (state.get("components") or {}).values()
        if (ref := ProcessRef.from_json(comp)) is not None and ref.alive()
    ]
    found += len(leftovers)
    if terminate(leftovers, 10.0):
        raise ClusterError("some component processes would not die: " + _pids(leftovers))
    return found


def _pids(refs: list[ProcessRef]) -> str:
    return ", ".join(str(r.pid) for r in refs if r.alive())


def stop_runtimes(nodes: list[dict[str, Any]]) -> None:
    """Stop each node's containerd instance (pods and containers first) and clean up after it."""
    present = [n for n in nodes if Path(n["containerdDir"]).exists()]
    if present and os.geteuid() != 0:
        raise ClusterError("stopping containerd needs root")
    for node in present:
        where = [node["containerdDir"], node["socket"]]
        if (Path(node["containerdDir"]) / "containerd.toml").exists():
            net = ["--bridge", node["bridge"], "--pod-cidr", node["podCIDR"]]
            _script([*net, *where], f"restarting containerd of {node['name']} for cleanup")
        _script(["--stop", *where], f"stopping containerd of {node['name']}")
        remove_cgroup_tree(node["cgroupRoot"])
    for parent in {str(Path(n["cgroupRoot"]).parent) for n in present} - {"/"}:
        remove_cgroup_tree(parent, only_if_empty=True)


def mounts_under(mounts_text: str, root: Path) -> list[str]:
    """Mount points strictly inside ``root`` in a ``/proc/mounts`` text, deepest first."""
    prefix = str(root).rstrip("/") + "/"
    points = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) > 1:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
            if point.startswith(prefix):
                points.append(point)
    return sorted(points, key=lambda p: -p.count("/"))


def unmount_under(root: Path) -> None:
    """Unmount every mount inside ``root`` (pod volumes the node agents left mounted)."""
    if os.geteuid() != 0:
        return
    for point in mounts_under(Path("/proc/self/mounts").read_text(), root.resolve()):
        subprocess.run(["umount", point], capture_output=True, check=False, timeout=30)


def _script(args: list[str], what: str) -> None:
    out = subprocess.run(
        ["bash", str(CONTAINERD_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    if out.returncode != 0:
        last = (out.stderr or out.stdout).strip().splitlines() or ["(no output)"]
        raise ClusterError(f"{what} failed: {last[-1]}")


def remove_cgroup_tree(path: str, mount: Path = CGROUP_MOUNT, only_if_empty: bool = False) -> None:
    """rmdir ``path`` and its (empty) sub-cgroups in every mounted hierarchy; busy ones stay.
    With ``only_if_empty`` a ``path`` that has sub-cgroups is left alone entirely."""
    relative = path.strip("/")
    if not relative:
        raise ValueError("refusing to remove the root cgroup")
    roots = [mount] if (mount / "cgroup.controllers").exists() else [
        e for e in mount.glob("*") if e.is_dir() and not e.is_symlink() and os.path.ismount(e)
    ]  # fmt: skip
    for root in roots:
        top = root / relative
        if not top.is_dir():
            continue
        if only_if_empty:
            with contextlib.suppress(OSError):
                os.rmdir(top)
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def down(argv: list[str]) -> int:
    p = parser("tug down", "Stop a local tugboat cluster (and its containers).")
    p.add_argument(
        "--purge",
        action="store_true",
        help="also delete the data dir and the context tug up --merge-kubeconfig added",
    )
    args = p.parse_args(argv)
    d = DataDir.at(args.data_dir)
    if not d.root.exists():
        print(f"no tugboat cluster in {d.root}")
        return 0
    if args.purge and not d.looks_like_ours():
        raise ClusterError(f"{d.root} does not look like a tugboat data dir; not deleting it")
    with d.locked():
        found = stop_processes(d)
        cluster = d.cluster() or {}
        stop_runtimes(list(cluster.get("nodes") or []))
        unmount_under(d.root)
    if args.purge:
        print(unmerge(d) or "", end="")
        shutil.rmtree(d.root)
        print(f"tugboat stopped; deleted {d.root}")
    elif found:
        print(f"tugboat stopped (data kept in {d.root}; tug up starts it again)")
    else:
        print(f"tugboat was not running (data dir {d.root})")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(down, argv)


if __name__ == "__main__":
    sys.exit(main())
