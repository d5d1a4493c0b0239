"""OCI archives written by kubelet.images.oci: layout, digests, reproducibility."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from kubelet.images.oci import Entry, ImageConfig, build_image, layer_tar, read_archive


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blobs(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


LAYERS = [
    [Entry.file("bin/tool", b"\x7fELF...", 0o755), Entry.symlink("usr/bin/t", "/bin/tool")],
    [Entry.file("/etc/motd", "hello\n"), Entry.dir("tmp", 0o1777)],
]
CONFIG = ImageConfig(entrypoint=["/bin/tool"], cmd=["--serve"], exposed_ports=["8080/tcp"])


def test_archive_is_a_valid_oci_layout(tmp_path: Path) -> None:
    built = build_image(tmp_path / "img.tar", "localhost/test/tool:2", LAYERS, CONFIG, arch="amd64")
    files = blobs(built.path)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    desc = index["manifests"][0]
    assert desc["annotations"] == {
        "io.containerd.image.name": "localhost/test/tool:2",
        "org.opencontainers.image.ref.name": "2",
    }
    assert desc["digest"] == built.digest
    manifest_bytes = files["blobs/sha256/" + built.digest.split(":")[1]]
    assert sha(manifest_bytes) == built.digest
    manifest = json.loads(manifest_bytes)
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"].split(":")[1]])
    assert config["config"]["Entrypoint"] == ["/bin/tool"]
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert config["architecture"] == "amd64"
    # Each layer blob is gzip of a tar whose digest is the matching diff_id.
    assert len(manifest["layers"]) == len(config["rootfs"]["diff_ids"]) == 2
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        blob = files["blobs/sha256/" + layer["digest"].split(":")[1]]
        assert sha(blob) == layer["digest"] and len(blob) == layer["size"]
        assert sha(gzip.decompress(blob)) == diff_id
    assert read_archive(built.path) == built


def test_layer_adds_parent_dirs_in_order() -> None:
    with tarfile.open(fileobj=io.BytesIO(layer_tar(LAYERS[0]))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == ["bin", "bin/tool", "usr", "usr/bin", "usr/bin/t"]
    assert members["bin"].isdir() and members["bin/tool"].mode == 0o755
    assert members["usr/bin/t"].issym() and members["usr/bin/t"].linkname == "/bin/tool"


def test_builds_are_reproducible(tmp_path: Path) -> None:
    a = build_image(tmp_path / "a.tar", "localhost/x:1", LAYERS, CONFIG)
    b = build_image(tmp_path / "b.tar", "localhost/x:1", LAYERS, CONFIG)
    assert a.digest == b.digest
    assert a.path.read_bytes() == b.path.read_bytes()
    c = build_image(tmp_path / "c.tar", "localhost/x:1", LAYERS[:1], CONFIG)
    assert c.digest != a.digest
