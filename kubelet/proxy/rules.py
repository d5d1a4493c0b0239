"""The service proxy's decision: Services + EndpointSlices → a :class:`Ruleset` (pure, no I/O).

A :class:`Ruleset` lists, per Service port, where traffic to it may go: the ClusterIP (and any
``externalIPs``) and NodePort it is reached on, and the endpoints (``ip:port``) it is balanced
over. Backends render it for the kernel (:mod:`kubelet.proxy.iptables`); hollow nodes keep it
for tests and benchmarks to look at.

Contract (Kubernetes' kube-proxy semantics):

* Services of type ExternalName and headless Services (``clusterIP: None``) get no rules;
  LoadBalancer is handled as NodePort (there is no load balancer);
* endpoints are the slice endpoints with ``conditions.ready`` (unset counts as ready); when a
  port has none, the ``serving`` and ``terminating`` ones are used instead (graceful drain);
* a slice port is matched to the service port by name and protocol; a slice without that port
  contributes nothing to it;
* addresses are de-duplicated and sorted, so equal inputs give equal rulesets (a backend may
  skip the kernel when nothing changed);
* ``sessionAffinity: ClientIP`` carries its timeout (default 10800 s).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
DEFAULT_AFFINITY_TIMEOUT = 10800
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True, order=True)
class ServicePortRule:
    """Everything the kernel needs for one port of one Service."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP, UDP or SCTP
    cluster_ip: str
    port: int
    node_port: int | None = None
    external_ips: tuple[str, ...] = ()
    endpoints: tuple[tuple[str, int], ...] = ()  # (ip, port), sorted
    affinity_timeout: int | None = None  # seconds, for sessionAffinity: ClientIP

    @property
    def key(self) -> str:
        """``namespace/name:port`` (the port name, or the number when unnamed)."""
        return f"{self.namespace}/{self.name}:{self.port_name or self.port}"


@dataclass(frozen=True)
class Ruleset:
    """All Service ports of the cluster that need rules, in a stable order."""

    services: tuple[ServicePortRule, ...] = ()

    def find(self, ip: str, port: int, protocol: str = "TCP") -> ServicePortRule | None:
        """The rule for traffic to ``ip:port`` (a ClusterIP or external IP), if any."""
        for rule in self.services:
            if (
                rule.port == port
                and rule.protocol == protocol
                and (rule.cluster_ip == ip or ip in rule.external_ips)
            ):
                return rule
        return None

    def find_node_port(self, node_port: int, protocol: str = "TCP") -> ServicePortRule | None:
        for rule in self.services:
            if rule.node_port == node_port and rule.protocol == protocol:
                return rule
        return None

    def endpoint_count(self) -> int:
        return sum(len(r.endpoints) for r in self.services)


def service_key(obj: Obj) -> str:
    m = obj.get("metadata") or {}
    return f"{m.get('namespace', '')}/{m.get('name', '')}"


def slice_service_key(eps: Obj) -> str | None:
    """The ``namespace/name`` of the Service a slice belongs to (by its label)."""
    m = eps.get("metadata") or {}
    name = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{m.get('namespace', '')}/{name}" if name else None


def wants_rules(service: Obj) -> bool:
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP")
    return spec.get("type") != "ExternalName" and bool(ip) and ip != "None"


def endpoints_for_port(
    slices: Iterable[Obj], port_name: str, protocol: str
) -> list[tuple[str, int]]:
    """Ready ``(ip, port)`` pairs for one service port; serving-terminating ones when no
    endpoint is ready."""
    ready: set[tuple[str, int]] = set()
    draining: set[tuple[str, int]] = set()
    for eps in slices:
        if eps.get("addressType", "IPv4") != "IPv4":
            continue
        number = None
        for p in eps.get("ports") or []:
            if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol:
                number = p.get("port")
                break
        if number is None:
            continue
        for ep in eps.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            for ip in ep.get("addresses") or []:
                if cond.get("ready") is not False:
                    ready.add((ip, int(number)))
                elif cond.get("serving") and cond.get("terminating"):
                    draining.add((ip, int(number)))
    return sorted(ready or draining, key=_endpoint_order)


def _endpoint_order(ep: tuple[str, int]) -> tuple[tuple[int, ...], int]:
    try:
        return tuple(int(x) for x in ep[0].split(".")), ep[1]
    except ValueError:
        return (1 << 16,), ep[1]


def service_rules(service: Obj, slices: Iterable[Obj]) -> list[ServicePortRule]:
    """The rules of one Service (empty when it needs none)."""
    if not wants_rules(service):
        return []
    slices = list(slices)
    spec = service.get("spec") or {}
    m = service.get("metadata") or {}
    node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
    affinity = None
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    out = []
    for sp in spec.get("ports") or []:
        name = sp.get("name") or ""
        protocol = sp.get("protocol") or "TCP"
        out.append(
            ServicePortRule(
                namespace=m.get("namespace", ""),
                name=m.get("name", ""),
                port_name=name,
                protocol=protocol,
                cluster_ip=spec["clusterIP"],
                port=int(sp["port"]),
                node_port=int(sp["nodePort"]) if node_ports and sp.get("nodePort") else None,
                external_ips=tuple(sorted(spec.get("externalIPs") or ())),
                endpoints=tuple(endpoints_for_port(slices, name, protocol)),
                affinity_timeout=affinity,
            )
        )
    return out


def compute_ruleset(services: Iterable[Obj], slices_by_service: dict[str, list[Obj]]) -> Ruleset:
    """Pure: the ruleset for ``services`` given their slices (keyed by ``namespace/name``)."""
    rules: list[ServicePortRule] = []
    for svc in services:
        rules.extend(service_rules(svc, slices_by_service.get(service_key(svc), ())))
    rules.sort()
    return Ruleset(tuple(rules))
