"""Cluster DNS: an authoritative server for the cluster domain, fed by informers.

``tug dns --server URL [--listen 10.96.0.10:53] [--domain cluster.local] [--interface tug-dns0]``

Records (Kubernetes DNS specification, the subset tugboat serves):

=============================================  ===============================================
name                                           answer
=============================================  ===============================================
``SVC.NS.svc.DOMAIN`` A                        the ClusterIP; for a headless Service the ready
                                               endpoint addresses; ExternalName → CNAME
``HOST.SVC.NS.svc.DOMAIN`` A                   a headless Service's endpoint, by its
                                               ``hostname`` or its dashed IP (``10-244-0-5``)
``_PORT._PROTO.SVC.NS.svc.DOMAIN`` SRV         per named port: the Service (or, headless, each
                                               endpoint) with the port number; targets' A
                                               records in the additional section
``A-B-C-D.NS.pod.DOMAIN`` A                    the IP, when a pod of NS has it ("verified")
``D.C.B.A.in-addr.arpa`` PTR                   a Service's ClusterIP → ``SVC.NS.svc.DOMAIN``;
                                               an endpoint's address →
                                               ``HOST.SVC.NS.svc.DOMAIN`` (as CoreDNS does)
``DOMAIN`` SOA / NS                            the zone's own records
=============================================  ===============================================

Anything else inside the domain is NXDOMAIN (NOERROR with no data when the name exists with
another type), with the SOA in the authority section; names outside it and ``in-addr.arpa`` are
REFUSED: the server forwards nothing (the machine is offline by design). TTL is 5 s, like CoreDNS.

Contract: answers reflect the informer caches, i.e. the API server as of the last watch event;
every query is answered from memory. UDP answers larger than the client's limit (512 bytes, or
its EDNS size) are truncated (TC) so the client retries over TCP, which is served on the same
address.

Binding the DNS ClusterIP: 10.96.0.10 is a Service address no Service owns (the allocator
reserves it), so no proxy rule points at it. ``tug dns`` adds it as a /32 to an interface it
creates (``tug-dns0``: a dummy interface, or a bridge without ports where the kernel lacks the
dummy driver, as on this machine kind), making it a local address of the machine: pods reach it
through their bridge gateway, the host directly. The interface is deleted on exit if this process
created it. Use ``--no-bind-address`` to listen on an address that already exists (tests use
127.0.0.1 and a free port).

Library: dnspython (message parsing and building, names, rdata types); the serving loop is
asyncio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from machinery.client import AsyncClient
from machinery.informer import InformerFactory, Store
from machinery.kinds import lookup

log = logging.getLogger(__name__)

SERVICES = lookup("services")
SLICES = lookup("endpointslices")
PODS = lookup("pods")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_TTL = 5
SLICE_INDEX = "dns-service"  # slices by namespace/service
POD_IP_INDEX = "dns-pod-ip"  # pods by namespace/podIP
CLUSTER_IP_INDEX = "dns-cluster-ip"  # services by ClusterIP
ENDPOINT_IP_INDEX = "dns-endpoint-ip"  # slices by endpoint address
REVERSE = dns.name.from_text("in-addr.arpa")
MAX_CACHED_ANSWERS = 20_000
Obj = dict[str, Any]
A, SRV, CNAME, SOA, NS, PTR = (
    dns.rdatatype.A,
    dns.rdatatype.SRV,
    dns.rdatatype.CNAME,
    dns.rdatatype.SOA,
    dns.rdatatype.NS,
    dns.rdatatype.PTR,
)
IN = dns.rdataclass.IN


def slice_index(eps: Obj) -> list[str]:
    m = eps.get("metadata") or {}
    svc = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{m.get('namespace', '')}/{svc}"] if svc else []


def pod_ip_index(pod: Obj) -> list[str]:
    ip = (pod.get("status") or {}).get("podIP")
    return [f"{(pod.get('metadata') or {}).get('namespace', '')}/{ip}"] if ip else []


def cluster_ip_index(service: Obj) -> list[str]:
    spec = service.get("spec") or {}
    ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return [ip for ip in ips if ip and ip != "None"]


def endpoint_ip_index(eps: Obj) -> list[str]:
    return sorted({ip for ep in eps.get("endpoints") or [] for ip in ep.get("addresses") or []})


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


@dataclass
class Answer:
    """What the zone says about one question."""

    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)


Records = dict[int, list[dns.rrset.RRset]]  # by rdata type; ADDITIONAL: glue for SRV answers
ADDITIONAL = -1


@dataclass(frozen=True)
class _Endpoint:
    ip: str
    host: str  # hostname, or dashed IP
    ports: dict[tuple[str, str], int]  # (port name, protocol) → number


class ClusterZone:
    """The cluster domain over three informer stores (Services, EndpointSlices, Pods), to which
    it adds the indexes it looks up by. Pure lookups: no I/O."""

    def __init__(
        self,
        services: Store,
        slices: Store,
        pods: Store,
        domain: str = "cluster.local",
        ttl: int = DEFAULT_TTL,
    ) -> None:
        services.add_indexers({CLUSTER_IP_INDEX: cluster_ip_index})
        slices.add_indexers({SLICE_INDEX: slice_index, ENDPOINT_IP_INDEX: endpoint_ip_index})
        pods.add_indexers({POD_IP_INDEX: pod_ip_index})
        self.services = services
        self.slices = slices
        self.pods = pods
        self.origin = dns.name.from_text(domain)
        self.ttl = ttl
        ns_name = dns.name.from_text("ns.dns", self.origin)
        self._soa = dns.rrset.from_text(
            self.origin, ttl, IN, SOA, f"{ns_name} hostmaster.{self.origin} 1 7200 1800 86400 {ttl}"
        )
        self._ns = dns.rrset.from_text(self.origin, ttl, IN, NS, str(ns_name))
        self._answers: dict[tuple[bytes, int | None], bytes] = {}

    def invalidate(self, *_: Any) -> None:
        """Forget every cached answer; call after the stores changed (informer handlers do)."""
        self._answers.clear()

    # -- lookups ---------------------------------------------------------------------------

    def resolve(self, qname: dns.name.Name, qtype: int) -> Answer:
        if qname.is_subdomain(REVERSE):
            return self._reverse(qname, qtype)
        if not qname.is_subdomain(self.origin):
            return Answer(rcode=dns.rcode.REFUSED)
        labels = [lbl.decode().lower() for lbl in qname.relativize(self.origin).labels]
        if qname == self.origin:
            found: Records = {SOA: [self._soa], NS: [self._ns]}
            return self._reply(found, qtype)
        if len(labels) >= 3 and labels[-1] == "svc":
            return self._reply(self._service_records(qname, labels[:-1]), qtype)
        if len(labels) == 3 and labels[-1] == "pod":
            return self._reply(self._pod_records(qname, labels[0], labels[1]), qtype)
        return self._reply(None, qtype)

    def _reverse(self, qname: dns.name.Name, qtype: int) -> Answer:
        """PTR for a ClusterIP or an endpoint address; NXDOMAIN for any other address."""
        octets = [lbl.decode() for lbl in qname.relativize(REVERSE).labels]
        target = self._name_for_ip(".".join(reversed(octets))) if len(octets) == 4 else None
        if target is None:
            return Answer(rcode=dns.rcode.NXDOMAIN)
        if qtype not in (PTR, dns.rdatatype.ANY):
            return Answer()
        return Answer(answer=[dns.rrset.from_text(qname, self.ttl, IN, PTR, str(target))])

    def _name_for_ip(self, ip: str) -> dns.name.Name | None:
        for service in self.services.by_index(CLUSTER_IP_INDEX, ip):
            m = service.get("metadata") or {}
            return dns.name.from_text(f"{m['name']}.{m['namespace']}.svc", self.origin)
        for eps in self.slices.by_index(ENDPOINT_IP_INDEX, ip):
            m = eps.get("metadata") or {}
            service = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
            if not service:
                continue
            for ep in eps.get("endpoints") or []:
                if ip in (ep.get("addresses") or []):
                    host = (ep.get("hostname") or dashed(ip)).lower()
                    name = f"{host}.{service}.{m['namespace']}.svc"
                    return dns.name.from_text(name, self.origin)
        return None

    def _reply(self, found: Records | None, qtype: int) -> Answer:
        if found is None:
            return Answer(rcode=dns.rcode.NXDOMAIN, authority=[self._soa])
        if CNAME in found and qtype != CNAME:
            return Answer(answer=found[CNAME])
        if qtype == dns.rdatatype.ANY:
            return Answer(answer=[r for t, rrs in found.items() if t != ADDITIONAL for r in rrs])
        if qtype not in found:
            return Answer(authority=[self._soa])  # NODATA
        answer = found[qtype]
        additional = found.get(ADDITIONAL, []) if qtype == SRV else []
        return Answer(answer=answer, additional=additional)

    def _service_records(self, qname: dns.name.Name, labels: list[str]) -> Records | None:
        # labels (relative, without "svc"): [.. extra ..] svc-name namespace
        *extra, name, namespace = labels
        service = self.services.get_by(namespace, name)
        if service is None:
            return None
        spec = service.get("spec") or {}
        base = dns.name.from_text(f"{name}.{namespace}.svc", self.origin)
        if spec.get("type") == "ExternalName":
            if extra:
                return None
            target = dns.name.from_text(spec.get("externalName") or "invalid.")
            return {CNAME: [dns.rrset.from_text(qname, self.ttl, IN, CNAME, str(target))]}
        headless = spec.get("clusterIP") in (None, "", "None")
        endpoints = self._endpoints(f"{namespace}/{name}") if headless else []
        if not extra:
            if headless:
                ips = sorted({e.ip for e in endpoints})
                return {A: [dns.rrset.from_text_list(qname, self.ttl, IN, A, ips)]} if ips else {}
            return {A: [dns.rrset.from_text(qname, self.ttl, IN, A, spec["clusterIP"])]}
        if len(extra) == 1 and headless:
            ips = sorted({e.ip for e in endpoints if e.host == extra[0]})
            if not ips:
                return None
            return {A: [dns.rrset.from_text_list(qname, self.ttl, IN, A, ips)]}
        if len(extra) == 2 and extra[0].startswith("_") and extra[1].startswith("_"):
            return self._srv(qname, service, extra[0][1:], extra[1][1:].upper(), base, endpoints)
        return None

    def _srv(
        self,
        qname: dns.name.Name,
        service: Obj,
        port_name: str,
        protocol: str,
        base: dns.name.Name,
        endpoints: list[_Endpoint],
    ) -> Records | None:
        spec = service.get("spec") or {}
        port = next(
            (
                p
                for p in spec.get("ports") or []
                if p.get("name") == port_name and (p.get("protocol") or "TCP") == protocol
            ),
            None,
        )
        if port is None:
            return None
        if spec.get("clusterIP") not in (None, "", "None"):
            srv = dns.rrset.from_text(qname, self.ttl, IN, SRV, f"0 100 {port['port']} {base}")
            extra = dns.rrset.from_text(base, self.ttl, IN, A, spec["clusterIP"])
            return {SRV: [srv], ADDITIONAL: [extra]}
        records, additional = [], []
        for ep in endpoints:
            number = ep.ports.get((port_name, protocol))
            if number is None:
                continue
            target = dns.name.from_text(ep.host, base)
            records.append(f"0 {100 // max(1, len(endpoints))} {number} {target}")
            additional.append(dns.rrset.from_text(target, self.ttl, IN, A, ep.ip))
        if not records:
            return {}
        return {
            SRV: [dns.rrset.from_text_list(qname, self.ttl, IN, SRV, records)],
            ADDITIONAL: additional,
        }

    def _endpoints(self, key: str) -> list[_Endpoint]:
        """Ready endpoints of a Service (its slices already honour publishNotReadyAddresses)."""
        out: dict[str, _Endpoint] = {}
        for eps in self.slices.by_index(SLICE_INDEX, key):
            if eps.get("addressType", "IPv4") != "IPv4":
                continue
            ports = {
                ((p.get("name") or ""), (p.get("protocol") or "TCP")): int(p["port"])
                for p in eps.get("ports") or []
                if p.get("port") is not None
            }
            for ep in eps.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue
                for ip in ep.get("addresses") or []:
                    out[ip] = _Endpoint(ip, (ep.get("hostname") or dashed(ip)).lower(), ports)
        return [out[k] for k in sorted(out)]

    def _pod_records(self, qname: dns.name.Name, host: str, namespace: str) -> Records | None:
        ip = host.replace("-", ".")
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            return None
        if not self.pods.by_index(POD_IP_INDEX, f"{namespace}/{ip}"):
            return None
        return {A: [dns.rrset.from_text(qname, self.ttl, IN, A, ip)]}

    # -- wire ------------------------------------------------------------------------------

    def handle(self, wire: bytes, max_udp: int | None = 512) -> bytes | None:
        """Answer one query in wire format (``max_udp`` None: TCP, no size limit). Returns
        None for garbage that cannot be answered at all.

        Answers are cached by the query's bytes after its ID (so a repeated question costs a
        dict lookup) until :meth:`invalidate`; the reply carries the asker's ID."""
        key = (wire[2:], max_udp)
        cached = self._answers.get(key)
        if cached is not None:
            return wire[:2] + cached[2:]
        reply = self._answer(wire, max_udp)
        if reply is not None and len(wire) >= 12:
            if len(self._answers) >= MAX_CACHED_ANSWERS:
                self._answers.clear()
            self._answers[key] = reply
        return reply

    def _answer(self, wire: bytes, max_udp: int | None) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.flags &= ~dns.flags.RA
        if query.opcode() != 0 or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != 0 else dns.rcode.FORMERR)
            return response.to_wire()
        q = query.question[0]
        result = self.resolve(q.name, q.rdtype) if q.rdclass == IN else Answer(dns.rcode.REFUSED)
        response.set_rcode(result.rcode)
        if result.rcode == dns.rcode.REFUSED:
            response.flags &= ~dns.flags.AA
        response.answer = result.answer
        response.authority = result.authority
        response.additional = result.additional
        limit = 65535
        if max_udp is not None:
            limit = max(max_udp, query.payload if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer, response.authority, response.additional = [], [], []
            response.flags |= dns.flags.TC
            return response.to_wire()


def _formerr(wire: bytes) -> bytes | None:
    if len(wire) < 12:
        return None
    (qid,) = struct.unpack("!H", wire[:2])
    return struct.pack("!HHHHHH", qid, 0x8000 | dns.rcode.FORMERR, 0, 0, 0, 0)


# -- serving -----------------------------------------------------------------------------


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, handle: Callable[[bytes], bytes | None]) -> None:
        self.handle = handle
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = self.handle(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


@dataclass
class DnsServer:
    """UDP and TCP listeners for a :class:`ClusterZone` on ``host:port``."""

    zone: ClusterZone
    host: str
    port: int
    udp: asyncio.DatagramTransport | None = None
    tcp: asyncio.Server | None = None

    async def start(self) -> DnsServer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self.zone.handle), local_addr=(self.host, self.port)
        )
        self.udp = transport
        self.port = transport.get_extra_info("sockname")[1]
        try:
            self.tcp = await asyncio.start_server(self._tcp_client, self.host, self.port)
        except OSError:
            self.close()
            raise
        return self

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                async with asyncio.timeout(30):
                    (size,) = struct.unpack("!H", await reader.readexactly(2))
                reply = self.zone.handle(await reader.readexactly(size), max_udp=None)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()


