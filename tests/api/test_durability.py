"""Durability: kill -9 the API server in the middle of a write load; after a restart every
acknowledged write is there, whole, and revisions still only grow."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx

from tests.conftest import start_apiserver


def test_acknowledged_writes_survive_kill_9(tmp_path):
    server = start_apiserver(tmp_path)
    path = "/api/v1/namespaces/default/configmaps"
    acked: dict[str, dict] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as c:
            for i in range(100000):
                if stop.is_set():
                    return
                name = f"w{worker}-{i}"
                try:
                    r = c.post(path, json={"metadata": {"name": name}, "data": {"i": str(i)}})
                    if r.status_code == 201:
                        with lock:
                            acked[name] = r.json()
                    if i % 3 == 0 and r.status_code == 201:
                        obj = r.json()
                        obj["data"]["i"] = f"{i}-updated"
                        u = c.put(f"{path}/{name}", json=obj)
                        if u.status_code == 200:
                            with lock:
                                acked[name] = u.json()
                except httpx.HTTPError:
                    return

    threads = [threading.Thread(target=load, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 300

    server = start_apiserver(tmp_path, port=server.port)
    try:
        items = httpx.get(f"{server.url}{path}", timeout=30).json()["items"]
        stored = {o["metadata"]["name"]: o for o in items}
        missing = [n for n in acked if n not in stored]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
        for name, obj in acked.items():
            got = stored[name]
            assert int(got["metadata"]["resourceVersion"]) >= int(
                obj["metadata"]["resourceVersion"]
            )
            assert got["data"]["i"].split("-")[0] == obj["data"]["i"].split("-")[0]
            if obj["data"]["i"].endswith("-updated"):
                assert got["data"] == obj["data"]
        head = max(int(o["metadata"]["resourceVersion"]) for o in items)
        after = httpx.post(f"{server.url}{path}", json={"metadata": {"name": "after"}}).json()
        assert int(after["metadata"]["resourceVersion"]) > head
    finally:
        server.stop()
