"""Pod cgroup directories under the cgroupfs driver.

With ``cgroup_parent = /tugboat/pod<uid>`` the runtime puts each container in
``<parent>/<container id>`` and removes that, but never the pod-level directory: the node agent
removes it after the sandbox is gone, in every mounted hierarchy (cgroup v1 controllers and the
unified v2 tree alike).
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_MOUNT = Path("/sys/fs/cgroup")


def hierarchies(mount: Path = CGROUP_MOUNT) -> list[Path]:
    """Roots of the mounted hierarchies: each v1 controller directory, or the v2 root itself.

    Hybrid setups list both (``/sys/fs/cgroup/unified`` is a v2 root).
    """
    if (mount / "cgroup.controllers").exists():
        return [mount]
    roots = []
    if mount.is_dir():
        for entry in sorted(mount.iterdir()):
            if entry.is_dir() and not entry.is_symlink() and os.path.ismount(entry):
                roots.append(entry)
    return roots


def remove_cgroup(path: str, mount: Path = CGROUP_MOUNT) -> list[Path]:
    """rmdir ``path`` (e.g. ``/tugboat/pod123``) and its empty sub-cgroups in every hierarchy.

    Missing directories are skipped; returns the directories that remain (busy: a process is
    still in them), which the caller may retry later.
    """
    relative = path.strip("/")
    if not relative:
        raise ValueError("refusing to remove the root cgroup")
    left: list[Path] = []
    for root in hierarchies(mount):
        top = root / relative
        if not top.is_dir():
            continue
        for dirpath, _dirnames, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(dirpath)
            except FileNotFoundError:
                pass
            except OSError:
                left.append(Path(dirpath))
    return left
