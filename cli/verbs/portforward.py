"""``tug port-forward TARGET [LOCAL:]REMOTE ... [--address A]``: kubectl's protocol, in Python.

One WebSocket to ``pods/NAME/portforward`` with the subprotocol ``SPDY/3.1+portforward.k8s.io``
carries one SPDY/3.1 session (:mod:`machinery.spdy`); each accepted local connection opens an
``error`` stream (half-closed at once) and a ``data`` stream with the same ``port`` and
``requestID`` headers, exactly as kubectl does (see :mod:`apiserver.portforward`).

``TARGET`` is ``POD``, ``pod/NAME`` or a workload/Service (``deployment/NAME``, ``svc/NAME``:
its first running pod). For a Service, ``REMOTE`` is the Service port and is mapped to its
``targetPort``; a named port is looked up in the pod's container ports. Unlike kubectl 1.33,
which gives up the whole session after one failed connection, an error on one connection is
printed and the next connection is served; losing the session ends the command (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
from dataclasses import dataclass
from typing import Any

from cli.config import Session
from cli.errors import CliError
from cli.verbs.pods import pods_for, upgrade_error
from machinery import kinds, spdy

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
READ_SIZE = 32 * 1024


def register(sub: Any) -> None:
    p = sub.add_parser("port-forward", help="forward local ports to a pod")
    p.add_argument("target", metavar="TYPE/NAME")
    p.add_argument("ports", nargs="+", metavar="[LOCAL_PORT:]REMOTE_PORT")
    p.add_argument("--address", default="127.0.0.1", help="local addresses, comma-separated")
    p.set_defaults(func=run_port_forward)


@dataclass(frozen=True)
class PortPair:
    local: int
    remote: str  # a number or a port name until resolved


def parse_ports(specs: list[str]) -> list[PortPair]:
    """``8080:80``, ``80`` (same local port), ``:80`` (any free local port), ``8080:http``."""
    out = []
    for item in specs:
        local, sep, remote = item.rpartition(":")
        if not sep:
            local = remote
        if not remote:
            raise CliError(f"invalid port format '{item}'")
        try:
            local_port = int(local) if local else 0
        except ValueError:
            raise CliError(f"error parsing local port '{local}'") from None
        if not 0 <= local_port < 65536:
            raise CliError(f"invalid local port {local_port}")
        out.append(PortPair(local_port, remote))
    return out


def remote_port(pod: dict[str, Any], service: dict[str, Any] | None, remote: str) -> int:
    """The pod port ``remote`` means (Service port → targetPort, names → containerPort)."""
    target: int | str = int(remote) if remote.isdigit() else remote
    if service is not None:
        name = service["metadata"]["name"]
        ports = (service.get("spec") or {}).get("ports") or []
        match = [p for p in ports if p.get("port") == target or p.get("name") == target]
        if not match:
            raise CliError(f"Service {name} does not have a service port {remote}")
        target = match[0].get("targetPort") or match[0]["port"]
    if isinstance(target, str) and not target.isdigit():
        for c in (pod.get("spec") or {}).get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == target:
                    return int(p["containerPort"])
        raise CliError(f"Pod '{pod['metadata']['name']}' does not have a named port '{target}'")
    port = int(target)
    if not 0 < port < 65536:
        raise CliError(f"invalid remote port {port}")
    return port


def run_port_forward(session: Session, args: argparse.Namespace) -> int:
    pairs = parse_ports(args.ports)
    pod = pods_for(session, args.target, None)[0]
    service = None
    kind, sep, name = args.target.partition("/")
    if sep and session.resources.resolve(kind).kind == "Service":
        service = session.client.get(kinds.lookup("services"), name, session.namespace)
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise CliError(f"unable to forward port because pod is not running. Current status={phase}")
    ports = [(p.local, remote_port(pod, service, p.remote)) for p in pairs]
    addresses = [a.strip() for a in args.address.split(",") if a.strip()]
    forwarder = Forwarder(session, pod, ports, addresses)
    try:
        return asyncio.run(forwarder.run())
    except KeyboardInterrupt:
        return 0


def _tunnel_connection() -> Any:
    """A ``websockets`` connection class whose handshake offers :data:`TUNNEL_PROTOCOL`.

    ``websockets`` refuses subprotocol names that are not RFC 6455 tokens (this one has a
    ``/``), on the way out and on the way back; the connection swaps in a handshake that
    offers it and accepts it as the server's choice.
    """
    from websockets.asyncio.client import ClientConnection
    from websockets.client import ClientProtocol
    from websockets.datastructures import Headers
    from websockets.exceptions import NegotiationError
    from websockets.typing import Subprotocol

    class TunnelHandshake(ClientProtocol):
        def process_subprotocol(self, headers: Headers) -> Subprotocol | None:
            chosen = [v.strip() for v in headers.get_all("Sec-WebSocket-Protocol")]
            if chosen != [TUNNEL_PROTOCOL]:
                raise NegotiationError(f"server chose subprotocol {chosen or 'none'}")
            return Subprotocol(TUNNEL_PROTOCOL)

    class TunnelConnection(ClientConnection):
        def __init__(self, protocol: ClientProtocol, **kwargs: Any) -> None:
            handshake = TunnelHandshake(
                protocol.uri,
                origin=protocol.origin,
                extensions=protocol.available_extensions,
                subprotocols=[Subprotocol(TUNNEL_PROTOCOL)],
                max_size=protocol.max_size,
                logger=protocol.logger,
            )
            super().__init__(handshake, **kwargs)

    return TunnelConnection


class WebSocketTransport:
    """A ``websockets`` client connection as a :class:`machinery.spdy.Transport`."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def read(self) -> bytes:
        import websockets

        try:
            message = await self.conn.recv()
        except websockets.ConnectionClosed:
            return b""
        return message if isinstance(message, bytes) else message.encode()

    async def write(self, data: bytes) -> None:
        import websockets

        try:
            await self.conn.send(data)
        except websockets.ConnectionClosed as err:
            raise ConnectionError(str(err)) from None

    async def close(self) -> None:
        await self.conn.close()


