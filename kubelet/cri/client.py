"""CRI v1 clients: :class:`AsyncRuntimeClient` (grpc.aio, for the node agent) and
:class:`RuntimeClient` (blocking, for scripts and the CLI).

Contracts shared by both:

- Every call carries a deadline: ``timeout`` seconds by default; ``stop_container`` and
  ``exec_sync`` add their own timeout to it, ``pull_image`` uses ``pull_timeout``.
- Failures raise :class:`~kubelet.cri.errors.CriError` subclasses; a missing socket or a dead
  runtime raises :class:`~kubelet.cri.errors.RuntimeUnavailable` at once (calls are fail-fast).
- Image names are normalised to fully qualified references before they are sent.
  :meth:`ensure_image` never pulls an image that ``ImageStatus`` reports present (containerd
  would go to the registry anyway, which fails offline).
- Methods return protobuf messages from :mod:`kubelet.cri.api_pb2` (or a plain id/url string).
- ``node`` (optional) is sent as gRPC metadata ``tugboat-node``: a shared fake runtime serves
  that node's state; real runtimes ignore it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import grpc.aio

from . import api_pb2 as pb
from . import api_pb2_grpc as pb_grpc
from .errors import from_rpc_error
from .names import normalize_image

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"
NODE_METADATA_KEY = "tugboat-node"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # gRPC shares connections to one address between all channels of a process by default.
    # A channel of ours owns its own: a new client then connects afresh instead of inheriting
    # another channel's failed connection (and its reconnect back-off) to an earlier runtime
    # that served the same address.
    ("grpc.use_local_subchannel_pool", 1),
]


def socket_path(endpoint: str) -> str | None:
    """The filesystem path of a ``unix://`` endpoint, else ``None``."""
    if endpoint.startswith("unix://"):
        return endpoint[len("unix://") :]
    if endpoint.startswith("unix:"):
        return endpoint[len("unix:") :]
    return None


def _target(endpoint: str) -> str:
    path = socket_path(endpoint)
    if path is not None:
        return f"unix://{path}" if path.startswith("/") else f"unix:{path}"
    return endpoint


# --------------------------------------------------------------------------------------------
# Request builders shared by both clients


def _image_spec(image: str) -> pb.ImageSpec:
    return pb.ImageSpec(image=normalize_image(image))


def _sandbox_filter(
    id: str | None, state: int | None, labels: Mapping[str, str] | None
) -> pb.PodSandboxFilter | None:
    if id is None and state is None and not labels:
        return None
    f = pb.PodSandboxFilter(id=id or "", label_selector=dict(labels or {}))
    if state is not None:
        f.state.state = state  # type: ignore[assignment]
    return f


def _container_filter(
    id: str | None,
    pod_sandbox_id: str | None,
    state: int | None,
    labels: Mapping[str, str] | None,
) -> pb.ContainerFilter | None:
    if id is None and pod_sandbox_id is None and state is None and not labels:
        return None
    f = pb.ContainerFilter(
        id=id or "", pod_sandbox_id=pod_sandbox_id or "", label_selector=dict(labels or {})
    )
    if state is not None:
        f.state.state = state  # type: ignore[assignment]
    return f


def _stats_filter(
    id: str | None, pod_sandbox_id: str | None, labels: Mapping[str, str] | None
) -> pb.ContainerStatsFilter:
    return pb.ContainerStatsFilter(
        id=id or "", pod_sandbox_id=pod_sandbox_id or "", label_selector=dict(labels or {})
    )


class _Base:
    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: float = 30.0,
        *,
        pull_timeout: float = 300.0,
        node: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.pull_timeout = pull_timeout
        self._metadata: tuple[tuple[str, str], ...] = ((NODE_METADATA_KEY, node),) if node else ()

    def _error(self, method: str, err: grpc.RpcError) -> Exception:
        cri_err = from_rpc_error(method, err, self.endpoint)
        path = socket_path(self.endpoint)
        if path is not None and not os.path.exists(path):
            cri_err.details = f"socket {path} does not exist ({cri_err.details})"
            cri_err.args = (f"{method}: {cri_err.code.name}: {cri_err.details}",)
        return cri_err


# --------------------------------------------------------------------------------------------
# asyncio client


