"""A containerd of a benchmark's own, holding the images tugboat ships.

:func:`own_containerd` starts one with ``hack/start-containerd.sh`` (its own root, state,
socket and CNI bridge, so it never meets the tests' or a cluster's), loads the images
:func:`kubelet.images.builtin.build_all` builds (pause, busybox, web) and stops it with
``--stop`` when the block ends, also on an error. Needs root, containerd, runc and the CNI
plugins (``hack/install-runtime.sh``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubelet.images.builtin import build_all
from kubelet.images.store import load_image

REPO = Path(__file__).resolve().parents[1]
START = REPO / "hack" / "start-containerd.sh"


@contextmanager
def own_containerd(work: Path, bridge: str, cidr: str) -> Iterator[str]:
    """containerd on ``work/containerd`` (pid in ``containerd.pid`` there) with bridge
    ``bridge`` and pod CIDR ``cidr``, the shipped images built into ``work/images`` and
    loaded; yields its socket path. Stopped, its bridge and CNI state removed, on exit."""
    cdir = work / "containerd"
    subprocess.run(
        ["bash", str(START), "--bridge", bridge, "--pod-cidr", cidr, str(cdir)],
        check=True,
        timeout=60,
    )
    try:
        socket = str(cdir / "containerd.sock")
        for image in build_all(work / "images"):
            load_image(socket, image.path)
        yield socket
    finally:
        subprocess.run(
            ["bash", str(START), "--stop", "--bridge", bridge, str(cdir)],
            check=False,
            timeout=180,
        )
