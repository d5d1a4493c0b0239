"""Binding runs behind the scheduling loop with a bounded number of POSTs in flight."""

from __future__ import annotations

import asyncio

from scheduler.scheduler import Scheduler
from scheduler.testing import make_node, make_pod


class GatedClient:
    """Records binding POSTs and holds each until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.peak = 0
        self.bound: list[tuple[str, str]] = []

    async def create(self, rt, body, namespace=None, *, subresource=None, name=None, **kw):
        if subresource != "binding":
            return body  # Events
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        self.bound.append((name, body["target"]["name"]))
        return {"kind": "Status", "status": "Success"}

    async def patch(self, *args, **kw):
        return {}


async def test_at_most_max_binds_in_flight_and_all_complete_in_order():
    client = GatedClient()
    sched = Scheduler(client, max_binds_in_flight=3)  # type: ignore[arg-type]
    sched.on_node_add(make_node("n", cpu="64", pods=200))
    for i in range(10):
        sched.on_pod_add(make_pod(f"p{i}", cpu="100m"))
    while (info := sched.queue.pop_nowait()) is not None:
        assert sched.schedule_one(info) == "n"
    for _ in range(20):  # let every bind task reach the gate or the semaphore
        await asyncio.sleep(0)
    assert client.in_flight == 3
    assert sched.cache.pod_count == 10  # all assumed before any bind returned
    client.gate.set()
    await sched.drain()
    assert client.peak == 3
    assert [name for name, _ in client.bound] == [f"p{i}" for i in range(10)]
    assert sched.scheduled == 10
    await sched.recorder.aclose()
