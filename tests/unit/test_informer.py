"""Informers against the fake API server (live async watches); backoff and resync on a
FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from machinery.client import AsyncClient
from machinery.informer import Informer, InformerFactory, Store, key_of
from machinery.kinds import lookup
from machinery.selectors import LabelSelector
from machinery.workqueue import FakeClock
from tests.unit import fake_apiserver
from tests.unit.fake_apiserver import Backend, FakeApiServer, eventually

PODS = lookup("pods")
NODES = lookup("nodes")
CONFIGMAPS = lookup("configmaps")


def pod(name: str, ns: str = "default", node: str = "", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }


class Recorder:
    """Handler calls as ``(event, key)`` tuples (updates record the new object's key)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.objects: list[tuple[str, dict[str, Any]]] = []

    def attach(self, inf: Informer) -> None:
        inf.add_handler(
            on_add=lambda o: self._record("add", o),
            on_update=lambda old, new: self._record("update", new, old),
            on_delete=lambda o: self._record("delete", o),
        )

    def _record(self, event: str, obj: dict[str, Any], old: Any = None) -> None:
        self.calls.append((event, key_of(obj)))
        self.objects.append((event, obj))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with fake_apiserver.backend(request) as b:
        yield b


@pytest.fixture
async def aclient(backend: Backend) -> AsyncIterator[AsyncClient]:
    async with backend.async_client() as c:
        yield c


@pytest.fixture
def fake() -> FakeApiServer:
    return FakeApiServer()


@pytest.fixture
async def fake_client(fake: FakeApiServer) -> AsyncIterator[AsyncClient]:
    async with fake.async_client() as c:
        yield c


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def running(inf: Informer) -> asyncio.Task[None]:
    task = asyncio.create_task(inf.run())
    assert await inf.wait_synced(5), "informer did not sync"
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# -- list, watch, handlers -------------------------------------------------------------------


async def test_list_then_watch_feeds_store_and_handlers(
    backend: Backend, aclient: AsyncClient
) -> None:
    ns = backend.namespace
    for name in ("a", "b"):
        await aclient.create(PODS, pod(name, ns))
    inf = Informer(aclient, PODS, namespace=ns)
    rec = Recorder()
    rec.attach(inf)
    assert not inf.synced
    task = await running(inf)
    try:
        assert sorted(rec.calls) == [("add", f"{ns}/a"), ("add", f"{ns}/b")]
        assert sorted(inf.store.keys()) == [f"{ns}/a", f"{ns}/b"]
        # list items get their type filled in, like watch events carry it
        assert all(o["kind"] == "Pod" and o["apiVersion"] == "v1" for o in inf.store.list())

        await aclient.create(PODS, pod("c", ns))
        await aclient.patch(PODS, "a", {"metadata": {"labels": {"x": "1"}}}, ns)
        await aclient.delete(PODS, "b", ns)
        await eventually(lambda: len(rec.calls) == 5, what="three watch events")
        assert rec.calls[2:] == [("add", f"{ns}/c"), ("update", f"{ns}/a"), ("delete", f"{ns}/b")]
        assert sorted(inf.store.keys()) == [f"{ns}/a", f"{ns}/c"]
        assert inf.store.get_by(ns, "a")["metadata"]["labels"] == {"x": "1"}
        assert inf.store.get(f"{ns}/b") is None
    finally:
        await stop(task)


async def test_store_is_updated_before_handlers_run(
    fake: FakeApiServer, fake_client: AsyncClient
) -> None:
    inf = Informer(fake_client, PODS)
    seen_in_store: list[bool] = []
    inf.add_handler(
        on_add=lambda o: seen_in_store.append(inf.store.get(key_of(o)) is o),
        on_delete=lambda o: seen_in_store.append(inf.store.get(key_of(o)) is None),
    )
    fake.seed(PODS, pod("pre"))
    task = await running(inf)
    try:
        fake.seed(PODS, pod("live"))
        fake.remove(PODS, "default", "pre")
        await eventually(lambda: len(seen_in_store) == 3)
        assert seen_in_store == [True, True, True]
    finally:
        await stop(task)


async def test_paged_initial_list(fake: FakeApiServer, fake_client: AsyncClient) -> None:
    for i in range(5):
        fake.seed(CONFIGMAPS, {"metadata": {"name": f"cm{i}", "namespace": "ns"}})
    inf = Informer(fake_client, CONFIGMAPS, page_size=2)
    task = await running(inf)
    try:
        assert len(inf.store) == 5
        lists = fake.requests_matching("GET", "/configmaps", watch=False)
        assert [r.url.params.get("limit") for r in lists] == ["2", "2", "2"]
        assert inf.last_resource_version == str(fake.rv)
        watch = fake.requests_matching("GET", "/configmaps", watch=True)[0]
        assert watch.url.params["resourceVersion"] == str(fake.rv)
        assert watch.url.params["allowWatchBookmarks"] == "true"
    finally:
        await stop(task)


async def test_selectors_are_passed_to_the_server(
    fake: FakeApiServer, fake_client: AsyncClient
) -> None:
    fake.seed(PODS, pod("web1", app="web"))
    fake.seed(PODS, pod("db1", app="db"))
    inf = Informer(fake_client, PODS, namespace="default", label_selector="app=web")
    task = await running(inf)
    try:
        fake.seed(PODS, pod("web2", app="web"))
        fake.seed(PODS, pod("db2", app="db"))
        await eventually(lambda: len(inf.store) == 2)
        assert sorted(inf.store.keys()) == ["default/web1", "default/web2"]
        watch = fake.requests_matching("GET", "/pods", watch=True)[0]
        assert watch.url.params["labelSelector"] == "app=web"
    finally:
        await stop(task)


async def test_watch_end_resumes_from_last_revision_without_relisting(
    fake: FakeApiServer, fake_client: AsyncClient
) -> None:
    fake.seed(PODS, pod("a"))
    inf = Informer(fake_client, PODS)
    rec = Recorder()
    rec.attach(inf)
    task = await running(inf)
    try:
        fake.seed(PODS, pod("b"))
        await eventually(lambda: len(rec.calls) == 2)
        rv_after_b = fake.rv
        fake.close_watches()  # the server's timeoutSeconds
        await eventually(lambda: len(fake.requests_matching("GET", "/pods", watch=True)) == 2)
        rewatch = fake.requests_matching("GET", "/pods", watch=True)[-1]
        assert rewatch.url.params["resourceVersion"] == str(rv_after_b)
        assert len(fake.requests_matching("GET", "/pods", watch=False)) == 1
        fake.seed(PODS, pod("c"))
        await eventually(lambda: len(rec.calls) == 3)
        assert rec.calls == [("add", "default/a"), ("add", "default/b"), ("add", "default/c")]
    finally:
        await stop(task)


async def test_bookmarks_advance_the_resume_revision(
    fake: FakeApiServer, fake_client: AsyncClient
) -> None:
    inf = Informer(fake_client, PODS, namespace="default")
    task = await running(inf)
    try:
        fake.seed(CONFIGMAPS, {"metadata": {"name": "elsewhere", "namespace": "default"}})
        fake.send_bookmark()
        await eventually(lambda: inf.last_resource_version == str(fake.rv))
        assert len(inf.store) == 0
        fake.close_watches()
        await eventually(lambda: len(fake.requests_matching("GET", "/pods", watch=True)) == 2)
        assert fake.requests_matching("GET", "/pods", watch=True)[-1].url.params[
            "resourceVersion"
        ] == str(fake.rv)
    finally:
        await stop(task)


async def test_relist_after_410_emits_only_the_differences(
    fake: FakeApiServer, fake_client: AsyncClient, clock: FakeClock
) -> None:
    for name in ("same", "changed", "gone"):
        fake.seed(PODS, pod(name))
    inf = Informer(fake_client, PODS, clock=clock)
    rec = Recorder()
    rec.attach(inf)
    task = await running(inf)
    try:
        assert len(rec.calls) == 3
        # the watch drops and cannot come back for a while (it backs off on the fake clock)
        fault = fake.fail(500, "InternalError", watch=True, times=1000)
        fake.close_watches()
        await eventually(lambda: clock.waiters == 1, what="informer backing off")
        fake.modify(PODS, "default", "changed", {"metadata": {"labels": {"v": "2"}}})
        fake.remove(PODS, "default", "gone")
        fake.seed(PODS, pod("new"))
        fake.compact()  # ... and meanwhile the history it needs is gone
        fault.times = 0
        clock.step(Informer.backoff_max * 2)
        await eventually(lambda: len(rec.calls) == 6, what="synthetic events")
        assert sorted(rec.calls[3:]) == [
            ("add", "default/new"),
            ("delete", "default/gone"),
            ("update", "default/changed"),
        ]
        assert sorted(inf.store.keys()) == ["default/changed", "default/new", "default/same"]
        assert inf.store.get("default/changed")["metadata"]["labels"] == {"v": "2"}
        assert len(fake.requests_matching("GET", "/pods", watch=False)) == 2
        # and it watches again from the new list
        await eventually(lambda: fake.open_watches == 1)
        fake.seed(PODS, pod("after"))
        await eventually(lambda: ("add", "default/after") in rec.calls)
    finally:
        await stop(task)


async def test_list_failure_is_retried_with_backoff(
    fake: FakeApiServer, fake_client: AsyncClient, clock: FakeClock
) -> None:
    fake.seed(PODS, pod("a"))
    fake.fail(503, "ServiceUnavailable", method="GET", watch=False, times=2)
    inf = Informer(fake_client, PODS, clock=clock)
    task = asyncio.create_task(inf.run())
    try:
        await eventually(lambda: clock.waiters == 1)
        assert not inf.synced
        clock.step(Informer.backoff_initial * 1.2)  # first retry: ~backoff_initial
        await eventually(lambda: len(fake.requests_matching("GET", "/pods")) == 2)
        await eventually(lambda: clock.waiters == 1)
        assert not inf.synced
        clock.step(Informer.backoff_initial * 2 * 1.2)  # second: doubled
        assert await inf.wait_synced(5)
        assert inf.store.keys() == ["default/a"]
    finally:
        await stop(task)


async def test_handler_errors_do_not_stop_the_informer(
    fake: FakeApiServer, fake_client: AsyncClient
) -> None:
    def boom(obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    inf = Informer(fake_client, PODS)
    inf.add_handler(on_add=boom)
    rec = Recorder()
    rec.attach(inf)
    task = await running(inf)
    try:
        fake.seed(PODS, pod("a"))
        fake.seed(PODS, pod("b"))
        await eventually(lambda: len(rec.calls) == 2)
        assert not task.done()
    finally:
        await stop(task)


async def test_late_handler_gets_existing_objects(
    fake: FakeApiServer, fake_client: AsyncClient
) -> None:
    fake.seed(PODS, pod("a"))
    inf = Informer(fake_client, PODS)
    task = await running(inf)
    try:
        rec = Recorder()
        rec.attach(inf)
        assert rec.calls == [("add", "default/a")]
    finally:
        await stop(task)


async def test_resync_redelivers_everything(
    fake: FakeApiServer, fake_client: AsyncClient, clock: FakeClock
) -> None:
    fake.seed(PODS, pod("a"))
    fake.seed(NODES, {"metadata": {"name": "ignored"}})
    inf = Informer(fake_client, PODS, resync_period=30, clock=clock)
    rec = Recorder()
    rec.attach(inf)
    task = await running(inf)
    try:
        await eventually(lambda: clock.waiters == 1, what="resync timer")
        clock.step(29)
        await asyncio.sleep(0)
        assert rec.calls == [("add", "default/a")]
        clock.step(1)
        await eventually(lambda: len(rec.calls) == 2)
        assert rec.calls[1] == ("update", "default/a")
        assert rec.objects[1][1] is inf.store.get("default/a")
    finally:
        await stop(task)


# -- the store -------------------------------------------------------------------------------


def _by_node(obj: dict[str, Any]) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def test_store_indexes_follow_updates_and_deletes() -> None:
    store = Store({"node": _by_node})
    store.put(pod("a", node="n1"))
    store.put(pod("b", node="n1"))
    store.put(pod("c", "other", node="n2"))
    store.put(pod("d"))
    assert sorted(key_of(o) for o in store.by_index("node", "n1")) == ["default/a", "default/b"]
    store.put(pod("a", node="n2"))  # moved
    assert [key_of(o) for o in store.by_index("node", "n1")] == ["default/b"]
    assert sorted(key_of(o) for o in store.by_index("node", "n2")) == ["default/a", "other/c"]
    store.delete("other/c")
    assert [key_of(o) for o in store.by_index("node", "n2")] == ["default/a"]
    assert store.by_index("node", "n9") == []
    with pytest.raises(KeyError):
        store.by_index("nope", "x")


def test_store_list_by_namespace_and_selector() -> None:
    store = Store()
    store.put(pod("a", app="web"))
    store.put(pod("b", app="db"))
    store.put(pod("c", "other", app="web"))
    store.put({"metadata": {"name": "node1", "labels": {"app": "web"}}})
    web = LabelSelector.parse("app=web")
    assert sorted(key_of(o) for o in store.list(selector=web)) == ["default/a", "node1", "other/c"]
    assert [key_of(o) for o in store.list("default", web)] == ["default/a"]
    assert sorted(key_of(o) for o in store.list("default")) == ["default/a", "default/b"]
    assert store.get_by(None, "node1") is not None
    assert store.get_by("other", "c") is not None


def test_indexers_added_later_cover_existing_objects() -> None:
    store = Store()
    store.put(pod("a", node="n1"))
    store.add_indexers({"node": _by_node})
    assert [key_of(o) for o in store.by_index("node", "n1")] == ["default/a"]
    store.add_indexers({"node": _by_node})  # the same function again is fine
    with pytest.raises(ValueError):
        store.add_indexers({"node": lambda o: []})


@pytest.mark.parametrize(
    ("obj", "key"),
    [
        ({"metadata": {"name": "p", "namespace": "ns"}}, "ns/p"),
        ({"metadata": {"name": "node1"}}, "node1"),
        ({"metadata": {"name": "x", "namespace": ""}}, "x"),
    ],
    ids=["namespaced", "cluster-scoped", "empty-namespace"],
)
def test_key_of(obj: dict[str, Any], key: str) -> None:
    assert key_of(obj) == key


# -- the factory -----------------------------------------------------------------------------


async def test_factory_shares_informers(fake: FakeApiServer, fake_client: AsyncClient) -> None:
    factory = InformerFactory(fake_client, resync_period=60)
    pods = factory.informer(PODS)
    assert factory.informer(PODS, indexers={"node": _by_node}) is pods
    assert pods.resync_period == 60
    assert factory.informer(PODS, namespace="x") is not pods
    assert factory.informer(PODS, label_selector="a=b") is not pods
    nodes = factory.informer(NODES)
    fake.seed(PODS, pod("a", node="n1"))
    fake.seed(NODES, {"metadata": {"name": "n1"}})
    await factory.start()
    try:
        assert await factory.wait_synced(5)
        assert [key_of(o) for o in pods.store.by_index("node", "n1")] == ["default/a"]
        assert nodes.store.keys() == ["n1"]
        late = factory.informer(CONFIGMAPS)
        await factory.start()  # starts only the new one
        assert await factory.wait_synced(5)
        assert late.synced
        unfiltered = [
            r
            for r in fake.requests_matching("GET", "/api/v1/pods", watch=False)
            if "labelSelector" not in r.url.params
        ]
        assert len(unfiltered) == 1  # the shared informer listed once
    finally:
        await factory.stop()
    await eventually(lambda: fake.open_watches == 0)


async def test_factory_wait_synced_times_out(fake: FakeApiServer, fake_client: AsyncClient) -> None:
    fake.fail(500, "InternalError", method="GET", times=1000)
    factory = InformerFactory(fake_client)
    factory.informer(PODS)
    await factory.start()
    try:
        assert not await factory.wait_synced(0.05)
    finally:
        await factory.stop()
