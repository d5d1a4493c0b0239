"""A fake CRI runtime that speaks the real gRPC services, for tests and hollow nodes.

:class:`FakeRuntime` is one node's runtime state; its RPC methods (named as in the proto) take
and return protobuf messages and raise :class:`FakeError` for gRPC errors. :class:`FakeServer`
serves any number of them on one grpc.aio server (unix socket or TCP port); a client picks a
node with the ``tugboat-node`` metadata key (``RuntimeClient(node=...)``), no key selects the
runtime registered under ``""``.

Semantics, kept close to containerd's:

- Sandboxes get the next free IP of ``pod_cidr`` (sequentially, skipping the network, gateway
  ``.1`` and broadcast addresses, like host-local); host-network sandboxes report no IP. Stop
  releases the IP, kills the containers (exit 137, reason Error) and is idempotent; Remove
  of an unknown sandbox or container succeeds.
- Containers: created → running (StartContainer) → exited (:meth:`FakeRuntime.exit_container`,
  StopContainer, sandbox stop). A container whose command is one the tiny interpreter knows
  (``echo``, ``true``, ``false``, ``sh -c 'exit N'``/``echo``) writes its output to its log and
  exits at start; anything else runs until told otherwise.
- Images: present from ``images``; PullImage succeeds only for names in ``pullable`` — pulling
  a present image that is not pullable fails, as containerd does offline; CreateContainer needs
  the image present.
- Stats come from :meth:`FakeRuntime.set_usage`; ``usage_core_nano_seconds`` integrates the set
  rate over the injected ``clock`` while the container runs; ``usage_nano_cores`` is the set
  rate (containerd instead reports 0 on a first sample).
- Logs: records in CRI format under ``log_directory/log_path`` when both are set.
- Exec/Attach return URLs on a fake streaming server (:mod:`kubelet.cri.fakestream`, started
  in the running loop on first use); PortForward returns a ``fake://`` URL nothing serves.

State per sandbox and container is a small slotted object holding the request's config
message, so a process can hold thousands of hollow pods.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import itertools
import json
import os
import shlex
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from . import api_pb2 as pb
from .client import NODE_METADATA_KEY, socket_path
from .fakestream import StreamServer
from .logs import format_output
from .names import normalize_image

DEFAULT_IMAGES = (
    "localhost/tugboat/pause:1",
    "docker.io/library/busybox:1.35",
    "docker.io/tugboat/web:1",
    "docker.io/tugboat/web:2",
)
RUNTIME_NAME = "tugboat-fake"
RUNTIME_VERSION = "0.1.0"

ExecResult = tuple[int, bytes, bytes]
ExecHandler = Callable[[str, list[str]], ExecResult | None]


class FakeError(Exception):
    """An RPC failure with a gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _not_found(kind: str, id: str) -> FakeError:
    return FakeError(grpc.StatusCode.NOT_FOUND, f"{kind} {id!r} not found")


def interpret(argv: list[str]) -> ExecResult | None:
    """Run the few commands the fake understands: ``(exit code, stdout, stderr)`` or ``None``.

    Known: ``true``, ``false``, ``echo ...``, ``exit N`` and ``sh -c`` of ``;``-joined known
    commands (``exit`` stops there).
    """
    if len(argv) >= 3 and os.path.basename(argv[0]) in ("sh", "bash") and argv[1] == "-c":
        out = b""
        for part in argv[2].split(";"):
            words = shlex.split(part)
            if not words:
                continue
            if words[0] == "exit":
                return (int(words[1]) if len(words) > 1 else 0), out, b""
            result = interpret(words)
            if result is None:
                return None
            code, stdout, _ = result
            out += stdout
            if code:
                return code, out, b""
        return 0, out, b""
    if not argv:
        return None
    name = os.path.basename(argv[0])
    if name == "true":
        return 0, b"", b""
    if name == "false":
        return 1, b"", b""
    if name == "echo":
        return 0, (" ".join(argv[1:]) + "\n").encode(), b""
    return None


