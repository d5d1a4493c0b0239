"""A watcher that never reads cannot stall the others: they get every event while it is stuck,
and it is closed with an error once its buffer (``--watch-buffer-size``) is full."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.conftest import ApiServerProcess, start_apiserver

BUFFER = 20
WRITES = 150
PAYLOAD = "x" * 100_000  # 150 events of 100 kB: far more than the slow client's TCP buffers
PATH = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def server(tmp_path) -> Iterator[ApiServerProcess]:
    s = start_apiserver(tmp_path, extra=["--watch-buffer-size", str(BUFFER)])
    yield s
    s.stop()


class Reader(threading.Thread):
    """A watch read as fast as the server sends, keeping each event's resourceVersion."""

    def __init__(self, url: str, rv: str) -> None:
        super().__init__(daemon=True)
        self.url, self.rv = url, rv
        self.revs: list[int] = []

    def run(self) -> None:
        params = {"watch": "1", "resourceVersion": self.rv, "timeoutSeconds": "120"}
        try:
            with httpx.stream("GET", self.url + PATH, params=params, timeout=130) as r:
                for line in r.iter_lines():
                    if line:
                        ev = orjson.loads(line)
                        self.revs.append(int(ev["object"]["metadata"]["resourceVersion"]))
        except httpx.HTTPError:  # the server stopped at the end of the test
            pass


def _slow_watch(port: int, rv: str) -> socket.socket:
    """Open a watch and never read it; a small receive buffer fills quickly."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {PATH}?watch=1&resourceVersion={rv} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    )
    return sock


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _dechunk(body: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body."""
    out, at = [], 0
    while True:
        end = body.index(b"\r\n", at)
        size = int(body[at:end], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2 : end + 2 + size])
        at = end + 2 + size + 2


def test_a_watcher_that_never_reads_is_closed_and_stalls_no_one(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        created = c.post(PATH, json={"metadata": {"name": "big"}, "data": {"v": "0"}}).json()
        rv = created["metadata"]["resourceVersion"]
        slow = _slow_watch(server.port, rv)
        fast = [Reader(server.url, rv), Reader(server.url, rv)]
        for r in fast:
            r.start()
        obj = created
        for i in range(WRITES):
            obj["data"] = {"v": str(i), "payload": PAYLOAD}
            r = c.put(f"{PATH}/big", json=obj)
            assert r.status_code == 200, r.text
            obj = r.json()
        last = int(obj["metadata"]["resourceVersion"])

        # the readers get every event while the slow watcher still has not read a byte
        deadline = time.monotonic() + 60
        while any(len(r.revs) < WRITES for r in fast) and time.monotonic() < deadline:
            time.sleep(0.05)
        for r in fast:
            assert r.revs == list(range(int(rv) + 1, last + 1))

    raw = _read_all(slow)
    slow.close()
    events = [orjson.loads(ln) for ln in _dechunk(raw.split(b"\r\n\r\n", 1)[1]).splitlines()]
    assert len(events) < WRITES  # cut off, not delivered late
    *delivered, error = events
    assert error["type"] == "ERROR", error
    assert error["object"]["kind"] == "Status"
    assert error["object"]["message"] == "the watcher fell too far behind"
    revs = [int(e["object"]["metadata"]["resourceVersion"]) for e in delivered]
    assert revs == list(range(int(rv) + 1, int(rv) + 1 + len(revs)))  # in order, no gap
