"""Node status and Lease cadence: no GET of what the agent holds, writes only on change (or
when due), a 409 re-reads, a failed write re-reads the Node, a silent runtime is tolerated."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from kubelet.node import (
    LEASE_NAMESPACE,
    RUNTIME_DOWN_AFTER,
    Machine,
    NodeConfig,
    NodeStatus,
    Pressure,
    RuntimeUnanswered,
)
from machinery import errors


class FakeApi:
    """Just enough of the API client: objects by (resource, namespace, name) with
    resourceVersion checks on update, and a log of every call."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.rv = 0
        self.fail_next: dict[str, Exception] = {}

    def _key(self, rt: Any, name: str, namespace: str | None) -> tuple[str, str | None, str]:
        return (rt.plural, namespace if rt.namespaced else None, name)

    def _stamp(self, obj: dict) -> dict:
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        obj["metadata"].setdefault("uid", f"uid-{obj['metadata']['name']}")
        return copy.deepcopy(obj)

    def _call(self, verb: str, rt: Any) -> None:
        self.calls.append((verb, rt.plural))
        if (err := self.fail_next.pop(verb, None)) is not None:
            raise err

    async def get(self, rt: Any, name: str, namespace: str | None = None) -> dict:
        self._call("get", rt)
        obj = self.objects.get(self._key(rt, name, namespace))
        if obj is None:
            raise errors.NotFound(f"{rt.plural} {name!r} not found")
        return copy.deepcopy(obj)

    async def create(self, rt: Any, obj: dict, namespace: str | None = None) -> dict:
        self._call("create", rt)
        key = self._key(rt, obj["metadata"]["name"], namespace)
        if key in self.objects:
            raise errors.AlreadyExists(f"{key} already exists")
        self.objects[key] = copy.deepcopy(obj)
        return self._stamp(self.objects[key])

    async def update(self, rt: Any, obj: dict) -> dict:
        self._call("update", rt)
        key = self._key(rt, obj["metadata"]["name"], obj["metadata"].get("namespace"))
        current = self.objects.get(key)
        if current is None:
            raise errors.NotFound(f"{key} not found")
        if current["metadata"]["resourceVersion"] != obj["metadata"].get("resourceVersion"):
            raise errors.Conflict("the object has been modified")
        self.objects[key] = copy.deepcopy(obj)
        return self._stamp(self.objects[key])

    async def patch(
        self, rt: Any, name: str, patch: dict, namespace: str | None = None, **kw: Any
    ) -> dict:
        self._call("patch", rt)
        current = self.objects.get(self._key(rt, name, namespace))
        if current is None:
            raise errors.NotFound(f"{name} not found")
        for field, value in patch.items():
            if field != "metadata":
                current[field] = {**(current.get(field) or {}), **value}
        return self._stamp(current)


class Runtime:
    def __init__(self) -> None:
        self.ready, self.down = True, False

    async def __call__(self) -> tuple[bool, str, str]:
        if self.down:
            raise OSError("runtime socket gone")
        return self.ready, "" if self.ready else "network not ready", "fake://1"


def ready_of(node: dict) -> str:
    return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")


@pytest.fixture
async def node() -> tuple[NodeStatus, FakeApi, Runtime]:
    api, runtime = FakeApi(), Runtime()
    status = NodeStatus(
        api,
        NodeConfig(name="n1", pod_cidr="10.244.3.0/24"),
        runtime,
        machine=Machine(cpu=2, memory=1 << 30, ephemeral_storage=1 << 30),
        pressure=Pressure,
    )
    await status.register()
    return status, api, runtime


def server_node(api: FakeApi) -> dict:
    return api.objects[("nodes", None, "n1")]


async def test_register_with_a_known_cidr_creates_without_get(node: Any) -> None:
    status, api, _ = node
    assert api.calls == [("create", "nodes")]
    assert ready_of(server_node(api)) == "True"
    assert status.pod_cidr == "10.244.3.0/24"


async def test_lease_renewals_update_the_held_lease_without_get(node: Any) -> None:
    status, api, _ = node
    api.calls.clear()
    for _ in range(3):
        await status.renew_lease()
    assert api.calls == [("create", "leases"), ("update", "leases"), ("update", "leases")]
    lease = api.objects[("leases", LEASE_NAMESPACE, "n1")]
    assert lease["spec"]["holderIdentity"] == "n1"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-n1"


async def test_lease_conflict_rereads_once(node: Any) -> None:
    status, api, _ = node
    await status.renew_lease()
    api.objects[("leases", LEASE_NAMESPACE, "n1")]["metadata"]["resourceVersion"] = "999"
    api.calls.clear()
    await status.renew_lease()
    await status.renew_lease()
    assert api.calls == [
        ("update", "leases"),
        ("get", "leases"),
        ("update", "leases"),
        ("update", "leases"),
    ]


async def test_deleted_lease_is_created_again(node: Any) -> None:
    status, api, _ = node
    await status.renew_lease()
    del api.objects[("leases", LEASE_NAMESPACE, "n1")]
    await status.renew_lease()
    assert ("leases", LEASE_NAMESPACE, "n1") in api.objects
    assert api.calls[-2:] == [("update", "leases"), ("create", "leases")]


async def test_status_is_written_only_when_changed_or_forced(node: Any) -> None:
    status, api, runtime = node
    api.calls.clear()
    assert await status.update_status() is False
    assert api.calls == []  # computed, compared with the held Node, nothing sent
    runtime.ready = False
    assert await status.update_status() is True
    assert ready_of(server_node(api)) == "False"
    assert await status.update_status() is False
    assert await status.update_status(force=True) is True
    assert api.calls == [("patch", "nodes"), ("patch", "nodes")]


async def test_failed_write_makes_the_next_pass_reread_the_node(node: Any) -> None:
    status, api, _ = node
    api.fail_next["patch"] = errors.ServiceUnavailable("API server is restarting")
    with pytest.raises(errors.ServiceUnavailable):
        await status.update_status(force=True)
    # Meanwhile the node-lifecycle controller marked the node Unknown.
    for c in server_node(api)["status"]["conditions"]:
        c["status"] = "Unknown"
    api.calls.clear()
    assert await status.update_status() is True
    assert api.calls == [("get", "nodes"), ("patch", "nodes")]
    assert ready_of(server_node(api)) == "True"
    assert await status.update_status() is False


async def test_failed_lease_renewal_makes_the_status_pass_reread(node: Any) -> None:
    status, api, _ = node
    api.fail_next["create"] = errors.ServiceUnavailable("API server is restarting")
    renewing = asyncio.create_task(status.run_lease())
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while not status.reread and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
    finally:
        renewing.cancel()
    assert status.reread
    api.calls.clear()
    await status.update_status()
    assert api.calls[0] == ("get", "nodes")


async def test_silent_runtime_keeps_status_until_threshold(node: Any) -> None:
    status, api, runtime = node
    runtime.down = True
    api.calls.clear()
    with pytest.raises(RuntimeUnanswered):
        await status.update_status()
    assert api.calls == []
    status.runtime_answered -= RUNTIME_DOWN_AFTER
    assert await status.update_status() is True
    ready = next(c for c in server_node(api)["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["message"].startswith("container runtime is down")