class Forwarder:
    """Listens on the local ports and forwards each connection over one SPDY session."""

    def __init__(
        self,
        session: Session,
        pod: dict[str, Any],
        ports: list[tuple[int, int]],
        addresses: list[str],
    ) -> None:
        self.cli, self.pod, self.ports, self.addresses = session, pod, ports, addresses
        self.request_ids = itertools.count()
        self.spdy: spdy.Session | None = None

    async def run(self) -> int:
        conn = await self._connect()
        self.spdy = spdy.Session(WebSocketTransport(conn), client=True)
        servers = []
        try:
            for local, remote in self.ports:
                for address in self.addresses:
                    servers.append(await self._listen(address, local, remote))
            await self.spdy.run()
        finally:
            for server in servers:
                server.close()
            await self.spdy.close()
        self.cli.err.write("error: lost connection to pod\n")
        return 1

    async def _connect(self) -> Any:
        import websockets

        cfg = self.cli.cluster
        base = cfg.server.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        meta = self.pod["metadata"]
        url = base + kinds.lookup("pods").path(meta["namespace"], meta["name"], "portforward")
        headers = {"Authorization": f"Bearer {cfg.token}"} if cfg.token else {}
        ssl_ctx = cfg.ssl_context() if cfg.server.startswith("https") else None
        try:
            return await websockets.connect(
                url,
                create_connection=_tunnel_connection(),
                additional_headers=headers,
                ssl=ssl_ctx if ssl_ctx is not True else None,
                open_timeout=self.cli.flags.request_timeout or None,
                max_size=None,
            )
        except websockets.InvalidStatus as e:
            raise upgrade_error(e) from None
        except (OSError, TimeoutError, websockets.InvalidHandshake) as e:
            raise CliError(f"error upgrading connection: {e}") from None

    async def _listen(self, address: str, local: int, remote: int) -> asyncio.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._handle(reader, writer, bound, remote)

        try:
            server = await asyncio.start_server(handle, address, local)
        except OSError as e:
            raise CliError(f"unable to listen on port {local}: {e.strerror or e}") from None
        bound = int(server.sockets[0].getsockname()[1])
        host = f"[{address}]" if ":" in address else address
        self.cli.print(f"Forwarding from {host}:{bound} -> {remote}")
        self.cli.out.flush()
        return server

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local: int, remote: int
    ) -> None:
        assert self.spdy is not None
        self.cli.print(f"Handling connection for {local}")
        self.cli.out.flush()
        headers = {"streamtype": "error", "port": str(remote)}
        headers["requestid"] = str(next(self.request_ids))
        try:
            error = await self.spdy.open_stream(headers)
            await error.close()
            data = await self.spdy.open_stream({**headers, "streamtype": "data"})
        except (spdy.StreamReset, ConnectionError, TimeoutError) as e:
            self._report(f"error creating streams for port {local} -> {remote}: {e}")
            writer.close()
            return
        message = asyncio.create_task(_read_all(error))
        try:
            await _relay(reader, writer, data)
        finally:
            writer.close()
            await data.reset()
        with contextlib.suppress(TimeoutError):
            text = await asyncio.wait_for(message, 30)
            if text:
                self._report(f"an error occurred forwarding {local} -> {remote}: {text}")

    def _report(self, text: str) -> None:
        self.cli.err.write(f"error: {text}\n")
        self.cli.err.flush()


async def _read_all(stream: spdy.Stream) -> str:
    chunks = []
    while chunk := await stream.read():
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


async def _relay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: spdy.Stream
) -> None:
    """Copy both ways until the remote side ends (kubectl's rule); local EOF is a half-close."""

    async def local_to_remote() -> None:
        with contextlib.suppress(ConnectionError, spdy.StreamReset):
            while chunk := await reader.read(READ_SIZE):
                await data.write(chunk)
            await data.close()

    sender = asyncio.create_task(local_to_remote())
    try:
        while chunk := await data.read():
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
