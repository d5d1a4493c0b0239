"""Images in a containerd instance, through ``ctr`` (CRI has no import RPC).

Everything happens in namespace ``k8s.io``, the one the CRI plugin serves. ``socket`` is the
containerd socket path (``unix://`` prefix accepted).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .oci import read_archive

NAMESPACE = "k8s.io"


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An image known to containerd: full name, manifest (or index) digest, size as shown."""

    name: str
    digest: str
    size: str


class StoreError(Exception):
    """A ``ctr`` command failed."""


def _ctr(socket: str, *args: str, namespace: str = NAMESPACE, timeout: float = 120) -> str:
    address = socket.removeprefix("unix://")
    cmd = ["ctr", "-a", address, "-n", namespace, *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise StoreError("ctr not found (install containerd: hack/install-runtime.sh)") from None
    if done.returncode != 0:
        raise StoreError(f"{' '.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def list_images(socket: str, namespace: str = NAMESPACE) -> list[StoredImage]:
    """Named images (``sha256:`` id aliases that CRI adds are left out)."""
    out = _ctr(socket, "images", "ls", namespace=namespace)
    images = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5 or cols[0].startswith("sha256:"):
            continue
        images.append(StoredImage(cols[0], cols[2], " ".join(cols[3:5])))
    return images


def load_image(socket: str, path: str | Path, namespace: str = NAMESPACE) -> bool:
    """Import an archive; returns ``False`` (and does nothing) when an image of the same name
    and manifest digest is already present."""
    built = read_archive(path)
    for image in list_images(socket, namespace):
        if image.name == built.name and image.digest == built.digest:
            return False
    _ctr(socket, "images", "import", str(path), namespace=namespace, timeout=300)
    return True


def remove_image(socket: str, name: str, namespace: str = NAMESPACE) -> None:
    """Remove an image by full name (missing images are not an error)."""
    present = {image.name for image in list_images(socket, namespace)}
    if name in present:
        _ctr(socket, "images", "rm", "--sync", name, namespace=namespace)
