"""Node-lifecycle controller: the pure decisions, then reconcile(name) against a fake client
with a fake clock."""

from __future__ import annotations

import pytest

from apiserver.tolerations import default_toleration_seconds
from controllers.nodelifecycle import (
    LEASE_NAMESPACE,
    LEASES,
    NO_EXECUTE,
    NO_SCHEDULE,
    NODES,
    NOT_READY,
    PODS,
    UNREACHABLE,
    NodeLifecycleController,
    eviction_time,
    plan_evictions,
    tolerates,
    wanted_taints,
)
from controllers.objects import format_time, parse_time
from controllers.testing import FakeClient, FakeRecorder, store_of
from machinery.informer import Store

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def node(name: str = "n1", ready: str = "True", taints: list | None = None) -> dict:
    conditions = [
        {"type": t, "status": "False", "lastHeartbeatTime": format_time(T0 - 5)}
        for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
    ]
    conditions.append({"type": "Ready", "status": ready, "lastHeartbeatTime": format_time(T0 - 5)})
    spec = {"taints": taints} if taints else {}
    return {"metadata": {"name": name}, "spec": spec, "status": {"conditions": conditions}}


def lease(name: str = "n1", renew: float = T0) -> dict:
    return {
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": name, "renewTime": format_time(renew)},
    }


