"""``pods/portforward`` without containers: the API server's stream pairing, relay and error
stream against fake node agents, and the node agent's side with an injected dialer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.asyncio.server import ServerConnection, serve

from apiserver.portforward import AGENT_PROTOCOL, Forwarder
from cli.errors import CliError
from cli.verbs.portforward import PortPair, parse_ports, remote_port
from kubelet.cri import api_pb2 as pb
from kubelet.portforward import PortForwarder, dial
from machinery import spdy
from tests.conftest import free_port
from tests.unit.test_spdy import pipes

POD = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"}}


@dataclass
class Kubectl:
    """The client half of a session, talking to a :class:`Forwarder` over an in-memory pipe."""

    session: spdy.Session
    tasks: list[asyncio.Task[None]]
    request_id: int = 0

    async def connect(self, port: str) -> tuple[spdy.Stream, spdy.Stream]:
        """The error and data streams of one forwarded connection, as kubectl opens them."""
        headers = {"streamType": "error", "port": port, "requestID": str(self.request_id)}
        self.request_id += 1
        error = await self.session.open_stream(headers)
        await error.close()
        data = await self.session.open_stream({**headers, "streamType": "data"})
        return error, data


@pytest.fixture
async def kubectl_to(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    sessions: list[Kubectl] = []

    def start(agent: str) -> Kubectl:
        client_end, server_end = pipes()
        forwarder = Forwarder(POD, agent)
        server = spdy.Session(server_end, client=False, on_stream=forwarder.on_stream)
        client = spdy.Session(client_end, client=True)
        k = Kubectl(client, [asyncio.create_task(server.run()), asyncio.create_task(client.run())])
        sessions.append(k)
        return k

    yield start
    for k in sessions:
        await k.session.close()
        await asyncio.wait_for(asyncio.gather(*k.tasks), 5)


async def read_all(stream: spdy.Stream) -> bytes:
    out = b""
    while chunk := await asyncio.wait_for(stream.read(), 10):
        out += chunk
    return out


@pytest.fixture
async def fake_agent() -> AsyncIterator[tuple[str, list[str]]]:
    """A node agent speaking the inner protocol: port 1 fails, others echo upper-cased."""
    paths: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        paths.append(ws.request.path)
        if ws.request.path.endswith("port=1"):
            await ws.send("error forwarding port 1 to pod web, uid u1: connection refused")
            return
        async for message in ws:
            assert isinstance(message, bytes)
            await ws.send(message.upper())  # b"" (the client's EOF) echoes as our EOF
            if not message:
                break

    async with serve(handler, "127.0.0.1", 0, subprotocols=[AGENT_PROTOCOL]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"127.0.0.1:{port}", paths


async def test_data_is_relayed_with_half_close_and_the_error_stream_ends_empty(
    kubectl_to: Any, fake_agent: tuple[str, list[str]]
) -> None:
    address, paths = fake_agent
    k = kubectl_to(address)
    error, data = await k.connect("80")
    await data.write(b"hello")
    await data.close()
    assert await read_all(data) == b"HELLO"
    assert await read_all(error) == b""  # closed, no error
    assert paths == ["/portForward/default/web?port=80"]


async def test_two_connections_at_once_are_independent(
    kubectl_to: Any, fake_agent: tuple[str, list[str]]
) -> None:
    k = kubectl_to(fake_agent[0])
    (e1, d1), (e2, d2) = await k.connect("80"), await k.connect("8080")
    await d2.write(b"two")
    await d1.write(b"one")
    await d1.close()
    await d2.close()
    assert (await read_all(d1), await read_all(d2)) == (b"ONE", b"TWO")
    assert (await read_all(e1), await read_all(e2)) == (b"", b"")


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("1", "error forwarding port 1 to pod web, uid u1: connection refused"),
        ("http", 'invalid port "http"'),
        ("70000", 'invalid port "70000"'),
    ],
    ids=["agent-error-passed-through", "named-port", "out-of-range"],
)
async def test_errors_go_back_on_the_error_stream(
    kubectl_to: Any, fake_agent: tuple[str, list[str]], port: str, message: str
) -> None:
    k = kubectl_to(fake_agent[0])
    error, data = await k.connect(port)
    assert (await read_all(error)).decode() == message
    assert await read_all(data) == b""
    # the session survives: the next connection is served
    error, data = await k.connect("80")
    await data.write(b"again")
    await data.close()
    assert await read_all(data) == b"AGAIN"


async def test_an_unreachable_agent_is_an_error_on_the_stream(kubectl_to: Any) -> None:
    k = kubectl_to(f"127.0.0.1:{free_port()}")
    error, _ = await k.connect("80")
    assert (await read_all(error)).decode().startswith("error dialing node agent 127.0.0.1:")


# -- the node agent's side -----------------------------------------------------------------------


class Runtime:
    """Just enough CRI for :func:`kubelet.observe.observe`: one ready sandbox, no containers."""

    def __init__(self, ready: bool) -> None:
        self.ready = ready

    async def list_pod_sandbox(self, **_: Any) -> list[pb.PodSandbox]:
        state = pb.SANDBOX_READY if self.ready else pb.SANDBOX_NOTREADY
        return [pb.PodSandbox(id="s1", state=state, metadata=pb.PodSandboxMetadata())]

    async def pod_sandbox_status(self, _: str) -> pb.PodSandboxStatus:
        return pb.PodSandboxStatus(id="s1")

    async def list_containers(self, **_: Any) -> list[Any]:
        return []


@pytest.fixture
async def agent_server() -> AsyncIterator[Any]:
    """The agent's ``/portForward`` route on uvicorn; pods are host-network, dialled at will."""
    servers = []

    async def start(pods: dict[str, Any], ready: bool = True) -> str:
        agent = SimpleNamespace(
            name="n1",
            runtime=Runtime(ready),
            find_pod=lambda ns, name: pods.get(name),
        )
        forwarder = PortForwarder(agent, dialer=dial)
        app = Starlette(routes=[WebSocketRoute("/portForward/{namespace}/{pod}", forwarder.serve)])
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        while not server.started:
            await asyncio.sleep(0.01)
        return f"127.0.0.1:{port}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A TCP server on the node's loopback that answers with what it read, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"got " + await reader.read())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


