"""Exec and attach on the node agent's server, relayed over SPDY to the fake runtime's
streaming server (real gRPC, real remotecommand framing): streaming both ways, the end of
stdin, tty resize, attach, exit codes, and refusals worded as the kubelet's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
import websockets

from apiserver.proxy import refusal_status
from kubelet import labels as L
from kubelet.cri import api_pb2 as pb
from kubelet.cri.client import AsyncRuntimeClient
from kubelet.cri.fake import FakeRuntime, FakeServer
from kubelet.server import NodeServer, waiting_message
from kubelet.streaming import StreamError, Streams, open_session
from machinery import spdy
from tests.conftest import free_port
from tests.unit.test_spdy import pipes

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
SUCCESS = {"metadata": {}, "status": "Success"}


@dataclass
class Node:
    fake: FakeRuntime
    url: str  # ws://host:port
    cid: str  # the running container "main" of pod default/shell


def start_container(fake: FakeRuntime, uid: str, name: str) -> str:
    labels = L.pod_labels("shell", "default", uid, "n1")
    meta = pb.PodSandboxMetadata(name="shell", namespace="default", uid=uid)
    config = pb.PodSandboxConfig(metadata=meta, labels=labels)
    sandbox = fake.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id
    cfg = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image="busybox:1.35"),
        command=["sleep", "3600"],
        labels={**labels, L.CONTAINER_NAME: name},
    )
    request = pb.CreateContainerRequest(pod_sandbox_id=sandbox, config=cfg)
    cid = fake.CreateContainer(request).container_id
    fake.StartContainer(pb.StartContainerRequest(container_id=cid))
    return cid


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    fake = FakeRuntime()
    grpc_server = FakeServer(fake)
    runtime = AsyncRuntimeClient(await grpc_server.start())
    cid = start_container(fake, "u1", "main")
    pod = {
        "metadata": {"name": "shell", "namespace": "default", "uid": "u1"},
        "spec": {"containers": [{"name": "main"}, {"name": "idle"}]},
    }
    agent = SimpleNamespace(
        name="n1",
        runtime=runtime,
        sampler=None,
        find_pod=lambda ns, name: pod if (ns, name) == ("default", "shell") else None,
    )
    port = free_port()
    config = uvicorn.Config(
        NodeServer(agent).app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield Node(fake, f"ws://127.0.0.1:{port}", cid)
    server.should_exit = True
    await asyncio.wait_for(task, 10)
    await runtime.close()
    await grpc_server.stop()


async def frame(ws: Any) -> bytes:
    data = await asyncio.wait_for(ws.recv(), 10)
    return data if isinstance(data, bytes) else data.encode()


async def rest(ws: Any) -> list[bytes]:
    """Every frame until the server closes."""
    return [f async for f in ws]  # the close comes right after the status


async def eventually(check: Callable[[], Awaitable[Any] | Any], timeout: float = 10) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


async def test_stdin_streams_both_ways_and_its_end_ends_the_command(node: Node) -> None:
    path = "/exec/default/shell/main?command=cat&stdin=true&stdout=true&stderr=true"
    async with websockets.connect(node.url + path, subprotocols=[V5]) as ws:
        assert ws.subprotocol == V5
        await ws.send(b"\x00first\n")
        assert await frame(ws) == b"\x01first\n"  # echoed while the command still runs
        await ws.send(b"\x00second\n")
        assert await frame(ws) == b"\x01second\n"
        await ws.send(bytes([255, 0]))  # v5: close stdin; cat sees its end and exits
        frames = await asyncio.wait_for(rest(ws), 10)
    assert frames == [b"\x03" + json.dumps(SUCCESS).encode()]


@pytest.mark.parametrize("protocol", [V5, V4])
async def test_exec_without_stdin_relays_output_and_exit_code(node: Node, protocol: str) -> None:
    node.fake.set_exec_result(node.cid, stdout=b"out\n", stderr=b"err\n", exit_code=3)
    path = "/exec/default/shell/main?command=sh&command=-c&command=x&stdout=true&stderr=true"
    async with websockets.connect(node.url + path, subprotocols=[protocol]) as ws:
        assert ws.subprotocol == protocol
        frames = await asyncio.wait_for(rest(ws), 10)
    assert frames[:-1] in ([b"\x01out\n", b"\x02err\n"], [b"\x02err\n", b"\x01out\n"])
    status = json.loads(frames[-1][1:])
    assert frames[-1][0] == 3 and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


async def test_tty_resize_reaches_the_runtime(node: Node) -> None:
    path = "/exec/default/shell/main?command=cat&stdin=true&stdout=true&stderr=true&tty=true"
    async with websockets.connect(node.url + path, subprotocols=[V5]) as ws:
        await ws.send(b"\x04" + json.dumps({"Width": 120, "Height": 40}).encode())
        await ws.send(b"\x00typed")
        assert await frame(ws) == b"\x01typed"
        await ws.send(b"\x04" + json.dumps({"Width": 80, "Height": 24}).encode())
        sizes = node.fake.streaming.resizes  # type: ignore[union-attr]
        await eventually(lambda: sizes[node.cid] == [(120, 40), (80, 24)])
        await ws.send(bytes([255, 0]))
        frames = await asyncio.wait_for(rest(ws), 10)
    assert frames == [b"\x03" + json.dumps(SUCCESS).encode()]  # tty: no stderr stream


async def test_attach_sends_input_and_sees_output(node: Node) -> None:
    path = "/attach/default/shell/main?stdin=true&stdout=true&stderr=true"
    async with websockets.connect(node.url + path, subprotocols=[V5]) as ws:
        await ws.send(b"\x00echo attached\n")
        assert await frame(ws) == b"\x01echo attached\n"
        await ws.send(bytes([255, 0]))
        frames = await asyncio.wait_for(rest(ws), 10)
    assert frames == [b"\x03" + json.dumps(SUCCESS).encode()]


@pytest.mark.parametrize(
    ("path", "code", "text"),
    [
        ("/exec/default/ghost/main?command=ls", 500, 'container not found ("main")'),
        ("/exec/default/shell/idle?command=ls", 500, 'container not found ("idle")'),
        ("/exec/default/shell/nope?command=ls", 400, "container nope is not valid for pod shell"),
        ("/exec/default/shell/main", 400, "you must specify at least 1 command"),
        (
            "/exec/default/shell/main?command=ls&stdout=false&stderr=false",
            400,
            "you must specify at least 1 of stdin, stdout, stderr",
        ),
    ],
    ids=["unknown-pod", "not-running", "not-in-spec", "no-command", "no-streams"],
)
async def test_refusals_are_the_kubelets(node: Node, path: str, code: int, text: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(node.url + path, subprotocols=[V5]):
            pass
    assert refused.value.response.status_code == code
    assert refused.value.response.body == text.encode()


async def test_a_stopped_container_is_not_found(node: Node) -> None:
    node.fake.exit_container(node.cid, 0)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(node.url + "/exec/default/shell/main?command=ls"):
            pass
    assert refused.value.response.status_code == 500
    assert refused.value.response.body == b'container not found ("main")'


async def test_streaming_server_refusal_is_a_stream_error(node: Node) -> None:
    url = node.fake.Exec(pb.ExecRequest(container_id=node.cid, cmd=["ls"], stdout=True)).url
    base = url.rsplit("/", 1)[0]
    with pytest.raises(StreamError, match="unknown request token"):
        await open_session(base + "/t999", Streams(stderr=False))
    with pytest.raises(StreamError, match="unsupported streaming URL"):
        await open_session("fake://exec/x", Streams())


@pytest.mark.parametrize(
    ("body", "message", "reason"),
    [
        (
            b'container not found ("main")',
            'Internal error occurred: unable to upgrade connection: container not found ("main")',
            "InternalError",
        ),
        (
            json.dumps({"status": "Failure", "reason": "BadRequest", "message": "m"}).encode(),
            "m",
            "BadRequest",
        ),
    ],
    ids=["text", "status"],
)
def test_refusal_status_words_it_as_the_stream_translator(
    body: bytes, message: str, reason: str
) -> None:
    status = refusal_status(500 if reason == "InternalError" else 400, body)
    assert (status["kind"], status["message"], status["reason"]) == ("Status", message, reason)


async def test_a_client_without_window_updates_sends_nothing_while_reading() -> None:
    """What the node agent's session to containerd relies on (see machinery.spdy)."""
    client_end, server_end = pipes()
    accepted: asyncio.Queue[spdy.Stream] = asyncio.Queue()

    async def on_stream(stream: spdy.Stream) -> None:
        await accepted.put(stream)

    client = spdy.Session(client_end, client=True, window_updates=False)
    server = spdy.Session(server_end, client=False, on_stream=on_stream)
    tasks = [asyncio.create_task(client.run()), asyncio.create_task(server.run())]
    stream = await client.open_stream({"streamtype": "stdout"})
    remote = await asyncio.wait_for(accepted.get(), 5)
    await remote.write(b"x" * 200_000)
    received = b""
    while len(received) < 200_000:
        received += await asyncio.wait_for(stream.read(), 5)
    assert received == b"x" * 200_000
    assert [type(f) for f in client_end.frames] == [spdy.SynStream]
    await client.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)


@pytest.mark.parametrize(
    ("waiting", "words"),
    [
        (None, "ContainerCreating"),
        ("ContainerCreating", "ContainerCreating"),
        ("ErrImagePull", "image can't be pulled"),
        ("ImagePullBackOff", "trying and failing to pull image"),
        ("CreateContainerConfigError", "CreateContainerConfigError"),
    ],
)
def test_logs_of_a_container_not_started_say_why(waiting: str | None, words: str) -> None:
    state = {"waiting": {"reason": waiting}} if waiting else {}
    pod = {
        "metadata": {"name": "p"},
        "status": {"containerStatuses": [{"name": "c", "state": state}]},
    }
    assert waiting_message(pod, "c") == f'container "c" in pod "p" is waiting to start: {words}'