def _image_id(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


@dataclass(slots=True)
class _Usage:
    """A CPU rate and memory level, integrating CPU time over the clock."""

    nano_cores: int = 0
    memory_bytes: int = 0
    cumulative_ns: float = 0.0
    since: float = 0.0
    running: bool = True

    def advance(self, now: float) -> None:
        if self.running:
            self.cumulative_ns += self.nano_cores * max(0.0, now - self.since)
        self.since = now


@dataclass(slots=True)
class _Sandbox:
    id: str
    config: pb.PodSandboxConfig
    created_at: int
    ip: str
    ip_int: int | None
    ready: bool = True


@dataclass(slots=True)
class _Container:
    id: str
    sandbox_id: str
    config: pb.ContainerConfig
    image_ref: str
    log_file: str | None
    created_at: int
    state: int = pb.CONTAINER_CREATED
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    usage: _Usage | None = None


@dataclass(slots=True)
class _ImageRecord:
    name: str
    id: str
    size: int


@dataclass
class FakeRuntime:
    """One node's fake runtime. See the module docstring for the semantics.

    ``clock`` returns seconds since the epoch (inject a fake clock in tests).
    """

    pod_cidr: str = "10.244.0.0/24"
    images: Iterable[str] = DEFAULT_IMAGES
    pullable: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.time
    exec_handler: ExecHandler | None = None
    image_size: int = 1_000_000

    def __post_init__(self) -> None:
        self.pullable = {normalize_image(name) for name in self.pullable}
        self._images: dict[str, _ImageRecord] = {}
        for name in self.images:
            self.add_image(name)
        net = ipaddress.ip_network(self.pod_cidr)
        self._net_first = int(net.network_address) + 2  # .1 is the bridge gateway
        self._net_last = int(net.broadcast_address) - 1
        self._next_ip = self._net_first
        self._used_ips: set[int] = set()
        self.sandboxes: dict[str, _Sandbox] = {}
        self.containers: dict[str, _Container] = {}
        self._by_uid: dict[str, str] = {}  # pod uid -> newest sandbox id
        self._pod_usage: dict[str, _Usage] = {}
        self._exec_results: dict[str, ExecResult] = {}
        self._ids = itertools.count(1)
        self.calls: Counter[str] = Counter()  # RPC name -> number of calls
        self.streaming: StreamServer | None = None  # exec/attach sessions, started on first use

    # ---------------------------------------------------------------------------------------
    # test controls

    def add_image(self, name: str) -> None:
        """Make an image present."""
        full = normalize_image(name)
        self._images[full] = _ImageRecord(full, _image_id(full), self.image_size)

    def has_image(self, name: str) -> bool:
        return normalize_image(name) in self._images

    def exit_container(self, container_id: str, code: int, reason: str | None = None) -> None:
        """Make a running container exit with ``code`` (reason Completed/Error unless given)."""
        c = self._container(container_id)
        if c.state != pb.CONTAINER_RUNNING:
            raise ValueError(f"container {container_id} is not running")
        self._finish(c, code, reason)

    def set_usage(self, target: str, cpu_millicores: int, memory_bytes: int) -> None:
        """Set the load of a container (by id) or a pod (by uid).

        A container without its own usage gets an even share of its pod's among the pod's
        running containers.
        """
        now = self.clock()
        if target in self.containers:
            c = self.containers[target]
            if c.usage is None:
                c.usage = _Usage(since=now, running=c.state == pb.CONTAINER_RUNNING)
            usage = c.usage
        else:
            usage = self._pod_usage.setdefault(target, _Usage(since=now))
        usage.advance(now)
        usage.nano_cores = cpu_millicores * 1_000_000
        usage.memory_bytes = memory_bytes

    def set_exec_result(
        self, container_id: str, stdout: bytes = b"", stderr: bytes = b"", exit_code: int = 0
    ) -> None:
        """What ExecSync in this container returns from now on, whatever the command."""
        self._exec_results[container_id] = (exit_code, stdout, stderr)

    def write_log(self, container_id: str, text: str, stream: str = "stdout") -> None:
        """Append ``text`` (lines) to the container's CRI log, as if the process wrote it."""
        self._log(self._container(container_id), text, stream)

    # ---------------------------------------------------------------------------------------
    # helpers

    def _now_ns(self) -> int:
        return int(self.clock() * 1e9)

    def _new_id(self) -> str:
        return hashlib.sha256(f"{id(self)}-{next(self._ids)}".encode()).hexdigest()

    def _sandbox(self, id: str) -> _Sandbox:
        try:
            return self.sandboxes[id]
        except KeyError:
            raise _not_found("sandbox", id) from None

    def _container(self, id: str) -> _Container:
        try:
            return self.containers[id]
        except KeyError:
            raise _not_found("container", id) from None

    def _allocate_ip(self) -> int:
        size = self._net_last - self._net_first + 1
        for offset in range(size):
            candidate = self._net_first + (self._next_ip - self._net_first + offset) % size
            if candidate not in self._used_ips:
                self._used_ips.add(candidate)
                self._next_ip = candidate + 1
                return candidate
        raise FakeError(
            grpc.StatusCode.UNKNOWN,
            f"failed to setup network for sandbox: no IP addresses available in {self.pod_cidr}",
        )

    def _finish(self, c: _Container, code: int, reason: str | None = None) -> None:
        now = self.clock()
        if c.usage is not None:
            c.usage.advance(now)
            c.usage.running = False
        c.state = pb.CONTAINER_EXITED
        c.finished_at = int(now * 1e9)
        c.exit_code = code
        c.reason = reason or ("Completed" if code == 0 else "Error")

    def _log(self, c: _Container, text: str, stream: str) -> None:
        if c.log_file is None or not text:
            return
        os.makedirs(os.path.dirname(c.log_file), exist_ok=True)
        with open(c.log_file, "a", encoding="utf-8") as f:
            f.write(format_output(self._now_ns(), stream, text))

    def _usage_of(self, c: _Container, now: float) -> tuple[int, int, int]:
        """(nano_cores, cumulative core-ns, memory bytes) for a container."""
        if c.usage is not None:
            c.usage.advance(now)
            rate = c.usage.nano_cores if c.usage.running else 0
            return rate, int(c.usage.cumulative_ns), c.usage.memory_bytes
        sandbox = self.sandboxes.get(c.sandbox_id)
        pod = self._pod_usage.get(sandbox.config.metadata.uid) if sandbox else None
        if pod is None or c.state != pb.CONTAINER_RUNNING:
            return 0, 0, 0
        pod.advance(now)
        n = sum(
            1
            for other in self.containers.values()
            if other.sandbox_id == c.sandbox_id and other.state == pb.CONTAINER_RUNNING
        )
        return pod.nano_cores // n, int(pod.cumulative_ns) // n, pod.memory_bytes // n

    def _container_stats(self, c: _Container, now: float) -> pb.ContainerStats:
        rate, total, memory = self._usage_of(c, now)
        ts = int(now * 1e9)
        return pb.ContainerStats(
            attributes=pb.ContainerAttributes(
                id=c.id,
                metadata=c.config.metadata,
                labels=c.config.labels,
                annotations=c.config.annotations,
            ),
            cpu=pb.CpuUsage(
                timestamp=ts,
                usage_core_nano_seconds=pb.UInt64Value(value=total),
                usage_nano_cores=pb.UInt64Value(value=rate),
            ),
            memory=pb.MemoryUsage(
                timestamp=ts,
                working_set_bytes=pb.UInt64Value(value=memory),
                usage_bytes=pb.UInt64Value(value=memory),
                rss_bytes=pb.UInt64Value(value=memory),
            ),
            writable_layer=pb.FilesystemUsage(
                timestamp=ts,
                fs_id=pb.FilesystemIdentifier(mountpoint="/var/lib/tugboat-fake"),
                used_bytes=pb.UInt64Value(value=4096),
                inodes_used=pb.UInt64Value(value=1),
            ),
        )

    def _sandbox_stats(self, s: _Sandbox, now: float) -> pb.PodSandboxStats:
        containers = [
            self._container_stats(c, now) for c in self.containers.values() if c.sandbox_id == s.id
        ]
        pod = self._pod_usage.get(s.config.metadata.uid)
        if pod is not None:
            pod.advance(now)
            rate = pod.nano_cores if s.ready else 0
            total, memory = int(pod.cumulative_ns), pod.memory_bytes
        else:
            rate = sum(cs.cpu.usage_nano_cores.value for cs in containers)
            total = sum(cs.cpu.usage_core_nano_seconds.value for cs in containers)
            memory = sum(cs.memory.working_set_bytes.value for cs in containers)
        ts = int(now * 1e9)
        return pb.PodSandboxStats(
            attributes=pb.PodSandboxAttributes(
                id=s.id,
                metadata=s.config.metadata,
                labels=s.config.labels,
                annotations=s.config.annotations,
            ),
            linux=pb.LinuxPodSandboxStats(
                cpu=pb.CpuUsage(
                    timestamp=ts,
                    usage_core_nano_seconds=pb.UInt64Value(value=total),
                    usage_nano_cores=pb.UInt64Value(value=rate),
                ),
                memory=pb.MemoryUsage(
                    timestamp=ts,
                    working_set_bytes=pb.UInt64Value(value=memory),
                    usage_bytes=pb.UInt64Value(value=memory),
                ),
                containers=containers,
            ),
        )

    @staticmethod
    def _labels_match(labels: Any, selector: Any) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    # ---------------------------------------------------------------------------------------
    # RuntimeService

    def Version(self, req: pb.VersionRequest) -> pb.VersionResponse:
        return pb.VersionResponse(
            version="0.1.0",
            runtime_name=RUNTIME_NAME,
            runtime_version=RUNTIME_VERSION,
            runtime_api_version="v1",
        )

    def Status(self, req: pb.StatusRequest) -> pb.StatusResponse:
        ready = [pb.RuntimeCondition(type=t, status=True) for t in ("RuntimeReady", "NetworkReady")]
        return pb.StatusResponse(status=pb.RuntimeStatus(conditions=ready))

    def RunPodSandbox(self, req: pb.RunPodSandboxRequest) -> pb.RunPodSandboxResponse:
        cfg = req.config
        if not cfg.metadata.name or not cfg.metadata.uid:
            raise FakeError(grpc.StatusCode.INVALID_ARGUMENT, "sandbox metadata name/uid required")
        host_net = (
            cfg.linux.security_context.namespace_options.network == pb.NODE
            if cfg.HasField("linux")
            else False
        )
        ip_int = None if host_net else self._allocate_ip()
        ip = "" if ip_int is None else str(ipaddress.ip_address(ip_int))
        sandbox = _Sandbox(self._new_id(), cfg, self._now_ns(), ip, ip_int)
        self.sandboxes[sandbox.id] = sandbox
        self._by_uid[cfg.metadata.uid] = sandbox.id
        return pb.RunPodSandboxResponse(pod_sandbox_id=sandbox.id)

    def StopPodSandbox(self, req: pb.StopPodSandboxRequest) -> pb.StopPodSandboxResponse:
        s = self._sandbox(req.pod_sandbox_id)
        for c in self.containers.values():
            if c.sandbox_id == s.id and c.state == pb.CONTAINER_RUNNING:
                self._finish(c, 137, "Error")
        if s.ip_int is not None:
            self._used_ips.discard(s.ip_int)
            s.ip_int = None
        s.ready = False
        return pb.StopPodSandboxResponse()

    def RemovePodSandbox(self, req: pb.RemovePodSandboxRequest) -> pb.RemovePodSandboxResponse:
        s = self.sandboxes.get(req.pod_sandbox_id)
        if s is None:
            return pb.RemovePodSandboxResponse()
        self.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=s.id))
        for cid in [c.id for c in self.containers.values() if c.sandbox_id == s.id]:
            self._exec_results.pop(cid, None)
            del self.containers[cid]
        del self.sandboxes[s.id]
        uid = s.config.metadata.uid
        if self._by_uid.get(uid) == s.id:
            del self._by_uid[uid]
            self._pod_usage.pop(uid, None)
        return pb.RemovePodSandboxResponse()

    def PodSandboxStatus(self, req: pb.PodSandboxStatusRequest) -> pb.PodSandboxStatusResponse:
        s = self._sandbox(req.pod_sandbox_id)
        ns = (
            s.config.linux.security_context.namespace_options
            if s.config.HasField("linux")
            else pb.NamespaceOption()
        )
        status = pb.PodSandboxStatus(
            id=s.id,
            metadata=s.config.metadata,
            state=pb.SANDBOX_READY if s.ready else pb.SANDBOX_NOTREADY,
            created_at=s.created_at,
            network=pb.PodSandboxNetworkStatus(ip=s.ip),
            linux=pb.LinuxPodSandboxStatus(namespaces=pb.Namespace(options=ns)),
            labels=s.config.labels,
            annotations=s.config.annotations,
        )
        info = {}
        if req.verbose:  # containerd's shape: {"info": JSON with the sandbox config}
            config = {"linux": {"cgroup_parent": s.config.linux.cgroup_parent}}
            info["info"] = json.dumps({"config": config})
        return pb.PodSandboxStatusResponse(status=status, info=info)

    def ListPodSandbox(self, req: pb.ListPodSandboxRequest) -> pb.ListPodSandboxResponse:
        f = req.filter
        items = []
        for s in self.sandboxes.values():
            state = pb.SANDBOX_READY if s.ready else pb.SANDBOX_NOTREADY
            if f.id and s.id != f.id:
                continue
            if f.HasField("state") and f.state.state != state:
                continue
            if not self._labels_match(s.config.labels, f.label_selector):
                continue
            items.append(
                pb.PodSandbox(
                    id=s.id,
                    metadata=s.config.metadata,
                    state=state,
                    created_at=s.created_at,
                    labels=s.config.labels,
                    annotations=s.config.annotations,
                )
            )
        return pb.ListPodSandboxResponse(items=items)

    def CreateContainer(self, req: pb.CreateContainerRequest) -> pb.CreateContainerResponse:
        s = self._sandbox(req.pod_sandbox_id)
        if not s.ready:
            raise FakeError(grpc.StatusCode.FAILED_PRECONDITION, f"sandbox {s.id} is not ready")
        cfg = req.config
        if not cfg.metadata.name:
            raise FakeError(grpc.StatusCode.INVALID_ARGUMENT, "container metadata name required")
        image = self._images.get(normalize_image(cfg.image.image or "-"))
        if image is None:
            raise FakeError(
                grpc.StatusCode.NOT_FOUND,
                f"failed to get image {cfg.image.image!r}: not found",
            )
        log_file = None
        if s.config.log_directory and cfg.log_path:
            log_file = os.path.join(s.config.log_directory, cfg.log_path)
        c = _Container(self._new_id(), s.id, cfg, image.id, log_file, self._now_ns())
        self.containers[c.id] = c
        return pb.CreateContainerResponse(container_id=c.id)

    def StartContainer(self, req: pb.StartContainerRequest) -> pb.StartContainerResponse:
        c = self._container(req.container_id)
        if c.state != pb.CONTAINER_CREATED:
            raise FakeError(
                grpc.StatusCode.FAILED_PRECONDITION, f"container {c.id} is not in created state"
            )
        if not self.sandboxes[c.sandbox_id].ready:
            raise FakeError(grpc.StatusCode.FAILED_PRECONDITION, "sandbox is not ready")
        now = self.clock()
        c.state = pb.CONTAINER_RUNNING
        c.started_at = int(now * 1e9)
        if c.usage is not None:
            c.usage.since, c.usage.running = now, True
        if c.log_file is not None:
            Path(c.log_file).parent.mkdir(parents=True, exist_ok=True)
            Path(c.log_file).touch()
        result = interpret(list(c.config.command) + list(c.config.args))
        if result is not None:
            code, stdout, stderr = result
            self._log(c, stdout.decode(errors="replace"), "stdout")
            self._log(c, stderr.decode(errors="replace"), "stderr")
            self._finish(c, code)
        return pb.StartContainerResponse()

    def StopContainer(self, req: pb.StopContainerRequest) -> pb.StopContainerResponse:
        c = self._container(req.container_id)
        if c.state == pb.CONTAINER_RUNNING:
            self._finish(c, 0)
        elif c.state == pb.CONTAINER_CREATED:
            self._finish(c, 0, "Completed")
        return pb.StopContainerResponse()

    def RemoveContainer(self, req: pb.RemoveContainerRequest) -> pb.RemoveContainerResponse:
        self.containers.pop(req.container_id, None)
        self._exec_results.pop(req.container_id, None)
        return pb.RemoveContainerResponse()

    def _container_message(self, c: _Container) -> pb.Container:
        return pb.Container(
            id=c.id,
            pod_sandbox_id=c.sandbox_id,
            metadata=c.config.metadata,
            image=c.config.image,
            image_ref=c.image_ref,
            state=c.state,  # type: ignore[arg-type]
            created_at=c.created_at,
            labels=c.config.labels,
            annotations=c.config.annotations,
        )

    def ListContainers(self, req: pb.ListContainersRequest) -> pb.ListContainersResponse:
        f = req.filter
        out = []
        for c in self.containers.values():
            if f.id and c.id != f.id:
                continue
            if f.pod_sandbox_id and c.sandbox_id != f.pod_sandbox_id:
                continue
            if f.HasField("state") and f.state.state != c.state:
                continue
            if not self._labels_match(c.config.labels, f.label_selector):
                continue
            out.append(self._container_message(c))
        return pb.ListContainersResponse(containers=out)

    def ContainerStatus(self, req: pb.ContainerStatusRequest) -> pb.ContainerStatusResponse:
        c = self._container(req.container_id)
        status = pb.ContainerStatus(
            id=c.id,
            metadata=c.config.metadata,
            state=c.state,  # type: ignore[arg-type]
            created_at=c.created_at,
            started_at=c.started_at,
            finished_at=c.finished_at,
            exit_code=c.exit_code,
            image=c.config.image,
            image_ref=c.image_ref,
            reason=c.reason,
            message=c.message,
            labels=c.config.labels,
            annotations=c.config.annotations,
            mounts=c.config.mounts,
            log_path=c.log_file or "",
            resources=pb.ContainerResources(linux=c.config.linux.resources),
        )
        return pb.ContainerStatusResponse(status=status)

    def UpdateContainerResources(
        self, req: pb.UpdateContainerResourcesRequest
    ) -> pb.UpdateContainerResourcesResponse:
        c = self._container(req.container_id)
        c.config.linux.resources.CopyFrom(req.linux)
        return pb.UpdateContainerResourcesResponse()

    def ReopenContainerLog(
        self, req: pb.ReopenContainerLogRequest
    ) -> pb.ReopenContainerLogResponse:
        c = self._container(req.container_id)
        if c.state != pb.CONTAINER_RUNNING:
            raise FakeError(grpc.StatusCode.FAILED_PRECONDITION, "container is not running")
        return pb.ReopenContainerLogResponse()

    def ExecSync(self, req: pb.ExecSyncRequest) -> pb.ExecSyncResponse:
        c = self._container(req.container_id)
        if c.state != pb.CONTAINER_RUNNING:
            raise FakeError(grpc.StatusCode.FAILED_PRECONDITION, f"container {c.id} is not running")
        result = self._exec_results.get(c.id)
        if result is None and self.exec_handler is not None:
            result = self.exec_handler(c.id, list(req.cmd))
        if result is None:
            result = interpret(list(req.cmd)) or (0, b"", b"")
        code, stdout, stderr = result
        return pb.ExecSyncResponse(stdout=stdout, stderr=stderr, exit_code=code)

    def Exec(self, req: pb.ExecRequest) -> pb.ExecResponse:
        self._container(req.container_id)
        return pb.ExecResponse(url=self._streams().url("exec", req))

    def Attach(self, req: pb.AttachRequest) -> pb.AttachResponse:
        self._container(req.container_id)
        return pb.AttachResponse(url=self._streams().url("attach", req))

    def _streams(self) -> StreamServer:
        if self.streaming is None:
            self.streaming = StreamServer(self)
        return self.streaming

    def PortForward(self, req: pb.PortForwardRequest) -> pb.PortForwardResponse:
        self._sandbox(req.pod_sandbox_id)
        return pb.PortForwardResponse(url=f"fake://portforward/{req.pod_sandbox_id}")

    def ContainerStats(self, req: pb.ContainerStatsRequest) -> pb.ContainerStatsResponse:
        c = self._container(req.container_id)
        return pb.ContainerStatsResponse(stats=self._container_stats(c, self.clock()))

    def ListContainerStats(
        self, req: pb.ListContainerStatsRequest
    ) -> pb.ListContainerStatsResponse:
        f, now = req.filter, self.clock()
        stats = [
            self._container_stats(c, now)
            for c in self.containers.values()
            if (not f.id or c.id == f.id)
            and (not f.pod_sandbox_id or c.sandbox_id == f.pod_sandbox_id)
            and self._labels_match(c.config.labels, f.label_selector)
        ]
        return pb.ListContainerStatsResponse(stats=stats)

    def PodSandboxStats(self, req: pb.PodSandboxStatsRequest) -> pb.PodSandboxStatsResponse:
        s = self._sandbox(req.pod_sandbox_id)
        return pb.PodSandboxStatsResponse(stats=self._sandbox_stats(s, self.clock()))

    def ListPodSandboxStats(
        self, req: pb.ListPodSandboxStatsRequest
    ) -> pb.ListPodSandboxStatsResponse:
        f, now = req.filter, self.clock()
        stats = [
            self._sandbox_stats(s, now)
            for s in self.sandboxes.values()
            if (not f.id or s.id == f.id) and self._labels_match(s.config.labels, f.label_selector)
        ]
        return pb.ListPodSandboxStatsResponse(stats=stats)

    # ---------------------------------------------------------------------------------------
    # ImageService

    def _image_message(self, rec: _ImageRecord) -> pb.Image:
        return pb.Image(
            id=rec.id,
            repo_tags=[rec.name],
            size=rec.size,
            spec=pb.ImageSpec(image=rec.name),
        )

    def _lookup_image(self, ref: str) -> _ImageRecord | None:
        if ref.startswith("sha256:"):
            return next((r for r in self._images.values() if r.id == ref), None)
        return self._images.get(normalize_image(ref))

    def ListImages(self, req: pb.ListImagesRequest) -> pb.ListImagesResponse:
        return pb.ListImagesResponse(images=[self._image_message(r) for r in self._images.values()])

    def ImageStatus(self, req: pb.ImageStatusRequest) -> pb.ImageStatusResponse:
        rec = self._lookup_image(req.image.image) if req.image.image else None
        return pb.ImageStatusResponse(image=self._image_message(rec) if rec else None)

    def PullImage(self, req: pb.PullImageRequest) -> pb.PullImageResponse:
        name = normalize_image(req.image.image)
        if name not in self.pullable:
            raise FakeError(
                grpc.StatusCode.NOT_FOUND,
                f'failed to pull and unpack image "{name}": failed to resolve reference '
                f'"{name}": {name}: not found',
            )
        self.add_image(name)
        return pb.PullImageResponse(image_ref=self._images[name].id)

    def RemoveImage(self, req: pb.RemoveImageRequest) -> pb.RemoveImageResponse:
        rec = self._lookup_image(req.image.image)
        if rec is not None:
            del self._images[rec.name]
        return pb.RemoveImageResponse()

    def ImageFsInfo(self, req: pb.ImageFsInfoRequest) -> pb.ImageFsInfoResponse:
        used = sum(r.size for r in self._images.values())
        usage = pb.FilesystemUsage(
            timestamp=self._now_ns(),
            fs_id=pb.FilesystemIdentifier(mountpoint="/var/lib/tugboat-fake/images"),
            used_bytes=pb.UInt64Value(value=used),
            inodes_used=pb.UInt64Value(value=len(self._images)),
        )
        return pb.ImageFsInfoResponse(image_filesystems=[usage])