class AsyncRuntimeClient(_Base):
    """CRI client for asyncio code. Use as ``async with`` or call :meth:`close`.

    The channel is created lazily on the first call, in the running event loop.
    """

    _channel: grpc.aio.Channel | None = None

    def _stubs(self) -> tuple[pb_grpc.RuntimeServiceStub, pb_grpc.ImageServiceStub]:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(
                _target(self.endpoint), options=_CHANNEL_OPTIONS
            )
            self._runtime = pb_grpc.RuntimeServiceStub(self._channel)
            self._images = pb_grpc.ImageServiceStub(self._channel)
        return self._runtime, self._images

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def __aenter__(self) -> AsyncRuntimeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(
        self, service: str, method: str, request: Any, timeout: float | None = None
    ) -> Any:
        runtime, images = self._stubs()
        stub = runtime if service == "runtime" else images
        try:
            return await getattr(stub, method)(
                request, timeout=timeout or self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as err:
            raise self._error(method, err) from None

    # identity and health

    async def version(self) -> pb.VersionResponse:
        return await self._call("runtime", "Version", pb.VersionRequest(version="v1"))

    async def status(self, verbose: bool = False) -> pb.StatusResponse:
        return await self._call("runtime", "Status", pb.StatusRequest(verbose=verbose))

    # sandboxes

    async def run_pod_sandbox(self, config: pb.PodSandboxConfig, runtime_handler: str = "") -> str:
        """Create and start a sandbox; returns its id."""
        req = pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        return (await self._call("runtime", "RunPodSandbox", req)).pod_sandbox_id

    async def stop_pod_sandbox(self, pod_sandbox_id: str) -> None:
        req = pb.StopPodSandboxRequest(pod_sandbox_id=pod_sandbox_id)
        await self._call("runtime", "StopPodSandbox", req)

    async def remove_pod_sandbox(self, pod_sandbox_id: str) -> None:
        req = pb.RemovePodSandboxRequest(pod_sandbox_id=pod_sandbox_id)
        await self._call("runtime", "RemovePodSandbox", req)

    async def pod_sandbox_status(self, pod_sandbox_id: str) -> pb.PodSandboxStatus:
        req = pb.PodSandboxStatusRequest(pod_sandbox_id=pod_sandbox_id)
        return (await self._call("runtime", "PodSandboxStatus", req)).status

    async def pod_sandbox_info(self, pod_sandbox_id: str) -> dict[str, str]:
        """The runtime's verbose status info (containerd: key ``info``, JSON with the config)."""
        req = pb.PodSandboxStatusRequest(pod_sandbox_id=pod_sandbox_id, verbose=True)
        return dict((await self._call("runtime", "PodSandboxStatus", req)).info)

    async def list_pod_sandbox(
        self,
        *,
        id: str | None = None,
        state: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[pb.PodSandbox]:
        req = pb.ListPodSandboxRequest(filter=_sandbox_filter(id, state, labels))
        return list((await self._call("runtime", "ListPodSandbox", req)).items)

    # containers

    async def create_container(
        self,
        pod_sandbox_id: str,
        config: pb.ContainerConfig,
        sandbox_config: pb.PodSandboxConfig,
    ) -> str:
        """Create a container in a ready sandbox; returns its id. The image must be present."""
        config.image.image = normalize_image(config.image.image)
        req = pb.CreateContainerRequest(
            pod_sandbox_id=pod_sandbox_id, config=config, sandbox_config=sandbox_config
        )
        return (await self._call("runtime", "CreateContainer", req)).container_id

    async def start_container(self, container_id: str) -> None:
        req = pb.StartContainerRequest(container_id=container_id)
        await self._call("runtime", "StartContainer", req)

    async def stop_container(self, container_id: str, timeout: int = 30) -> None:
        """Signal the container, SIGKILL after ``timeout`` seconds; returns once it exited."""
        req = pb.StopContainerRequest(container_id=container_id, timeout=timeout)
        await self._call("runtime", "StopContainer", req, self.timeout + timeout)

    async def remove_container(self, container_id: str) -> None:
        req = pb.RemoveContainerRequest(container_id=container_id)
        await self._call("runtime", "RemoveContainer", req)

    async def container_status(self, container_id: str) -> pb.ContainerStatus:
        req = pb.ContainerStatusRequest(container_id=container_id)
        return (await self._call("runtime", "ContainerStatus", req)).status

    async def list_containers(
        self,
        *,
        id: str | None = None,
        pod_sandbox_id: str | None = None,
        state: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[pb.Container]:
        req = pb.ListContainersRequest(filter=_container_filter(id, pod_sandbox_id, state, labels))
        return list((await self._call("runtime", "ListContainers", req)).containers)

    async def update_container_resources(
        self, container_id: str, resources: pb.LinuxContainerResources
    ) -> None:
        req = pb.UpdateContainerResourcesRequest(container_id=container_id, linux=resources)
        await self._call("runtime", "UpdateContainerResources", req)

    async def reopen_container_log(self, container_id: str) -> None:
        req = pb.ReopenContainerLogRequest(container_id=container_id)
        await self._call("runtime", "ReopenContainerLog", req)

    # exec and streaming

    async def exec_sync(
        self, container_id: str, cmd: Sequence[str], timeout: int = 0
    ) -> pb.ExecSyncResponse:
        """Run ``cmd`` in the container; ``timeout`` seconds (0: none, bounded by ``timeout``)."""
        req = pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout)
        return await self._call("runtime", "ExecSync", req, self.timeout + timeout)

    async def exec(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
    ) -> str:
        """The runtime's streaming URL for an exec (see :mod:`kubelet.streaming`)."""
        req = pb.ExecRequest(
            container_id=container_id,
            cmd=list(cmd),
            tty=tty,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr and not tty,
        )
        return (await self._call("runtime", "Exec", req)).url

    async def attach(
        self,
        container_id: str,
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
    ) -> str:
        """The runtime's streaming URL for attaching to the container's main process."""
        req = pb.AttachRequest(
            container_id=container_id,
            tty=tty,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr and not tty,
        )
        return (await self._call("runtime", "Attach", req)).url

    async def port_forward(self, pod_sandbox_id: str, ports: Sequence[int] = ()) -> str:
        req = pb.PortForwardRequest(pod_sandbox_id=pod_sandbox_id, port=list(ports))
        return (await self._call("runtime", "PortForward", req)).url

    # stats

    async def container_stats(self, container_id: str) -> pb.ContainerStats:
        req = pb.ContainerStatsRequest(container_id=container_id)
        return (await self._call("runtime", "ContainerStats", req)).stats

    async def list_container_stats(
        self,
        *,
        id: str | None = None,
        pod_sandbox_id: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[pb.ContainerStats]:
        req = pb.ListContainerStatsRequest(filter=_stats_filter(id, pod_sandbox_id, labels))
        return list((await self._call("runtime", "ListContainerStats", req)).stats)

    async def pod_sandbox_stats(self, pod_sandbox_id: str) -> pb.PodSandboxStats:
        req = pb.PodSandboxStatsRequest(pod_sandbox_id=pod_sandbox_id)
        return (await self._call("runtime", "PodSandboxStats", req)).stats

    async def list_pod_sandbox_stats(
        self, *, id: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[pb.PodSandboxStats]:
        flt = pb.PodSandboxStatsFilter(id=id or "", label_selector=dict(labels or {}))
        req = pb.ListPodSandboxStatsRequest(filter=flt)
        return list((await self._call("runtime", "ListPodSandboxStats", req)).stats)

    # images

    async def image_status(self, image: str) -> pb.Image | None:
        """The image if present, else ``None``."""
        req = pb.ImageStatusRequest(image=_image_spec(image))
        resp = await self._call("image", "ImageStatus", req)
        return resp.image if resp.HasField("image") else None

    async def list_images(self) -> list[pb.Image]:
        return list((await self._call("image", "ListImages", pb.ListImagesRequest())).images)

    async def pull_image(
        self,
        image: str,
        *,
        auth: pb.AuthConfig | None = None,
        sandbox_config: pb.PodSandboxConfig | None = None,
    ) -> str:
        """Pull unconditionally (prefer :meth:`ensure_image`); returns the image ref."""
        req = pb.PullImageRequest(
            image=_image_spec(image), auth=auth, sandbox_config=sandbox_config
        )
        return (await self._call("image", "PullImage", req, self.pull_timeout)).image_ref

    async def ensure_image(
        self,
        image: str,
        *,
        auth: pb.AuthConfig | None = None,
        sandbox_config: pb.PodSandboxConfig | None = None,
    ) -> str:
        """The image's id, pulling it only if ``ImageStatus`` says it is absent."""
        present = await self.image_status(image)
        if present is not None:
            return present.id
        return await self.pull_image(image, auth=auth, sandbox_config=sandbox_config)

    async def remove_image(self, image: str) -> None:
        req = pb.RemoveImageRequest(image=_image_spec(image))
        await self._call("image", "RemoveImage", req)

    async def image_fs_info(self) -> list[pb.FilesystemUsage]:
        resp = await self._call("image", "ImageFsInfo", pb.ImageFsInfoRequest())
        return list(resp.image_filesystems)


# --------------------------------------------------------------------------------------------
# blocking client


class RuntimeClient(_Base):
    """Blocking CRI client with the same methods as :class:`AsyncRuntimeClient`.

    Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: float = 30.0,
        *,
        pull_timeout: float = 300.0,
        node: str | None = None,
    ) -> None:
        super().__init__(endpoint, timeout, pull_timeout=pull_timeout, node=node)
        self._channel = grpc.insecure_channel(_target(endpoint), options=_CHANNEL_OPTIONS)
        self._runtime = pb_grpc.RuntimeServiceStub(self._channel)
        self._images = pb_grpc.ImageServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RuntimeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, service: str, method: str, request: Any, timeout: float | None = None) -> Any:
        stub = self._runtime if service == "runtime" else self._images
        try:
            return getattr(stub, method)(
                request, timeout=timeout or self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as err:
            raise self._error(method, err) from None

    def version(self) -> pb.VersionResponse:
        return self._call("runtime", "Version", pb.VersionRequest(version="v1"))

    def status(self, verbose: bool = False) -> pb.StatusResponse:
        return self._call("runtime", "Status", pb.StatusRequest(verbose=verbose))

    def run_pod_sandbox(self, config: pb.PodSandboxConfig, runtime_handler: str = "") -> str:
        req = pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        return self._call("runtime", "RunPodSandbox", req).pod_sandbox_id

    def stop_pod_sandbox(self, pod_sandbox_id: str) -> None:
        self._call(
            "runtime", "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_sandbox_id)
        )

    def remove_pod_sandbox(self, pod_sandbox_id: str) -> None:
        req = pb.RemovePodSandboxRequest(pod_sandbox_id=pod_sandbox_id)
        self._call("runtime", "RemovePodSandbox", req)

    def pod_sandbox_status(self, pod_sandbox_id: str) -> pb.PodSandboxStatus:
        req = pb.PodSandboxStatusRequest(pod_sandbox_id=pod_sandbox_id)
        return self._call("runtime", "PodSandboxStatus", req).status

    def pod_sandbox_info(self, pod_sandbox_id: str) -> dict[str, str]:
        req = pb.PodSandboxStatusRequest(pod_sandbox_id=pod_sandbox_id, verbose=True)
        return dict(self._call("runtime", "PodSandboxStatus", req).info)

    def list_pod_sandbox(
        self,
        *,
        id: str | None = None,
        state: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[pb.PodSandbox]:
        req = pb.ListPodSandboxRequest(filter=_sandbox_filter(id, state, labels))
        return list(self._call("runtime", "ListPodSandbox", req).items)

    def create_container(
        self,
        pod_sandbox_id: str,
        config: pb.ContainerConfig,
        sandbox_config: pb.PodSandboxConfig,
    ) -> str:
        config.image.image = normalize_image(config.image.image)
        req = pb.CreateContainerRequest(
            pod_sandbox_id=pod_sandbox_id, config=config, sandbox_config=sandbox_config
        )
        return self._call("runtime", "CreateContainer", req).container_id

    def start_container(self, container_id: str) -> None:
        self._call("runtime", "StartContainer", pb.StartContainerRequest(container_id=container_id))

    def stop_container(self, container_id: str, timeout: int = 30) -> None:
        req = pb.StopContainerRequest(container_id=container_id, timeout=timeout)
        self._call("runtime", "StopContainer", req, self.timeout + timeout)

    def remove_container(self, container_id: str) -> None:
        req = pb.RemoveContainerRequest(container_id=container_id)
        self._call("runtime", "RemoveContainer", req)

    def container_status(self, container_id: str) -> pb.ContainerStatus:
        req = pb.ContainerStatusRequest(container_id=container_id)
        return self._call("runtime", "ContainerStatus", req).status

    def list_containers(
        self,
        *,
        id: str | None = None,
        pod_sandbox_id: str | None = None,
        state: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[pb.Container]:
        req = pb.ListContainersRequest(filter=_container_filter(id, pod_sandbox_id, state, labels))
        return list(self._call("runtime", "ListContainers", req).containers)

    def update_container_resources(
        self, container_id: str, resources: pb.LinuxContainerResources
    ) -> None:
        req = pb.UpdateContainerResourcesRequest(container_id=container_id, linux=resources)
        self._call("runtime", "UpdateContainerResources", req)

    def reopen_container_log(self, container_id: str) -> None:
        req = pb.ReopenContainerLogRequest(container_id=container_id)
        self._call("runtime", "ReopenContainerLog", req)

    def exec_sync(
        self, container_id: str, cmd: Sequence[str], timeout: int = 0
    ) -> pb.ExecSyncResponse:
        req = pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout)
        return self._call("runtime", "ExecSync", req, self.timeout + timeout)

    def exec(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
    ) -> str:
        req = pb.ExecRequest(
            container_id=container_id,
            cmd=list(cmd),
            tty=tty,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr and not tty,
        )
        return self._call("runtime", "Exec", req).url

    def attach(self, container_id: str, *, tty: bool = False, stdin: bool = False) -> str:
        req = pb.AttachRequest(
            container_id=container_id, tty=tty, stdin=stdin, stdout=True, stderr=not tty
        )
        return self._call("runtime", "Attach", req).url

    def port_forward(self, pod_sandbox_id: str, ports: Sequence[int] = ()) -> str:
        req = pb.PortForwardRequest(pod_sandbox_id=pod_sandbox_id, port=list(ports))
        return self._call("runtime", "PortForward", req).url

    def container_stats(self, container_id: str) -> pb.ContainerStats:
        req = pb.ContainerStatsRequest(container_id=container_id)
        return self._call("runtime", "ContainerStats", req).stats

    def list_container_stats(
        self,
        *,
        id: str | None = None,
        pod_sandbox_id: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[pb.ContainerStats]:
        req = pb.ListContainerStatsRequest(filter=_stats_filter(id, pod_sandbox_id, labels))
        return list(self._call("runtime", "ListContainerStats", req).stats)

    def pod_sandbox_stats(self, pod_sandbox_id: str) -> pb.PodSandboxStats:
        req = pb.PodSandboxStatsRequest(pod_sandbox_id=pod_sandbox_id)
        return self._call("runtime", "PodSandboxStats", req).stats

    def list_pod_sandbox_stats(
        self, *, id: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[pb.PodSandboxStats]:
        flt = pb.PodSandboxStatsFilter(id=id or "", label_selector=dict(labels or {}))
        req = pb.ListPodSandboxStatsRequest(filter=flt)
        return list(self._call("runtime", "ListPodSandboxStats", req).stats)

    def image_status(self, image: str) -> pb.Image | None:
        resp = self._call("image", "ImageStatus", pb.ImageStatusRequest(image=_image_spec(image)))
        return resp.image if resp.HasField("image") else None

    def list_images(self) -> list[pb.Image]:
        return list(self._call("image", "ListImages", pb.ListImagesRequest()).images)

    def pull_image(self, image: str, *, auth: pb.AuthConfig | None = None) -> str:
        req = pb.PullImageRequest(image=_image_spec(image), auth=auth)
        return self._call("image", "PullImage", req, self.pull_timeout).image_ref

    def ensure_image(self, image: str, *, auth: pb.AuthConfig | None = None) -> str:
        present = self.image_status(image)
        if present is not None:
            return present.id
        return self.pull_image(image, auth=auth)

    def remove_image(self, image: str) -> None:
        self._call("image", "RemoveImage", pb.RemoveImageRequest(image=_image_spec(image)))

    def image_fs_info(self) -> list[pb.FilesystemUsage]:
        return list(self._call("image", "ImageFsInfo", pb.ImageFsInfoRequest()).image_filesystems)
