"""The images tugboat ships, built offline from this machine's binaries.

======================================  ==================================================
``localhost/tugboat/pause:1``           sandbox image (``hack/pause.c``, static); the
                                        containerd config's ``sandbox_image``
``docker.io/library/busybox:1.35``      Debian's busybox-static with every applet linked,
                                        ``/etc/passwd``, ``/etc/group``; Cmd ``["sh"]``
``docker.io/tugboat/web:1`` and ``:2``  busybox plus ``/entrypoint.sh``: serves ``/`` on
                                        port 8080 (``$PORT``) with a page naming the
                                        version (``v1``/``v2``) and the pod hostname, and
                                        ``/healthz``; exits 0 on SIGTERM
======================================  ==================================================

The web images share the busybox layer. Needs ``gcc`` (pause) and ``/bin/busybox`` from
busybox-static (see ``hack/install-runtime.sh``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .oci import BuiltImage, Entry, ImageConfig, build_image

PAUSE_IMAGE = "localhost/tugboat/pause:1"
BUSYBOX_IMAGE = "docker.io/library/busybox:1.35"
WEB_IMAGES = {1: "docker.io/tugboat/web:1", 2: "docker.io/tugboat/web:2"}
ALL_IMAGES = (PAUSE_IMAGE, BUSYBOX_IMAGE, *WEB_IMAGES.values())

BUSYBOX_BINARY = "/bin/busybox"
PAUSE_SOURCE = Path(__file__).resolve().parents[2] / "hack" / "pause.c"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
www-data:x:33:
nogroup:x:65534:
"""

# PID 1 of the web container: a shell with a TERM trap, so StopContainer is quick and exits 0.
WEB_ENTRYPOINT = """#!/bin/sh
set -e
mkdir -p /www
cat > /www/index.html <<HTML
<html><head><title>tugboat web ${WEB_VERSION}</title></head>
<body><h1>tugboat web ${WEB_VERSION}</h1><p>hostname: $(hostname)</p></body></html>
HTML
echo ok > /www/healthz
set +e
httpd -f -p "${PORT:-8080}" -h /www &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
echo "web ${WEB_VERSION} listening on ${PORT:-8080}"
wait "$pid"
"""

_ROOT_DIRS = ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "home", "var/www", "dev", "proc"]
_ROOT_DIRS += ["sys", "run"]


def _file_name(image: str) -> str:
    return image.split("/", 1)[-1].replace("/", "_").replace(":", "_") + ".tar"


def busybox_layer(busybox: str = BUSYBOX_BINARY) -> list[Entry]:
    """Root filesystem entries: busybox, one symlink per applet, basic dirs and /etc files."""
    applets = subprocess.run(
        [busybox, "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    entries = [Entry.file("bin/busybox", Path(busybox).read_bytes(), 0o755)]
    entries += [Entry.symlink(a, "/bin/busybox") for a in applets if a != "bin/busybox"]
    entries += [Entry.dir(d) for d in _ROOT_DIRS]
    entries += [Entry.dir("root", 0o700), Entry.dir("tmp", 0o1777), Entry.dir("var/tmp", 0o1777)]
    entries += [
        Entry.file("etc/passwd", PASSWD),
        Entry.file("etc/group", GROUP),
        Entry.file("etc/hostname", "busybox\n"),
    ]
    return entries


def compile_pause(source: Path = PAUSE_SOURCE) -> bytes:
    """``gcc -Os -static`` of the pause program; returns the (stripped) binary."""
    if shutil.which("gcc") is None:
        raise RuntimeError("gcc not found (hack/install-runtime.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "pause")
        subprocess.run(["gcc", "-Os", "-static", "-s", "-o", out, str(source)], check=True)
        return Path(out).read_bytes()


def build_pause(out_dir: Path) -> BuiltImage:
    return build_image(
        out_dir / _file_name(PAUSE_IMAGE),
        PAUSE_IMAGE,
        [[Entry.file("pause", compile_pause(), 0o755)]],
        ImageConfig(entrypoint=["/pause"], env=()),
    )


def build_busybox(out_dir: Path, base: list[Entry] | None = None) -> BuiltImage:
    return build_image(
        out_dir / _file_name(BUSYBOX_IMAGE),
        BUSYBOX_IMAGE,
        [base or busybox_layer()],
        ImageConfig(cmd=["sh"], env=(DEFAULT_PATH,)),
    )


def build_web(out_dir: Path, version: int, base: list[Entry] | None = None) -> BuiltImage:
    name = WEB_IMAGES[version]
    return build_image(
        out_dir / _file_name(name),
        name,
        [base or busybox_layer(), [Entry.file("entrypoint.sh", WEB_ENTRYPOINT, 0o755)]],
        ImageConfig(
            entrypoint=["/entrypoint.sh"],
            env=(DEFAULT_PATH, f"WEB_VERSION=v{version}"),
            exposed_ports=["8080/tcp"],
        ),
    )


def build_all(out_dir: str | Path) -> list[BuiltImage]:
    """Build every shipped image into ``out_dir`` (one ``.tar`` each); reproducible."""
    out = Path(out_dir)
    base = busybox_layer()
    return [
        build_pause(out),
        build_busybox(out, base),
        *(build_web(out, v, base) for v in sorted(WEB_IMAGES)),
    ]
