"""Durability: kill -9 an API server in the middle of a write load; after a restart every
acknowledged write is there, whole, and revisions still only grow (SQLite, and two servers on
PostgreSQL)."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from tests.conftest import start_apiserver

PATH = "/api/v1/namespaces/default/configmaps"


class WriteLoad:
    """Six clients creating ConfigMaps (and updating every third) through ``urls`` in turn,
    remembering every acknowledged object; a client stops at its first connection error."""

    def __init__(self, urls: list[str]) -> None:
        self.acked: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(w, urls[w % len(urls)])) for w in range(6)
        ]
        for t in self.threads:
            t.start()

    def _run(self, worker: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=5) as c:
            for i in range(100000):
                if self.stop.is_set():
                    return
                name = f"w{worker}-{i}"
                try:
                    r = c.post(PATH, json={"metadata": {"name": name}, "data": {"i": str(i)}})
                    if r.status_code == 201:
                        with self.lock:
                            self.acked[name] = r.json()
                    if i % 3 == 0 and r.status_code == 201:
                        obj = r.json()
                        obj["data"]["i"] = f"{i}-updated"
                        u = c.put(f"{PATH}/{name}", json=obj)
                        if u.status_code == 200:
                            with self.lock:
                                self.acked[name] = u.json()
                except httpx.HTTPError:
                    return

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.acked) >= count, f"only {len(self.acked)} writes acknowledged"

    def finish(self) -> dict[str, dict]:
        self.stop.set()
        for t in self.threads:
            t.join(10)
        return dict(self.acked)


def assert_all_stored(url: str, acked: dict[str, dict]) -> None:
    """Every acknowledged write is stored, whole, at its revision or a later one; a new write
    gets a higher revision than any stored."""
    items = httpx.get(f"{url}{PATH}", timeout=30).json()["items"]
    stored = {o["metadata"]["name"]: o for o in items}
    missing = [n for n in acked if n not in stored]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
    for name, obj in acked.items():
        got = stored[name]
        assert int(got["metadata"]["resourceVersion"]) >= int(obj["metadata"]["resourceVersion"])
        assert got["data"]["i"].split("-")[0] == obj["data"]["i"].split("-")[0]
        if obj["data"]["i"].endswith("-updated"):
            assert got["data"] == obj["data"]
    head = max(int(o["metadata"]["resourceVersion"]) for o in items)
    after = httpx.post(f"{url}{PATH}", json={"metadata": {"generateName": "after-"}}).json()
    assert int(after["metadata"]["resourceVersion"]) > head


def test_acknowledged_writes_survive_kill_9(tmp_path):
    server = start_apiserver(tmp_path)
    load = WriteLoad([server.url])
    load.wait_for(300)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    acked = load.finish()

    server = start_apiserver(tmp_path, port=server.port)
    try:
        assert_all_stored(server.url, acked)
    finally:
        server.stop()


@pytest.mark.skipif(
    not os.environ.get("TUGBOAT_TEST_POSTGRES"),
    reason="no PostgreSQL configured (set TUGBOAT_TEST_POSTGRES)",
)
def test_two_servers_on_postgresql_lose_nothing_when_one_is_killed(tmp_path):
    """Writes go through both servers; kill -9 one mid-load: the other keeps serving and has
    every write either acknowledged, and so has the killed one after its restart."""
    from tests.unit.test_storage import _pg_schema_url

    url = _pg_schema_url()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_apiserver(tmp_path / "a", storage=url)
    b = start_apiserver(tmp_path / "b", storage=url)
    try:
        load = WriteLoad([a.url, b.url])
        load.wait_for(300)
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait()
        load.wait_for(len(load.acked) + 100)  # the survivor's clients go on
        acked = load.finish()
        assert_all_stored(b.url, acked)
        a = start_apiserver(tmp_path / "a", port=a.port, storage=url)
        assert_all_stored(a.url, acked)
    finally:
        a.stop()
        b.stop()
