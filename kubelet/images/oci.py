"""Write OCI image archives (an OCI image layout in a tar) with the standard library only.

The archive holds ``oci-layout``, ``index.json`` and ``blobs/sha256/*``: one gzip layer per
entry list, an image config whose ``rootfs.diff_ids`` are the uncompressed layer digests, and a
manifest. The index names the image with ``io.containerd.image.name`` (the full reference,
which ``ctr images import`` uses) and ``org.opencontainers.image.ref.name`` (the tag).

Builds are reproducible: fixed timestamps, owners and ordering, so the same inputs give the
same manifest digest (which lets a loader skip an image that is already present).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
EPOCH = 0  # mtime of every file, tar member and gzip stream
CREATED = "1970-01-01T00:00:00Z"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def host_arch() -> str:
    """The OCI architecture name of this machine (``amd64``, ``arm64``, ...)."""
    machine = platform.machine().lower()
    return _ARCH.get(machine, machine)


@dataclass(frozen=True, slots=True)
class Entry:
    """One filesystem object of a layer; ``path`` is relative to the root (no leading /)."""

    path: str
    kind: str = "file"  # file | dir | symlink
    data: bytes = b""
    mode: int = 0o644
    target: str = ""

    @classmethod
    def file(cls, path: str, data: bytes | str, mode: int = 0o644) -> Entry:
        return cls(path.lstrip("/"), "file", data.encode() if isinstance(data, str) else data, mode)

    @classmethod
    def dir(cls, path: str, mode: int = 0o755) -> Entry:
        return cls(path.lstrip("/"), "dir", mode=mode)

    @classmethod
    def symlink(cls, path: str, target: str) -> Entry:
        return cls(path.lstrip("/"), "symlink", mode=0o777, target=target)


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """An image archive on disk: its full name and manifest digest."""

    name: str
    path: Path
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The runtime part of an image config (``config`` in the OCI image config)."""

    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    working_dir: str = ""
    exposed_ports: Sequence[str] = ()  # "8080/tcp"
    labels: Mapping[str, str] | None = None
    user: str = ""


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _parents(path: str) -> Iterable[str]:
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """An uncompressed layer tar: entries sorted by path, missing parent dirs added (0755)."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        for parent in _parents(entry.path):
            by_path.setdefault(parent, Entry.dir(parent))
        by_path[entry.path] = entry
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(by_path):
            entry = by_path[path]
            info = tarfile.TarInfo(path)
            info.mtime, info.mode = EPOCH, entry.mode
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
                tar.addfile(info)
            elif entry.kind == "file":
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                raise ValueError(f"unknown entry kind {entry.kind!r} for {path}")
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=EPOCH, compresslevel=9) as gz:
        gz.write(data)
    return out.getvalue()


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build_image(
    path: str | Path,
    name: str,
    layers: Sequence[Iterable[Entry]],
    config: ImageConfig,
    *,
    arch: str | None = None,
) -> BuiltImage:
    """Write an OCI archive for ``name`` (a fully qualified reference) to ``path``.

    ``layers`` are applied bottom first. Returns the archive's name, path and manifest digest.
    """
    arch = arch or host_arch()
    blobs: dict[str, bytes] = {}
    layer_descs, diff_ids = [], []
    for entries in layers:
        raw = layer_tar(entries)
        gz = _gzip(raw)
        digest = _sha256(gz)
        blobs[digest] = gz
        diff_ids.append(_sha256(raw))
        layer_descs.append({"mediaType": LAYER_MEDIA_TYPE, "digest": digest, "size": len(gz)})
    runtime: dict[str, object] = {"Env": list(config.env)}
    if config.entrypoint:
        runtime["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        runtime["Cmd"] = list(config.cmd)
    if config.working_dir:
        runtime["WorkingDir"] = config.working_dir
    if config.user:
        runtime["User"] = config.user
    if config.exposed_ports:
        runtime["ExposedPorts"] = {port: {} for port in config.exposed_ports}
    if config.labels:
        runtime["Labels"] = dict(config.labels)
    image_config = _json(
        {
            "architecture": arch,
            "os": "linux",
            "created": CREATED,
            "config": runtime,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": CREATED, "created_by": "tugboat build-images"}] * len(layers),
        }
    )
    config_digest = _sha256(image_config)
    blobs[config_digest] = image_config
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": CONFIG_MEDIA_TYPE,
                "digest": config_digest,
                "size": len(image_config),
            },
            "layers": layer_descs,
        }
    )
    manifest_digest = _sha256(manifest)
    blobs[manifest_digest] = manifest
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": MANIFEST_MEDIA_TYPE,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {NAME_ANNOTATION: name, REF_ANNOTATION: tag},
                    "platform": {"architecture": arch, "os": "linux"},
                }
            ],
        }
    )
    files = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": index}
    for digest, blob in blobs.items():
        files["blobs/sha256/" + digest.split(":", 1)[1]] = blob
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirname in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(dirname)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        for fname in sorted(files):
            info = tarfile.TarInfo(fname)
            info.size, info.mode, info.mtime = len(files[fname]), 0o644, EPOCH
            tar.addfile(info, io.BytesIO(files[fname]))
    tmp.replace(path)
    return BuiltImage(name, path, manifest_digest, path.stat().st_size)


def read_archive(path: str | Path) -> BuiltImage:
    """Name and manifest digest of an archive written by :func:`build_image`."""
    with tarfile.open(path) as tar:
        member = tar.extractfile("index.json")
        if member is None:
            raise ValueError(f"{path}: no index.json")
        index = json.load(member)
    desc = index["manifests"][0]
    annotations = desc.get("annotations", {})
    name = annotations.get(NAME_ANNOTATION) or annotations.get(REF_ANNOTATION, "")
    return BuiltImage(name, Path(path), desc["digest"], Path(path).stat().st_size)
