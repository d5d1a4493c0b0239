"""Fixtures for end-to-end tests against a real containerd (our own instance).

``containerd_runtime`` (session): starts containerd with ``hack/start-containerd.sh`` in a temp
dir, builds and loads the shipped images, yields a :class:`ContainerdRuntime` and stops it all
(pods, daemon, bridge, CNI state) at the end. Tests are skipped when not root or containerd is
not installed (``hack/install-runtime.sh``).

Settings: ``TUG_E2E_BRIDGE`` (``tuge2e0``) and ``TUG_E2E_POD_CIDR`` (``10.244.250.0/24``), so a
test run never collides with a cluster's ``tug0``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kubelet.cri import api_pb2 as pb
from kubelet.cri.cgroups import remove_cgroup
from kubelet.cri.client import RuntimeClient
from kubelet.cri.errors import CriNotFound
from kubelet.images.builtin import BUSYBOX_IMAGE, PAUSE_IMAGE, WEB_IMAGES, build_all
from kubelet.images.store import load_image

REPO = Path(__file__).resolve().parents[2]
START_SCRIPT = REPO / "hack" / "start-containerd.sh"


@dataclass(frozen=True)
class ContainerdRuntime:
    """A running containerd instance for tests, with the shipped images loaded."""

    dir: Path
    socket: str
    endpoint: str
    pod_cidr: str
    bridge: str
    log_root: Path
    cgroup_root: str
    pause_image: str = PAUSE_IMAGE
    busybox_image: str = BUSYBOX_IMAGE
    web_images: dict[int, str] = field(default_factory=lambda: dict(WEB_IMAGES))

    def client(self, timeout: float = 30.0) -> RuntimeClient:
        return RuntimeClient(self.endpoint, timeout=timeout)


def runtime_skip_reason() -> str | None:
    """Why tests on a real containerd cannot run here, or None."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "tests on containerd need root on Linux"
    missing = [b for b in ("containerd", "ctr", "runc") if shutil.which(b) is None]
    if missing or not Path("/usr/lib/cni/bridge").exists():
        return f"containerd/runc/CNI not installed ({missing}); run hack/install-runtime.sh"
    return None


@pytest.fixture(scope="session")
def containerd_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerdRuntime]:
    reason = runtime_skip_reason()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("containerd")
    bridge = os.environ.get("TUG_E2E_BRIDGE", "tuge2e0")
    pod_cidr = os.environ.get("TUG_E2E_POD_CIDR", "10.244.250.0/24")
    start = [str(START_SCRIPT), "--bridge", bridge, "--pod-cidr", pod_cidr, str(base)]
    subprocess.run(["bash", *start], check=True, timeout=60)
    runtime = ContainerdRuntime(
        dir=base,
        socket=str(base / "containerd.sock"),
        endpoint=f"unix://{base / 'containerd.sock'}",
        pod_cidr=pod_cidr,
        bridge=bridge,
        log_root=base / "pod-logs",
        cgroup_root=f"/tugboat-e2e-{uuid.uuid4().hex[:8]}",
    )
    try:
        for image in build_all(base / "images"):
            load_image(runtime.socket, image.path)
        yield runtime
    finally:
        subprocess.run(
            ["bash", str(START_SCRIPT), "--stop", "--bridge", bridge, str(base)],
            check=False,
            timeout=180,
        )
        remove_cgroup(runtime.cgroup_root)


@pytest.fixture
def cri(containerd_runtime: ContainerdRuntime) -> Iterator[RuntimeClient]:
    with containerd_runtime.client() as client:
        yield client


class Pods:
    """Creates sandboxes the way the node agent will, and removes them (and their pod cgroups)
    when the test ends, whatever happened."""

    def __init__(self, runtime: ContainerdRuntime, client: RuntimeClient) -> None:
        self.runtime = runtime
        self.client = client
        self.created: list[tuple[str, str]] = []  # (sandbox id, cgroup parent)

    def sandbox_config(
        self,
        name: str,
        *,
        port_mappings: list[pb.PortMapping] | None = None,
        host_network: bool = False,
    ) -> pb.PodSandboxConfig:
        uid = uuid.uuid4().hex
        ns = pb.NamespaceOption(
            pid=pb.CONTAINER, network=pb.NODE if host_network else pb.POD, ipc=pb.POD
        )
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="e2e"),
            hostname="" if host_network else name,
            log_directory=str(self.runtime.log_root / f"e2e_{name}_{uid}"),
            dns_config=pb.DNSConfig(
                servers=["10.96.0.10"], searches=["e2e.svc.cluster.local"], options=["ndots:5"]
            ),
            port_mappings=port_mappings or [],
            labels={"io.kubernetes.pod.uid": uid, "io.kubernetes.pod.name": name},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"{self.runtime.cgroup_root}/pod{uid}",
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns),
            ),
        )

    def run(self, config: pb.PodSandboxConfig) -> str:
        return self.track(self.client.run_pod_sandbox(config), config)

    def track(self, sandbox_id: str, config: pb.PodSandboxConfig) -> str:
        """Have a sandbox created elsewhere (e.g. by an async client) cleaned up too."""
        self.created.append((sandbox_id, config.linux.cgroup_parent))
        return sandbox_id

    def cleanup(self) -> None:
        for sandbox_id, cgroup_parent in reversed(self.created):
            try:
                self.client.stop_pod_sandbox(sandbox_id)
                self.client.remove_pod_sandbox(sandbox_id)
            except CriNotFound:
                pass
            remove_cgroup(cgroup_parent)


@pytest.fixture
def pods(containerd_runtime: ContainerdRuntime, cri: RuntimeClient) -> Iterator[Pods]:
    tracker = Pods(containerd_runtime, cri)
    try:
        yield tracker
    finally:
        tracker.cleanup()