def pod(name: str, node_name: str = "n1", tolerations: list | None = None) -> dict:
    spec: dict = {"nodeName": node_name, "containers": [{"name": "c", "image": "x"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def tol(key: str, seconds: int | None = None, effect: str = NO_EXECUTE) -> dict:
    t = {"key": key, "operator": "Exists", "effect": effect}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


# -- pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        (
            {"key": UNREACHABLE, "operator": "Exists"},
            {"key": UNREACHABLE, "effect": NO_EXECUTE},
            True,
        ),
        ({"operator": "Exists"}, {"key": NOT_READY, "effect": NO_EXECUTE}, True),
        (tol(UNREACHABLE, effect=NO_SCHEDULE), {"key": UNREACHABLE, "effect": NO_EXECUTE}, False),
        (tol(NOT_READY), {"key": UNREACHABLE, "effect": NO_EXECUTE}, False),
        ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": NO_EXECUTE}, True),
        ({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": NO_EXECUTE}, False),
    ],
    ids=["exists-key", "exists-all", "other-effect", "other-key", "equal-match", "equal-differs"],
)
def test_tolerates(toleration: dict, taint: dict, expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


@pytest.mark.parametrize(
    ("ready", "before", "keys"),
    [
        ("Unknown", [], {(UNREACHABLE, NO_SCHEDULE), (UNREACHABLE, NO_EXECUTE)}),
        ("False", [], {(NOT_READY, NO_SCHEDULE), (NOT_READY, NO_EXECUTE)}),
        ("True", [{"key": UNREACHABLE, "effect": NO_EXECUTE}], set()),
        (
            "False",
            [{"key": UNREACHABLE, "effect": NO_EXECUTE}, {"key": "mine", "effect": NO_SCHEDULE}],
            {("mine", NO_SCHEDULE), (NOT_READY, NO_SCHEDULE), (NOT_READY, NO_EXECUTE)},
        ),
    ],
    ids=["unknown", "not-ready", "ready-clears", "switch-keeps-others"],
)
def test_wanted_taints(ready: str, before: list, keys: set) -> None:
    out = wanted_taints(before, ready, T0)
    assert {(t["key"], t["effect"]) for t in out} == keys
    for t in out:
        if t["effect"] == NO_EXECUTE and t["key"] in (UNREACHABLE, NOT_READY):
            assert t["timeAdded"] == format_time(T0)


def test_existing_taint_keeps_time_added() -> None:
    old = [{"key": UNREACHABLE, "effect": NO_EXECUTE, "timeAdded": format_time(T0 - 99)}]
    out = wanted_taints(old, "Unknown", T0)
    assert [t["timeAdded"] for t in out if t["effect"] == NO_EXECUTE] == [format_time(T0 - 99)]


TAINT = {"key": UNREACHABLE, "effect": NO_EXECUTE, "timeAdded": format_time(T0)}


@pytest.mark.parametrize(
    ("tolerations", "expected"),
    [
        ([], float("-inf")),
        ([tol(UNREACHABLE)], None),
        ([tol(UNREACHABLE, 30)], T0 + 30),
        ([tol(UNREACHABLE, 30), {"operator": "Exists", "tolerationSeconds": 10}], T0 + 10),
        ([tol(UNREACHABLE, -5)], T0),
        ([tol(NOT_READY, 30)], float("-inf")),
    ],
    ids=["untolerated", "forever", "seconds", "smallest", "negative-is-zero", "other-taint"],
)
def test_eviction_time(tolerations: list, expected: float | None) -> None:
    assert eviction_time(pod("p", tolerations=tolerations), [TAINT]) == expected


def test_plan_evictions_skips_deleting_and_reports_next() -> None:
    deleting = pod("gone", tolerations=[])
    deleting["metadata"]["deletionTimestamp"] = format_time(T0)
    pods = [pod("now", tolerations=[]), pod("later", tolerations=[tol(UNREACHABLE, 20)]), deleting]
    plan = plan_evictions(pods, [TAINT], T0 + 5)
    assert [p["metadata"]["name"] for p in plan.evict] == ["now"]
    assert plan.next_at == T0 + 20


@pytest.mark.parametrize(
    ("tolerations", "added"),
    [
        (None, {NOT_READY: 300, UNREACHABLE: 300}),
        ([tol(UNREACHABLE, 5)], {NOT_READY: 300, UNREACHABLE: 5}),
        ([{"operator": "Exists"}], {}),
        ([tol(NOT_READY, 7, effect=NO_SCHEDULE)], {NOT_READY: 300, UNREACHABLE: 300}),
    ],
    ids=["none", "own-unreachable", "tolerate-all", "noschedule-does-not-count"],
)
def test_default_toleration_seconds(tolerations: list | None, added: dict) -> None:
    spec: dict = {} if tolerations is None else {"tolerations": list(tolerations)}
    default_toleration_seconds(spec)
    got = {
        t["key"]: t["tolerationSeconds"]
        for t in spec.get("tolerations") or []
        if t.get("effect") == NO_EXECUTE and t.get("key")
    }
    assert {k: v for k, v in got.items() if k in added} == added
    if not added:
        assert spec["tolerations"] == tolerations


# -- reconcile ----------------------------------------------------------------------------------


def controller(*pods: dict, n: dict | None = None, renew: float = T0):
    n = n or node()
    objects = [(NODES, n), (LEASES, lease(renew=renew))] + [(PODS, p) for p in pods]
    client = FakeClient(*objects)
    clock = Clock()
    pod_store = Store({"spec.nodeName": lambda p: [p["spec"]["nodeName"]]})
    for p in pods:
        pod_store.put(client.stored(PODS, "default", p["metadata"]["name"]))
    recorder = FakeRecorder()
    ctl = NodeLifecycleController(
        client,
        nodes=store_of(client.stored(NODES, None, "n1")),
        leases=store_of(client.stored(LEASES, LEASE_NAMESPACE, "n1")),
        pods=pod_store,
        recorder=recorder,
        grace_period=40,
        monitor_period=5,
        now=clock,
    )
    return ctl, client, clock, recorder


def refresh(ctl: NodeLifecycleController, client: FakeClient) -> None:
    """What the informers would do: show the controller what was written."""
    ctl.nodes.put(client.stored(NODES, None, "n1"))
    for key in list(ctl.pods.keys()):
        ns, name = key.split("/")
        stored = client.stored(PODS, ns, name)
        if stored is None:
            ctl.pods.delete(key)
        else:
            ctl.pods.put(stored)


async def test_healthy_node_is_left_alone_and_rechecked() -> None:
    ctl, client, _, _ = controller(pod("p", tolerations=[tol(UNREACHABLE, 300)]))
    result = await ctl.reconcile("n1")
    assert client.writes() == []
    assert result is not None and result.requeue_after == 5


async def test_stale_lease_marks_unknown_taints_and_evicts_on_time() -> None:
    ctl, client, clock, recorder = controller(
        pod("quick", tolerations=[tol(UNREACHABLE, 10), tol(NOT_READY, 10)]),
        pod("forever", tolerations=[tol(UNREACHABLE)]),
    )
    await ctl.reconcile("n1")  # first sight: the grace period starts now
    clock.t = T0 + 39
    await ctl.reconcile("n1")
    assert client.writes() == []

    clock.t = T0 + 41
    result = await ctl.reconcile("n1")
    stored = client.stored(NODES, None, "n1")
    conditions = {c["type"]: c for c in stored["status"]["conditions"]}
    assert {c["status"] for c in conditions.values()} == {"Unknown"}
    assert conditions["Ready"]["reason"] == "NodeStatusUnknown"
    assert conditions["Ready"]["message"] == "Kubelet stopped posting node status."
    assert parse_time(conditions["Ready"]["lastTransitionTime"]) == T0 + 41
    taints = {(t["key"], t["effect"]) for t in stored["spec"]["taints"]}
    assert taints == {(UNREACHABLE, NO_SCHEDULE), (UNREACHABLE, NO_EXECUTE)}
    for name in ("quick", "forever"):
        ready = client.stored(PODS, "default", name)["status"]["conditions"][0]
        assert ready["status"] == "False"
    assert client.writes("delete") == []
    assert result is not None and result.requeue_after == pytest.approx(5)
    assert "NodeNotReady" in recorder.reasons()

    refresh(ctl, client)
    clock.t = T0 + 51
    await ctl.reconcile("n1")
    assert [a.name for a in client.writes("delete")] == ["quick"]
    assert "TaintManagerEviction" in recorder.reasons()


async def test_untolerating_pod_is_evicted_at_once_and_recovery_clears_taints() -> None:
    ctl, client, clock, _ = controller(pod("bare", tolerations=[]))
    await ctl.reconcile("n1")
    clock.t = T0 + 45
    await ctl.reconcile("n1")
    assert [a.name for a in client.writes("delete")] == ["bare"]

    # The node agent comes back: a new lease renewal and Ready=True.
    refresh(ctl, client)
    back = client.stored(NODES, None, "n1")
    back["status"]["conditions"] = node()["status"]["conditions"]
    ctl.nodes.put(back)
    ctl.leases.put(client.stored(LEASES, LEASE_NAMESPACE, "n1") | lease(renew=T0 + 50))
    clock.t = T0 + 50
    await ctl.reconcile("n1")
    assert not client.stored(NODES, None, "n1")["spec"].get("taints")


async def test_not_ready_node_gets_not_ready_taint() -> None:
    ctl, client, _, _ = controller(n=node(ready="False"))
    await ctl.reconcile("n1")
    taints = {(t["key"], t["effect"]) for t in client.stored(NODES, None, "n1")["spec"]["taints"]}
    assert taints == {(NOT_READY, NO_SCHEDULE), (NOT_READY, NO_EXECUTE)}


async def test_deleted_node_is_done() -> None:
    ctl, client, _, _ = controller()
    ctl.nodes.delete("n1")
    assert await ctl.reconcile("n1") is None
    assert client.writes() == []
