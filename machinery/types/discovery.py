"""``discovery.k8s.io/v1``: EndpointSlice."""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from .core import Object, ObjectReference
from .meta import K8sModel, opt, req
from .podspec import PROTOCOLS
from .validation import FieldErrors, port_range_errors

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")


class DiscoveryModel(K8sModel):
    schema_prefix: ClassVar[str] = "io.k8s.api.discovery.v1"


class EndpointConditions(DiscoveryModel):
    """State of one endpoint."""

    ready: bool | None = opt("Ready to receive traffic.")
    serving: bool | None = opt("Ready, even while terminating.")
    terminating: bool | None = opt("Being deleted.")


class SliceEndpoint(DiscoveryModel):
    """One backend."""

    schema_type: ClassVar[str | None] = "Endpoint"
    addresses: list[str] = req("Addresses of the backend (1 for IP address types).")
    conditions: EndpointConditions | None = opt("Readiness of the backend.")
    hostname: str | None = opt("Host name of the backend.")
    target_ref: ObjectReference | None = opt("The backing pod.")
    node_name: str | None = opt("Node the backend runs on.")
    zone: str | None = opt("Zone the backend runs in.")


class SlicePort(DiscoveryModel):
    """A port of the slice."""

    schema_type: ClassVar[str | None] = "EndpointPort"
    name: str | None = opt("Name, matching the service port's.")
    protocol: str | None = opt("TCP, UDP or SCTP; defaults to TCP.")
    port: int | None = opt("Port number.")
    app_protocol: str | None = opt("Application protocol hint.")


class EndpointSlice(Object):
    """A subset of the backends of a service."""

    schema_prefix: ClassVar[str] = "io.k8s.api.discovery.v1"
    address_type: str = req("IPv4, IPv6 or FQDN.")
    endpoints: list[SliceEndpoint] = req("The backends.")
    ports: list[SlicePort] | None = opt("Ports of every backend.")


def default_endpoint_slice(eps: EndpointSlice) -> None:
    for port in eps.ports or ():
        if port.name is None:
            port.name = ""
        if port.protocol is None:
            port.protocol = "TCP"


def validate_endpoint_slice(
    eps: EndpointSlice, old: dict[str, Any] | None, errs: FieldErrors
) -> None:
    errs.enum("addressType", eps.address_type, ADDRESS_TYPES)
    for i, endpoint in enumerate(eps.endpoints):
        if not endpoint.addresses:
            errs.required(f"endpoints[{i}].addresses", "must contain at least 1 address")
        if eps.address_type in ("IPv4", "IPv6"):
            for j, address in enumerate(endpoint.addresses):
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    errs.invalid(
                        f"endpoints[{i}].addresses[{j}]", address, "must be a valid IP address"
                    )
    for i, port in enumerate(eps.ports or ()):
        if port.port is not None:
            errs.check(f"ports[{i}].port", port.port, port_range_errors(port.port))
        errs.enum(f"ports[{i}].protocol", port.protocol, PROTOCOLS)