# ------------------------------------------------------------------------------------------
# gRPC server


class FakeServer:
    """Serves :class:`FakeRuntime` instances over gRPC, one per node name.

    ``await server.start("unix:///tmp/x.sock")`` (or ``"127.0.0.1:0"``) returns the endpoint to
    give to a client. Usable as ``async with FakeServer(...) as server``; then
    ``server.endpoint``.
    """

    def __init__(self, runtime: FakeRuntime | None = None, address: str = "127.0.0.1:0") -> None:
        self.runtimes: dict[str, FakeRuntime] = {}
        if runtime is not None:
            self.runtimes[""] = runtime
        self.address = address
        self.endpoint = ""
        self._server: grpc.aio.Server | None = None

    def add(self, node: str, runtime: FakeRuntime) -> FakeRuntime:
        """Serve ``runtime`` to clients created with ``node=node``."""
        self.runtimes[node] = runtime
        return runtime

    def remove(self, node: str) -> None:
        self.runtimes.pop(node, None)

    def _runtime_for(self, context: grpc.aio.ServicerContext) -> FakeRuntime:
        node = ""
        for key, value in context.invocation_metadata() or ():
            if key == NODE_METADATA_KEY:
                node = value if isinstance(value, str) else value.decode()
        runtime = self.runtimes.get(node)
        if runtime is None:
            raise FakeError(grpc.StatusCode.UNAVAILABLE, f"no fake runtime for node {node!r}")
        return runtime

    def _handler(self, service: str) -> grpc.GenericRpcHandler:
        descriptor = pb.DESCRIPTOR.services_by_name[service]
        handlers = {}
        for method in descriptor.methods:
            if not hasattr(FakeRuntime, method.name):
                raise TypeError(f"FakeRuntime does not implement {service}.{method.name}")
            request_cls = getattr(pb, method.input_type.name)
            response_cls = getattr(pb, method.output_type.name)
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                self._make_call(method.name),
                request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(descriptor.full_name, handlers)

    def _make_call(self, name: str) -> Callable[..., Any]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                runtime = self._runtime_for(context)
                runtime.calls[name] += 1
                return getattr(runtime, name)(request)
            except FakeError as err:
                await context.abort(err.code, err.message)

        return call

    async def start(self, address: str | None = None) -> str:
        """Start serving; returns the client endpoint (``unix://...`` or ``host:port``)."""
        address = address or self.address
        path = socket_path(address)
        if path is not None and os.path.exists(path):
            os.unlink(path)
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (self._handler("RuntimeService"), self._handler("ImageService"))
        )
        port = server.add_insecure_port(address if path is None else f"unix://{path}")
        await server.start()
        self._server = server
        if path is not None:
            self.endpoint = f"unix://{path}"
        else:
            self.endpoint = f"{address.rsplit(':', 1)[0]}:{port}"
        return self.endpoint

    async def stop(self, grace: float | None = None) -> None:
        for runtime in self.runtimes.values():
            if runtime.streaming is not None:
                runtime.streaming.close()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        path = socket_path(self.endpoint)
        if path is not None and os.path.exists(path):
            os.unlink(path)

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class ThreadedFakeServer:
    """A :class:`FakeServer` on its own event loop in a daemon thread, for blocking clients
    (``RuntimeClient``) and code without an event loop. Use as a context manager."""

    def __init__(self, server: FakeServer, address: str | None = None) -> None:
        self.server = server
        self.address = address
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-cri", daemon=True)

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def start(self) -> str:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.server.start(self.address), self._loop)
        return future.result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def __enter__(self) -> ThreadedFakeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