def zone_from_factory(factory: InformerFactory, domain: str, ttl: int = DEFAULT_TTL) -> ClusterZone:
    """A zone on the factory's informers (Services, EndpointSlices, Pods) whose answer cache
    is dropped on every Service or slice change and on pod IP changes."""
    svc_inf = factory.informer(SERVICES)
    slice_inf = factory.informer(SLICES)
    pod_inf = factory.informer(PODS)
    zone = ClusterZone(svc_inf.store, slice_inf.store, pod_inf.store, domain, ttl)
    for inf in (svc_inf, slice_inf):
        inf.add_handler(zone.invalidate, zone.invalidate, zone.invalidate)

    def pod_changed(old: Obj, new: Obj) -> None:
        if pod_ip_index(old) != pod_ip_index(new):
            zone.invalidate()

    pod_inf.add_handler(zone.invalidate, pod_changed, zone.invalidate)
    return zone


# -- the DNS address on a dummy interface ---------------------------------------------------


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def bind_address(address: str, interface: str) -> bool:
    """Make ``address`` local on ``interface`` (created if missing). Returns True when
    this call created the interface (so the caller deletes it on exit)."""
    created = False
    if _ip("link", "show", "dev", interface).returncode != 0:
        for kind in ("dummy", "bridge"):  # a kernel without the dummy driver: a port-less bridge
            out = _ip("link", "add", interface, "type", kind)
            if out.returncode == 0:
                break
        else:
            raise RuntimeError(f"cannot create interface {interface}: {out.stderr.strip()}")
        created = True
    if f" {address}/" not in _ip("-4", "addr", "show", "dev", interface).stdout:
        out = _ip("addr", "add", f"{address}/32", "dev", interface)
        if out.returncode != 0:
            raise RuntimeError(f"cannot add {address} to {interface}: {out.stderr.strip()}")
    _ip("link", "set", interface, "up")
    return created


