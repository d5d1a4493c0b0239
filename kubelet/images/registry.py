"""A private OCI registry on loopback (Debian's ``docker-registry``, distribution v2) and
pushing images to one (``skopeo copy``).

``start`` writes ``<dir>/config.yml`` (filesystem storage in ``<dir>/data``, deletes enabled,
no auth, listening on ``127.0.0.1:PORT`` only) and runs ``docker-registry serve`` detached,
its pid in ``<dir>/registry.pid``; it returns once ``GET /v2/`` answers 200. containerd pulls
from ``localhost:PORT``/``127.0.0.1:PORT`` over plain HTTP without extra configuration.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from . import store
from .build import Builder, BuildError, is_loopback_registry, normalize, registry_host, run_tool

BINARY = "docker-registry"
CONFIG = """version: 0.1
log:
  level: warn
  fields: {{service: registry}}
storage:
  filesystem: {{rootdirectory: {data}}}
  delete: {{enabled: true}}
http:
  addr: 127.0.0.1:{port}
"""


class RegistryError(Exception):
    """One line for the user."""


@dataclass(frozen=True)
class RegistryInfo:
    address: str  # 127.0.0.1:PORT
    pid: int
    dir: Path


def _pid(dir: Path) -> int | None:
    try:
        pid = int((dir / "registry.pid").read_text())
    except (OSError, ValueError):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    if state == "Z":  # exited; reap it when this process started it (an in-process start)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return None
    return pid if "registry" in comm else None


def ping(address: str, timeout: float = 2.0) -> str | None:
    """``None`` when ``http://address/v2/`` answers 200, else why not (one line)."""
    try:
        r = httpx.get(f"http://{address}/v2/", timeout=timeout)
    except httpx.ConnectError:
        return f"registry {address} is not reachable (connection refused)"
    except httpx.TimeoutException:
        return f"registry {address} is not reachable (timed out)"
    except httpx.HTTPError as e:
        return f"registry {address} is not reachable ({e})"
    return None if r.status_code == 200 else f"registry {address} answered {r.status_code}"


def status(dir: Path) -> RegistryInfo | None:
    pid = _pid(dir)
    if pid is None:
        return None
    port = json.loads((dir / "registry.json").read_text())["port"]
    return RegistryInfo(f"127.0.0.1:{port}", pid, dir)


def start(dir: Path, port: int = 5000, timeout: float = 20.0) -> RegistryInfo:
    """Start (or find running) the registry of ``dir``; idempotent."""
    dir = Path(dir).expanduser().resolve()
    running = status(dir)
    if running is not None:
        return running
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "data").mkdir(exist_ok=True)
    (dir / "config.yml").write_text(CONFIG.format(data=dir / "data", port=port))
    (dir / "registry.json").write_text(json.dumps({"port": port}))
    address = f"127.0.0.1:{port}"
    if ping(address, 0.5) is None:
        raise RegistryError(f"port {port} is already serving a registry not started here")
    log = open(dir / "registry.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [BINARY, "serve", str(dir / "config.yml")],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise RegistryError(f"{BINARY} not found (hack/install-runtime.sh installs it)") from None
    finally:
        log.close()
    (dir / "registry.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while (why := ping(address, 0.5)) is not None:
        if proc.poll() is not None:
            tail = (dir / "registry.log").read_text().strip().splitlines()[-1:] or ["no output"]
            raise RegistryError(f"{BINARY} exited with {proc.returncode}: {tail[0]}")
        if time.monotonic() > deadline:
            raise RegistryError(f"registry did not answer within {timeout:g}s: {why}")
        time.sleep(0.05)
    return RegistryInfo(address, proc.pid, dir)


def stop(dir: Path, timeout: float = 10.0) -> bool:
    """Stop the registry of ``dir``; ``False`` when none ran. Its data stays."""
    dir = Path(dir).expanduser().resolve()
    pid = _pid(dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid(dir) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid(dir) is not None:
        os.kill(pid, signal.SIGKILL)
    (dir / "registry.pid").unlink(missing_ok=True)
    return True


def catalog(address: str) -> list[str]:
    r = httpx.get(f"http://{address}/v2/_catalog", timeout=5)
    r.raise_for_status()
    return list(r.json().get("repositories") or [])


def push(source: str, dest: str, builder: Builder, socket: str | None) -> str:
    """Push ``source`` (an image this build cache made, else one in containerd at ``socket``)
    to ``dest`` (``HOST[:PORT]/repo:tag``); returns the normalized destination."""
    dest = normalize(dest)
    host = registry_host(dest)
    if is_loopback_registry(dest):
        why = ping(host)
        if why is not None:
            raise RegistryError(f"pushing {dest}: {why}")
    tls = ["--dest-tls-verify=false"] if is_loopback_registry(dest) else []
    tag = builder.tag_of(source)
    if tag is not None:
        src = f"oci:{builder.layout}:{tag}"
        _skopeo(["copy", "-q", *tls, src, f"docker://{dest}"], dest)
        return dest
    if socket is None:
        raise RegistryError(f"{source}: not built here and no containerd socket to export from")
    name = normalize(source)
    if name not in {i.name for i in store.list_images(socket)}:
        raise RegistryError(f"{source}: no such image (tug image ls lists them)")
    tmp = builder.cache / "tmp" / f"{uuid.uuid4().hex}.tar"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        address = socket.removeprefix("unix://")
        run_tool(["ctr", "-a", address, "-n", store.NAMESPACE, "images", "export", str(tmp), name],
             f"export {name}")  # fmt: skip
        _skopeo(["copy", "-q", *tls, f"oci-archive:{tmp}", f"docker://{dest}"], dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _skopeo(args: list[str], dest: str) -> None:
    try:
        run_tool(["skopeo", *args], f"pushing {dest}", 600)
    except BuildError as e:
        raise RegistryError(str(e)) from None
