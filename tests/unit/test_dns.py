"""Cluster DNS: the zone's answers (table-driven) and the UDP/TCP server on loopback."""

from __future__ import annotations

from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from kubelet.dns import (
    POD_IP_INDEX,
    SLICE_INDEX,
    ClusterZone,
    DnsServer,
    pod_ip_index,
    slice_index,
)
from machinery.informer import Store

Obj = dict[str, Any]


def service(name: str, ns: str = "default", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpoint_slice(svc: str, ns: str, endpoints: list[Obj], ports: list[Obj]) -> Obj:
    return {
        "metadata": {
            "name": f"{svc}-abc",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def ep(ip: str, ready: bool = True, hostname: str | None = None) -> Obj:
    out: Obj = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        out["hostname"] = hostname
    return out


@pytest.fixture
def zone() -> ClusterZone:
    services, slices, pods = (
        Store(),
        Store({SLICE_INDEX: slice_index}),
        Store({POD_IP_INDEX: pod_ip_index}),
    )
    services.put(service("web", clusterIP="10.96.0.20", ports=[{"name": "http", "port": 80}]))
    services.put(service("db", "data", clusterIP="None", ports=[{"name": "pg", "port": 5432}]))
    services.put(service("ext", type="ExternalName", externalName="example.org"))
    slices.put(
        endpoint_slice(
            "db",
            "data",
            [ep("10.244.0.6", hostname="db-0"), ep("10.244.0.5"), ep("10.244.0.7", ready=False)],
            [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        )
    )
    pods.put({"metadata": {"name": "p", "namespace": "default"}, "status": {"podIP": "10.244.0.9"}})
    return ClusterZone(services, slices, pods)


def texts(rrsets: list[Any]) -> list[str]:
    return sorted(r.to_text() for rrset in rrsets for r in rrset)


@pytest.mark.parametrize(
    ("qname", "qtype", "rcode", "answers"),
    [
        ("web.default.svc.cluster.local.", "A", "NOERROR", ["10.96.0.20"]),
        ("WEB.Default.svc.cluster.local.", "A", "NOERROR", ["10.96.0.20"]),
        ("web.default.svc.cluster.local.", "AAAA", "NOERROR", []),
        ("nope.default.svc.cluster.local.", "A", "NXDOMAIN", []),
        ("web.other.svc.cluster.local.", "A", "NXDOMAIN", []),
        ("db.data.svc.cluster.local.", "A", "NOERROR", ["10.244.0.5", "10.244.0.6"]),
        ("db-0.db.data.svc.cluster.local.", "A", "NOERROR", ["10.244.0.6"]),
        ("10-244-0-5.db.data.svc.cluster.local.", "A", "NOERROR", ["10.244.0.5"]),
        ("10-244-0-7.db.data.svc.cluster.local.", "A", "NXDOMAIN", []),
        ("_http._tcp.web.default.svc.cluster.local.", "SRV", "NOERROR",
         ["0 100 80 web.default.svc.cluster.local."]),
        ("_pg._tcp.db.data.svc.cluster.local.", "SRV", "NOERROR",
         ["0 50 5432 10-244-0-5.db.data.svc.cluster.local.",
          "0 50 5432 db-0.db.data.svc.cluster.local."]),
        ("_nope._tcp.web.default.svc.cluster.local.", "SRV", "NXDOMAIN", []),
        ("ext.default.svc.cluster.local.", "A", "NOERROR", ["example.org."]),
        ("10-244-0-9.default.pod.cluster.local.", "A", "NOERROR", ["10.244.0.9"]),
        ("10-244-0-9.other.pod.cluster.local.", "A", "NXDOMAIN", []),
        ("not-an-ip.default.pod.cluster.local.", "A", "NXDOMAIN", []),
        ("cluster.local.", "SOA", "NOERROR", ["ns.dns.cluster.local. hostmaster.cluster.local. "
                                              "1 7200 1800 86400 5"]),
        ("example.org.", "A", "REFUSED", []),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v and " " not in v else None,
)  # fmt: skip
def test_zone_answers(
    zone: ClusterZone, qname: str, qtype: str, rcode: str, answers: list[str]
) -> None:
    result = zone.resolve(dns.name.from_text(qname), dns.rdatatype.from_text(qtype))
    assert dns.rcode.to_text(result.rcode) == rcode
    assert texts(result.answer) == answers
    if rcode == "NXDOMAIN" or (rcode == "NOERROR" and not answers):
        assert [r.rdtype for r in result.authority] == [dns.rdatatype.SOA]


@pytest.mark.parametrize(
    ("qname", "qtype", "rcode", "answers"),
    [
        ("20.0.96.10.in-addr.arpa.", "PTR", "NOERROR", ["web.default.svc.cluster.local."]),
        ("6.0.244.10.in-addr.arpa.", "PTR", "NOERROR", ["db-0.db.data.svc.cluster.local."]),
        ("5.0.244.10.in-addr.arpa.", "PTR", "NOERROR", ["10-244-0-5.db.data.svc.cluster.local."]),
        ("20.0.96.10.in-addr.arpa.", "A", "NOERROR", []),
        ("99.0.96.10.in-addr.arpa.", "PTR", "NXDOMAIN", []),
        ("0.96.10.in-addr.arpa.", "PTR", "NXDOMAIN", []),
    ],
)
def test_reverse_lookups(
    zone: ClusterZone, qname: str, qtype: str, rcode: str, answers: list[str]
) -> None:
    result = zone.resolve(dns.name.from_text(qname), dns.rdatatype.from_text(qtype))
    assert dns.rcode.to_text(result.rcode) == rcode
    assert texts(result.answer) == answers


def test_reverse_lookup_follows_the_stores(zone: ClusterZone) -> None:
    name = dns.name.from_text("30.0.96.10.in-addr.arpa.")
    assert zone.resolve(name, dns.rdatatype.PTR).rcode == dns.rcode.NXDOMAIN
    zone.services.put(service("new", "team", clusterIP="10.96.0.30"))
    zone.invalidate()
    assert texts(zone.resolve(name, dns.rdatatype.PTR).answer) == ["new.team.svc.cluster.local."]


def test_srv_answers_carry_glue(zone: ClusterZone) -> None:
    name = dns.name.from_text("_pg._tcp.db.data.svc.cluster.local.")
    result = zone.resolve(name, dns.rdatatype.SRV)
    assert texts(result.additional) == ["10.244.0.5", "10.244.0.6"]


def test_wire_round_trip_and_truncation(zone: ClusterZone) -> None:
    many = Store({SLICE_INDEX: slice_index})
    many.put(
        endpoint_slice(
            "db", "data", [ep(f"10.244.1.{i}") for i in range(1, 80)], [{"name": "pg", "port": 1}]
        )
    )
    big = ClusterZone(zone.services, many, zone.pods)
    query = dns.message.make_query("db.data.svc.cluster.local.", "A")
    small = dns.message.from_wire(big.handle(query.to_wire()))
    assert small.flags & dns.flags.TC and not small.answer
    full = dns.message.from_wire(big.handle(query.to_wire(), max_udp=None))
    assert len(full.answer[0]) == 79 and full.flags & dns.flags.AA
    assert big.handle(b"\x00\x01garbage-garbage") is not None  # FORMERR, not a crash


async def test_server_answers_over_udp_and_tcp(zone: ClusterZone) -> None:
    server = await DnsServer(zone, "127.0.0.1", 0).start()
    try:
        query = dns.message.make_query("web.default.svc.cluster.local.", "A")
        for send in (dns.asyncquery.udp, dns.asyncquery.tcp):
            reply = await send(query, "127.0.0.1", port=server.port, timeout=5)
            assert texts(reply.answer) == ["10.96.0.20"]
        refused = await dns.asyncquery.udp(
            dns.message.make_query("example.org.", "A"), "127.0.0.1", port=server.port, timeout=5
        )
        assert refused.rcode() == dns.rcode.REFUSED
    finally:
        server.close()


def test_cached_answers_carry_the_askers_id_and_follow_invalidate(zone: ClusterZone) -> None:
    first = dns.message.make_query("web.default.svc.cluster.local.", "A")
    second = dns.message.make_query("web.default.svc.cluster.local.", "A")
    second.id = (first.id + 1) % 65536
    a = dns.message.from_wire(zone.handle(first.to_wire()))
    b = dns.message.from_wire(zone.handle(second.to_wire()))
    assert (a.id, b.id) == (first.id, second.id)
    assert texts(b.answer) == ["10.96.0.20"]
    zone.services.put(service("web", clusterIP="10.96.0.21", ports=[]))
    zone.invalidate()
    c = dns.message.from_wire(zone.handle(second.to_wire()))
    assert texts(c.answer) == ["10.96.0.21"]
