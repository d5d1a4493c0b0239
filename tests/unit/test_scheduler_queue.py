"""The scheduling queue with a fake clock: ordering, backoff, parking, moves, flushes."""

from __future__ import annotations

import asyncio

import pytest

from machinery.workqueue import FakeClock
from scheduler.framework import NODE_ADD, POD_DELETE
from scheduler.queue import SchedulingQueue
from scheduler.testing import make_pod

EVENTS = {"NodeResourcesFit": {NODE_ADD, POD_DELETE}, "TaintToleration": {NODE_ADD}}


def new_queue(clock=None):
    return SchedulingQueue(
        clock=clock or FakeClock(),
        events_for=lambda plugins: {e for p in plugins for e in EVENTS.get(p, ())},
    )


def drain(q):
    out = []
    while (info := q.pop_nowait()) is not None:
        out.append(info.pod["metadata"]["name"])
    return out


def test_priority_then_arrival_order():
    clock = FakeClock()
    q = new_queue(clock)
    for name, prio in [("a", 0), ("b", 10), ("c", 0), ("d", 10), ("e", 5)]:
        q.add(make_pod(name, priority=prio))
        clock.step(0.001)
    assert drain(q) == ["b", "d", "e", "a", "c"]


def test_adding_a_queued_pod_again_does_not_duplicate_it():
    q = new_queue()
    q.add(make_pod("a"))
    q.add(make_pod("a", labels={"v": "2"}))
    info = q.pop_nowait()
    assert info.pod["metadata"]["labels"] == {"v": "2"}
    assert q.pop_nowait() is None


@pytest.mark.parametrize(
    ("attempts", "want"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)],
    ids=["1st", "2nd", "3rd", "4th", "capped", "stays-capped"],
)
def test_backoff_doubles_from_one_second_to_ten(attempts, want):
    clock = FakeClock()
    q = new_queue(clock)
    q.add(make_pod("p"))
    for _ in range(attempts):
        info = q.pop_nowait()
        assert info is not None
        q.add_backoff(info)
        clock.step(q.backoff_duration(info))
        assert q.flush_backoff_completed() == 1
    assert info.attempts == attempts
    assert q.backoff_duration(info) == want


def test_backoff_pod_waits_until_expiry():
    clock = FakeClock()
    q = new_queue(clock)
    q.add(make_pod("p"))
    info = q.pop_nowait()
    q.add_backoff(info)
    clock.step(0.999)
    assert q.flush_backoff_completed() == 0
    assert q.where("default/p") == "backoff"
    clock.step(0.001)
    assert q.flush_backoff_completed() == 1
    assert q.where("default/p") == "active"


@pytest.mark.parametrize(
    ("plugins", "event", "moves"),
    [
        ({"NodeResourcesFit"}, POD_DELETE, True),
        ({"TaintToleration"}, POD_DELETE, False),
        ({"TaintToleration"}, NODE_ADD, True),
        (set(), POD_DELETE, True),
    ],
    ids=["relevant", "irrelevant", "node-add", "no-plugin-to-blame"],
)
def test_unschedulable_pods_move_only_on_relevant_events(plugins, event, moves):
    clock = FakeClock()
    q = new_queue(clock)
    q.add(make_pod("p"))
    q.add_unschedulable(q.pop_nowait(), plugins)
    assert q.where("default/p") == "unschedulable"
    clock.step(5)  # past its 1 s backoff
    assert q.move_on(event) == (1 if moves else 0)
    assert q.where("default/p") == ("active" if moves else "unschedulable")


def test_moved_pod_still_backing_off_goes_to_backoff_queue():
    clock = FakeClock()
    q = new_queue(clock)
    q.add(make_pod("p"))
    q.add_unschedulable(q.pop_nowait(), {"NodeResourcesFit"})
    clock.step(0.5)
    q.move_on(NODE_ADD)
    assert q.where("default/p") == "backoff"
    clock.step(0.5)
    q.flush_backoff_completed()
    assert q.where("default/p") == "active"


def test_event_during_cycle_sends_pod_to_backoff_not_parking():
    q = new_queue()
    q.add(make_pod("p"))
    info = q.pop_nowait()
    q.move_on(NODE_ADD)  # a node appeared while "p" was being scheduled
    q.add_unschedulable(info, {"NodeResourcesFit"})
    assert q.where("default/p") == "backoff"


def test_parked_pods_flushed_after_five_minutes():
    clock = FakeClock()
    q = new_queue(clock)
    q.add(make_pod("p"))
    q.add_unschedulable(q.pop_nowait(), {"TaintToleration"})
    clock.step(299)
    assert q.flush_unschedulable_left_over() == 0
    clock.step(1)
    assert q.flush_unschedulable_left_over() == 1
    assert q.where("default/p") == "active"


def test_spec_update_unparks_but_status_update_does_not():
    clock = FakeClock()
    q = new_queue(clock)
    pod = make_pod("p")
    q.add(pod)
    q.add_unschedulable(q.pop_nowait(), {"TaintToleration"})
    clock.step(2)
    status_only = {**pod, "status": {"phase": "Pending", "conditions": []}}
    q.update(pod, status_only)
    assert q.where("default/p") == "unschedulable"
    relabelled = {**pod, "spec": {**pod["spec"], "tolerations": [{"operator": "Exists"}]}}
    q.update(status_only, relabelled)
    assert q.where("default/p") == "active"


def test_delete_removes_everywhere_including_in_flight():
    q = new_queue()
    q.add(make_pod("a"))
    q.add(make_pod("b"))
    a = q.pop_nowait()
    q.delete(make_pod("a"))
    q.delete(make_pod("b"))
    q.add_unschedulable(a, ())
    assert q.where("default/a") is None
    assert q.where("default/b") is None
    assert len(q) == 0


async def test_pop_waits_for_a_pod_and_run_flushes_backoff_on_clock_steps():
    clock = FakeClock()
    q = new_queue(clock)
    waiter = asyncio.create_task(q.pop())
    await asyncio.sleep(0)
    assert not waiter.done()
    q.add(make_pod("p"))
    info = await asyncio.wait_for(waiter, 1)
    q.add_backoff(info)
    runner = asyncio.create_task(q.run())
    waiter = asyncio.create_task(q.pop())
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiter.done()
    clock.step(1.0)
    assert (await asyncio.wait_for(waiter, 1)).attempts == 2
    q.close()
    clock.step(1.0)
    await asyncio.wait_for(runner, 1)
    assert await q.pop() is None


def test_nominated_pods_by_node():
    q = new_queue()
    vip = make_pod("vip", priority=100)
    q.add_nominated(vip, "n1")
    assert q.nominated_pods_for_node("n1") == [vip]
    q.add_nominated(vip, "n2")
    assert q.nominated_pods_for_node("n1") == []
    q.delete(vip)
    assert q.nominated_pods_for_node("n2") == []
