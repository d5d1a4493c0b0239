"""A minimal keep-alive HTTP/1.1 client for benchmarks.

httpx spends more CPU per request than the server under test does, which on a 2-core machine
measures the client. This client does only what the benchmarks need: one connection, one request
at a time, ``Content-Length`` bodies in and out (and ``chunked`` responses read whole).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import orjson


@dataclass
class Reply:
    status_code: int
    body: bytes


class Connection:
    """One persistent connection to ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = "application/json"
    ) -> Reply:
        assert self.reader is not None and self.writer is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            name = name.lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
        if not chunked:
            return Reply(status, await self.reader.readexactly(length))
        parts = []
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            if size == 0:
                await self.reader.readline()
                return Reply(status, b"".join(parts))
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()

    async def get(self, path: str) -> Reply:
        return await self.request("GET", path)

    async def post(self, path: str, body: bytes) -> Reply:
        return await self.request("POST", path, body)

    async def patch(self, path: str, body: bytes, content_type: str) -> Reply:
        return await self.request("PATCH", path, body, content_type)


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


async def watch_delivery(
    write_url: str, watch_url: str, namespace: str, watchers: int, writes: int
) -> list[float]:
    """Seconds from each ConfigMap write being sent to ``write_url`` to each of ``watchers``
    watches on ``watch_url`` reading its event.

    The server sends the events and the write's acknowledgement together, so the client often
    reads an event before the acknowledgement: timing from the acknowledgement would go
    negative. Timing from the request is an upper bound of "acknowledged -> delivered" that
    also counts the durable commit.

    Watchers read the raw chunked stream (one connection each) and only look for the object's
    name, so the figure is the server's fan-out, not a client library's parsing."""
    prefix = f"w{uuid.uuid4().hex[:6]}"
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    whost, wport = _host_port(watch_url)
    received: list[tuple[str, float]] = []
    sent: dict[str, float] = {}
    async with Connection(whost, wport) as c:
        rv = orjson.loads((await c.get(path)).body)["metadata"]["resourceVersion"]
    opened = 0
    ready = asyncio.Event()
    last = f'"name":"{prefix}-{writes - 1}"'.encode()

    async def watch() -> None:
        nonlocal opened
        reader, writer = await asyncio.open_connection(whost, wport)
        writer.write(
            f"GET {path}?watch=1&resourceVersion={rv} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        opened += 1
        if opened == watchers:
            ready.set()
        try:
            while True:
                size = int((await reader.readline()).strip(), 16)
                chunk = await reader.readexactly(size)
                await reader.readline()
                now = time.perf_counter()
                for line in chunk.splitlines():
                    name = line.split(b'"name":"', 1)[1].split(b'"', 1)[0].decode()
                    received.append((name, now))
                if last in chunk:
                    return
        finally:
            writer.close()

    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    await asyncio.wait_for(ready.wait(), 30)
    async with Connection(*_host_port(write_url)) as c:
        for i in range(writes):
            name = f"{prefix}-{i}"
            sent[name] = time.perf_counter()
            r = await c.post(path, orjson.dumps({"metadata": {"name": name}, "data": {"i": "x"}}))
            if r.status_code != 201:
                raise RuntimeError(f"{r.status_code}: {r.body[:200]!r}")
            await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return [t - sent[n] for n, t in received if n in sent]