def unbind_address(interface: str) -> None:
    """Delete ``interface`` (made by :func:`bind_address`) and the addresses on it."""
    out = _ip("link", "del", interface)
    if out.returncode != 0 and _ip("link", "show", "dev", interface).returncode == 0:
        raise RuntimeError(f"cannot delete interface {interface}: {out.stderr.strip()}")


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tug dns", description="Serve the cluster DNS zone.")
    p.add_argument("--server", help="API server URL (default: from the kubeconfig)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--listen", default="10.96.0.10:53", help="HOST:PORT (UDP and TCP)")
    p.add_argument("--domain", default="cluster.local")
    p.add_argument("--ttl", type=int, default=DEFAULT_TTL)
    p.add_argument("--interface", default="tug-dns0", help="dummy interface for the address")
    p.add_argument(
        "--bind-address",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add the listen address to --interface first (default on)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


async def _serve(zone: ClusterZone, args: argparse.Namespace, host: str, port: int) -> DnsServer:
    """Bind the address and start listening, retrying while another process (another
    cluster's DNS on this machine?) holds it: a busy address is logged, not a crash loop."""
    delay = 1.0
    while True:
        try:
            if args.bind_address:
                args.created = bind_address(host, args.interface) or args.created
            return await DnsServer(zone, host, port).start()
        except (OSError, RuntimeError) as e:
            log.error("cannot serve on %s:%d (%s); retrying in %.0f s", host, port, e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def _main(args: argparse.Namespace) -> None:
    host, _, port = args.listen.rpartition(":")
    args.created = False
    if args.server:
        client = AsyncClient(args.server, user_agent="tug-dns")
    else:
        client = AsyncClient.from_kubeconfig(args.kubeconfig, user_agent="tug-dns")
    factory = InformerFactory(client)
    zone = zone_from_factory(factory, args.domain, args.ttl)
    server: DnsServer | None = None
    stop = asyncio.Event()  # signals only set it: a second SIGTERM cannot cut the cleanup short
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    async def serve() -> None:
        nonlocal server
        await factory.start()
        await factory.wait_synced()
        server = await _serve(zone, args, host, int(port))
        log.info("serving %s on %s:%d (udp, tcp)", args.domain, host, server.port)
        await asyncio.Event().wait()

    task = asyncio.create_task(serve())
    try:
        done, _ = await asyncio.wait(
            [task, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED"
        )
        if task in done:
            await task  # it ended on its own: raise its error
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        log.info("shutting down")
    finally:
        if server is not None:
            server.close()
        if args.created:
            unbind_address(args.interface)
        await factory.stop()
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
