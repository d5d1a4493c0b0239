"""Service allocation: the allocators alone, then the Service strategy inside an in-process API
server (registry + store on SQLite, no HTTP) started with a tiny ``--service-cluster-ip-range``
and ``--service-node-port-range`` so both run out."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from apiserver.app import ApiServer
from apiserver.main import parse_args
from apiserver.registry import WriteOptions
from apiserver.service_alloc import (
    AlreadyAllocated,
    IPAllocator,
    NotInRange,
    PortAllocator,
    RangeFull,
    parse_port_range,
)
from machinery import errors
from machinery.kinds import lookup

SVC = lookup("services")
CIDR = "10.100.0.0/29"  # hosts .1-.6; .1 is the kubernetes Service's: 5 to hand out
PORTS = "30000-30002"
Obj = dict[str, Any]


# -- the allocators ----------------------------------------------------------------------------


def test_ip_allocator_hands_out_every_free_address_then_is_full() -> None:
    ips = IPAllocator(CIDR)
    assert ips.kubernetes_ip == "10.100.0.1"
    got = [ips.allocate_next() for _ in range(5)]
    assert sorted(got) == [f"10.100.0.{i}" for i in range(2, 7)], "never .0, .1 or .7"
    with pytest.raises(RangeFull, match=r"^range is full$"):
        ips.allocate_next()
    ips.release("10.100.0.3")
    assert ips.allocate_next() == "10.100.0.3"
    ips.allocate("10.100.0.1")  # reserved addresses are given when asked for by value
    with pytest.raises(AlreadyAllocated, match=r"^provided IP is already allocated$"):
        ips.allocate("10.100.0.1")
    with pytest.raises(NotInRange) as info:
        ips.allocate("10.100.0.9")
    assert str(info.value) == (
        "the provided IP (10.100.0.9) is not in the valid range. "
        "The range of valid IPs is 10.100.0.0/29"
    )


def test_ip_allocator_skips_the_dns_address_and_does_not_reuse_at_once() -> None:
    ips = IPAllocator("10.96.0.0/16")
    got = [ips.allocate_next() for _ in range(10)]
    assert "10.96.0.1" not in got and "10.96.0.10" not in got
    ips.release(got[0])
    assert ips.allocate_next() != got[0], "a released address waits for its turn"


def test_port_allocator() -> None:
    ports = PortAllocator(PORTS)
    assert sorted(ports.allocate_next() for _ in range(3)) == [30000, 30001, 30002]
    with pytest.raises(RangeFull):
        ports.allocate_next()
    with pytest.raises(AlreadyAllocated, match=r"^provided port is already allocated$"):
        ports.allocate(30001)
    with pytest.raises(NotInRange) as info:
        ports.allocate(30003)
    assert str(info.value) == (
        "provided port is not in the valid range. The range of valid ports is 30000-30002"
    )
    ports.release(30001)
    ports.allocate(30001)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30000-32767", (30000, 32767)), ("8080", (8080, 8080)), (" 1-2 ", (1, 2))],
)
def test_parse_port_range(text: str, expected: tuple[int, int]) -> None:
    assert parse_port_range(text) == expected


@pytest.mark.parametrize("text", ["", "a-b", "30000-", "5-4", "0-10", "1-70000", "1-2-3"])
def test_parse_port_range_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="port range"):
        parse_port_range(text)


def test_api_server_flags(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args([])
    assert (args.service_cluster_ip_range, args.service_node_port_range) == (
        "10.96.0.0/16",
        "30000-32767",
    )
    args = parse_args(["--service-cluster-ip-range", CIDR, "--service-node-port-range", PORTS])
    assert (args.service_cluster_ip_range, args.service_node_port_range) == (CIDR, PORTS)
    for flag, value in [
        ("--service-cluster-ip-range", "10.0.0.0/31"),
        ("--service-cluster-ip-range", "ten"),
        ("--service-node-port-range", "3-1"),
    ]:
        with pytest.raises(SystemExit):
            parse_args([flag, value])
        err = capsys.readouterr().err.splitlines()[-1]
        assert err.startswith("tug apiserver: error: argument ") and flag in err


# -- the strategy in an API server -------------------------------------------------------------


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ApiServer]:
    s = ApiServer(f"sqlite:///{tmp_path / 'state.db'}", service_cidr=CIDR, node_ports=PORTS)
    await s.start()
    try:
        yield s
    finally:
        if s.aggregator is not None:
            await s.aggregator.stop()
        await s.store.stop()


def body(name: str, **spec: Any) -> Obj:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


async def create(s: ApiServer, obj: Obj, dry_run: bool = False) -> Obj:
    return (await s.registry.create(SVC, "default", obj, WriteOptions(dry_run=dry_run))).obj


async def update(s: ApiServer, name: str, dry_run: bool = False, **spec: Any) -> Obj:
    """Replace the spec fields given, keeping the rest of the stored object (like an edit)."""
    obj = copy.deepcopy(s.registry.get(SVC, "default", name).obj)
    obj["spec"].update(spec)
    opts = WriteOptions(dry_run=dry_run)
    return (await s.registry.update(SVC, "default", name, obj, opts)).obj


def node_port(obj: Obj) -> int:
    return obj["spec"]["ports"][0]["nodePort"]


def cause(info: pytest.ExceptionInfo[errors.ApiError]) -> tuple[str, str]:
    [c] = info.value.details["causes"]
    return c.get("field", ""), c["message"]


async def test_kubernetes_service_gets_the_first_address_of_the_range(server: ApiServer) -> None:
    kubernetes = server.registry.get(SVC, "default", "kubernetes").obj
    assert kubernetes["spec"]["clusterIP"] == "10.100.0.1"


async def test_cluster_ips_run_out_with_an_internal_error(server: ApiServer) -> None:
    got = [(await create(server, body(f"s{i}")))["spec"]["clusterIP"] for i in range(5)]
    assert sorted(got) == [f"10.100.0.{i}" for i in range(2, 7)]
    with pytest.raises(errors.InternalError) as info:
        await create(server, body("one-too-many"))
    status = info.value.status()
    assert (status["code"], status["reason"]) == (500, "InternalError")
    assert status["message"] == (
        "Internal error occurred: failed to allocate a serviceIP: range is full"
    )
    assert cause(info) == ("", "failed to allocate a serviceIP: range is full")
    # headless and ExternalName Services need no address
    assert (await create(server, body("headless", clusterIP="None")))["spec"]["clusterIP"] == "None"
    ext = await create(server, body("ext", type="ExternalName", externalName="db.example"))
    assert "clusterIP" not in ext["spec"]

    await server.registry.delete(SVC, "default", "s2", {}, WriteOptions())
    assert (await create(server, body("again")))["spec"]["clusterIP"] == got[2]


async def test_node_ports_run_out_and_a_failed_create_keeps_nothing(server: ApiServer) -> None:
    ports = {node_port(await create(server, body(f"np{i}", type="NodePort"))) for i in range(3)}
    assert ports == {30000, 30001, 30002}
    free_ips = server.services.ips.free()
    with pytest.raises(errors.InternalError) as info:
        await create(server, body("np3", type="NodePort"))
    assert info.value.message == (
        "Internal error occurred: failed to allocate a nodePort: range is full"
    )
    assert server.services.ips.free() == free_ips, "the ClusterIP it took was given back"


async def test_node_port_conflicts_and_range_on_create(server: ApiServer) -> None:
    a = await create(server, body("a", type="NodePort", ports=[{"port": 80, "nodePort": 30001}]))
    assert node_port(a) == 30001
    with pytest.raises(errors.Invalid) as info:
        await create(server, body("b", type="NodePort", ports=[{"port": 80, "nodePort": 30001}]))
    assert cause(info) == (
        "spec.ports[0].nodePort",
        "Invalid value: 30001: provided port is already allocated",
    )
    with pytest.raises(errors.Invalid) as info:
        await create(server, body("c", type="NodePort", ports=[{"port": 80, "nodePort": 31000}]))
    assert cause(info) == (
        "spec.ports[0].nodePort",
        "Invalid value: 31000: provided port is not in the valid range. "
        "The range of valid ports is 30000-30002",
    )
    with pytest.raises(errors.Invalid) as info:
        await create(server, body("d", clusterIP="10.100.0.9"))
    assert cause(info)[0] == "spec.clusterIPs" and "is not in the valid range" in cause(info)[1]
    assert server.services.ips.free() == 4 and server.services.ports.free() == 2, "none kept"


async def test_dry_runs_take_nothing(server: ApiServer) -> None:
    dry = await create(
        server, body("a", type="NodePort", ports=[{"port": 80, "nodePort": 30000}]), dry_run=True
    )
    assert node_port(dry) == 30000 and dry["spec"]["clusterIP"].startswith("10.100.0.")
    await create(server, body("b", clusterIP=dry["spec"]["clusterIP"]))
    await create(server, body("c", type="NodePort", ports=[{"port": 80, "nodePort": 30000}]))

    preview = await update(server, "b", dry_run=True, type="NodePort")
    assert node_port(preview) in (30001, 30002)
    assert server.services.ports.free() == 2, "a dry-run update keeps no port"
    with pytest.raises(errors.Invalid):  # dry runs answer conflicts like real writes
        await update(server, "b", dry_run=True, type="NodePort", ports=[
            {"port": 80, "nodePort": 30000}])  # fmt: skip


async def test_update_to_a_node_port_held_by_another_service_is_refused(
    server: ApiServer,
) -> None:
    await create(server, body("a", type="NodePort", ports=[{"port": 80, "nodePort": 30000}]))
    await create(server, body("b"))
    held = [{"port": 80, "nodePort": 30000}]
    with pytest.raises(errors.Invalid) as info:
        await update(server, "b", type="NodePort", ports=held)
    assert cause(info) == (
        "spec.ports[0].nodePort",
        "Invalid value: 30000: provided port is already allocated",
    )
    c = await create(server, body("c", type="NodePort"))
    with pytest.raises(errors.Invalid):
        await update(server, "c", ports=held)
    assert node_port(server.registry.get(SVC, "default", "c").obj) == node_port(c)
    # a Service keeps its own port through an update, and may move to a free one
    kept = await update(server, "c", sessionAffinity="ClientIP")
    assert node_port(kept) == node_port(c)
    free = ({30001, 30002} - {node_port(c)}).pop()
    moved = await update(server, "c", ports=[{"port": 80, "nodePort": free}])
    assert node_port(moved) == free
    await create(server, body("d", type="NodePort", ports=[{"port": 80, "nodePort": node_port(c)}]))


async def test_a_failed_update_gives_back_what_it_took(
    server: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create(server, body("a", type="NodePort", ports=[{"port": 80, "nodePort": 30000}]))
    await create(server, body("ext", type="ExternalName", externalName="db.example"))
    ips, ports = server.services.ips.free(), server.services.ports.free()
    # the ClusterIP is taken first, then the node port is refused: the ClusterIP goes back
    with pytest.raises(errors.Invalid):
        await update(server, "ext", type="NodePort", ports=[{"port": 80, "nodePort": 30000}])
    assert (server.services.ips.free(), server.services.ports.free()) == (ips, ports)

    async def broken(_write: Any) -> Any:
        raise OSError("disk on fire")

    monkeypatch.setattr(server.store, "write", broken)
    with pytest.raises(OSError, match="disk on fire"):
        await update(server, "ext", type="NodePort")
    with pytest.raises(OSError, match="disk on fire"):
        await create(server, body("b", type="NodePort"))
    assert (server.services.ips.free(), server.services.ports.free()) == (ips, ports)


async def test_type_changes_allocate_and_release(server: ApiServer) -> None:
    ext = await create(server, body("x", type="ExternalName", externalName="db.example"))
    assert "clusterIP" not in ext["spec"]
    x = await update(server, "x", type="ClusterIP")
    ip = x["spec"]["clusterIP"]
    assert ip.startswith("10.100.0.") and x["spec"]["clusterIPs"] == [ip]
    assert x["spec"]["ipFamilies"] == ["IPv4"]

    n = await update(server, "x", type="NodePort")
    port = node_port(n)
    assert n["spec"]["clusterIP"] == ip, "the ClusterIP stays"

    # NodePort → ClusterIP (type alone changed): the node port is dropped and free again
    back = await update(server, "x", type="ClusterIP")
    assert "nodePort" not in back["spec"]["ports"][0]
    assert "externalTrafficPolicy" not in back["spec"]
    await create(server, body("p", type="NodePort", ports=[{"port": 80, "nodePort": port}]))

    # NodePort → ExternalName: the ClusterIP and the node port are dropped and free again
    p_ip = server.registry.get(SVC, "default", "p").obj["spec"]["clusterIP"]
    gone = await update(server, "p", type="ExternalName", externalName="db.example")
    assert not {"clusterIP", "clusterIPs", "ipFamilies"} & set(gone["spec"])
    assert "nodePort" not in gone["spec"]["ports"][0]
    await create(server, body("y", clusterIP=p_ip))
    await create(server, body("z", type="NodePort", ports=[{"port": 80, "nodePort": port}]))


async def test_cluster_ip_stays_immutable(server: ApiServer) -> None:
    a = await create(server, body("a"))
    other = "10.100.0.6" if a["spec"]["clusterIP"] != "10.100.0.6" else "10.100.0.5"
    with pytest.raises(errors.Invalid):
        await update(server, "a", clusterIP=other, clusterIPs=[other])
    assert (
        server.registry.get(SVC, "default", "a").obj["spec"]["clusterIP"] == a["spec"]["clusterIP"]
    )