HOST_POD = {**POD, "spec": {"hostNetwork": True}}


async def test_agent_relays_to_the_pod_port(
    kubectl_to: Any, agent_server: Any, echo_port: int
) -> None:
    k = kubectl_to(await agent_server({"web": HOST_POD}))
    error, data = await k.connect(str(echo_port))
    await data.write(b"x" * 200_000)
    await data.close()  # the pod sees EOF, answers, closes
    assert await read_all(data) == b"got " + b"x" * 200_000
    assert await read_all(error) == b""


@pytest.mark.parametrize(
    ("pods", "ready", "expected"),
    [
        ({}, True, 'uid : pods "web" not found'),
        ({"web": HOST_POD}, False, "uid u1: pod is not running"),
        (
            {"web": HOST_POD},
            True,
            "on the node, IPv4: dial tcp 127.0.0.1:{port}: connect: connection refused",
        ),
    ],
    ids=["no-such-pod", "not-running", "nothing-listening"],
)
async def test_agent_errors(
    kubectl_to: Any, agent_server: Any, pods: dict[str, Any], ready: bool, expected: str
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        k = kubectl_to(await agent_server(pods, ready))
        error, _ = await k.connect(str(port))
        text = (await read_all(error)).decode()
    assert text.startswith(f"error forwarding port {port} to pod web, ")
    assert expected.format(port=port) in text


# -- tug port-forward: port arguments ------------------------------------------------------------

WEB_POD = {
    "metadata": {"name": "web"},
    "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
}
SERVICE = {
    "metadata": {"name": "shop"},
    "spec": {"ports": [{"name": "web", "port": 80, "targetPort": "http"}, {"port": 90}]},
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("8080:80", (8080, "80")),
        ("80", (80, "80")),
        (":80", (0, "80")),
        ("9000:http", (9000, "http")),
    ],
    ids=["local-remote", "same", "any-local", "named"],
)
def test_parse_ports(spec: str, expected: tuple[int, str]) -> None:
    assert parse_ports([spec]) == [PortPair(*expected)]


@pytest.mark.parametrize(
    "spec", ["x:80", "8080:", "70000:80"], ids=["bad-local", "no-remote", "range"]
)
def test_parse_ports_errors(spec: str) -> None:
    with pytest.raises(CliError):
        parse_ports([spec])


@pytest.mark.parametrize(
    ("service", "remote", "expected"),
    [
        (None, "80", 80),
        (None, "http", 8080),
        (SERVICE, "80", 8080),  # Service port → named targetPort → containerPort
        (SERVICE, "web", 8080),
        (SERVICE, "90", 90),  # no targetPort: the port itself
    ],
    ids=["pod-number", "pod-name", "svc-port", "svc-port-name", "svc-default-target"],
)
def test_remote_port(service: dict[str, Any] | None, remote: str, expected: int) -> None:
    assert remote_port(WEB_POD, service, remote) == expected


@pytest.mark.parametrize(
    ("service", "remote", "message"),
    [
        (SERVICE, "81", "Service shop does not have a service port 81"),
        (None, "grpc", "Pod 'web' does not have a named port 'grpc'"),
    ],
    ids=["svc-unknown-port", "pod-unknown-name"],
)
def test_remote_port_errors(service: dict[str, Any] | None, remote: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        remote_port(WEB_POD, service, remote)
