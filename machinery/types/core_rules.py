"""Defaulting and validation of the core (``v1``) kinds other than the pod spec itself.

Every ``default_*`` mutates the model in place; every ``validate_*(obj, old, errs)`` reads the
defaulted model, the stored object ``old`` (a plain dict, on update only) and appends causes.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any

from .core import (
    ConfigMap,
    Container,
    Event,
    Namespace,
    NamespaceSpec,
    NamespaceStatus,
    Node,
    Pod,
    PodStatus,
    Secret,
    Service,
    ServiceAccount,
)
from .podspec import PROTOCOLS, TAINT_EFFECTS, default_pod_spec, validate_pod_spec
from .validation import (
    FieldErrors,
    config_key_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    iana_svc_name_errors,
    port_range_errors,
    qualified_name_errors,
    quantity,
    validate_labels,
)

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
_MAX_DATA_SIZE = 1024 * 1024

# --- Pod ---------------------------------------------------------------------------------------


def default_pod(pod: Pod) -> None:
    """Pod spec defaults, plus phase Pending and the QoS class when the status lacks them."""
    if pod.spec is None:
        return
    default_pod_spec(pod.spec)
    if pod.status is None:
        pod.status = PodStatus()
    if pod.status.phase is None:
        pod.status.phase = "Pending"
    if pod.status.qos_class is None:
        pod.status.qos_class = qos_class([*pod.spec.containers, *(pod.spec.init_containers or ())])


def qos_class(containers: list[Container]) -> str:
    """Guaranteed, Burstable or BestEffort, computed from cpu and memory as Kubernetes does."""
    any_set = False
    guaranteed = True
    for c in containers:
        requests = (c.resources.requests if c.resources else None) or {}
        limits = (c.resources.limits if c.resources else None) or {}
        for name in ("cpu", "memory"):
            req, lim = quantity(requests.get(name, "0")), quantity(limits.get(name, "0"))
            if req or lim:
                any_set = True
            if not lim or req != lim:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


_POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)"
)


def validate_pod(pod: Pod, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    if pod.spec is None:
        errs.required("spec")
        return
    validate_pod_spec(pod.spec, "spec", errs)
    old_spec = old.get("spec") if old is not None else None
    if isinstance(old_spec, dict) and (
        _mutable_view(pod.spec.to_dict(), old_spec) != _mutable_view(old_spec, None)
    ):
        errs.forbidden("spec", _POD_UPDATE_MESSAGE)


def _mutable_view(spec: dict[str, Any], old_spec: dict[str, Any] | None) -> dict[str, Any]:
    """The spec without the fields a pod update may change (binding may set nodeName once)."""
    view = dict(spec)
    for key in ("containers", "initContainers"):
        if isinstance(view.get(key), list):
            view[key] = [
                {k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                for c in view[key]
            ]
    view.pop("activeDeadlineSeconds", None)
    view.pop("tolerations", None)
    view.pop("terminationGracePeriodSeconds", None)
    if not (old_spec if old_spec is not None else spec).get("nodeName"):
        view.pop("nodeName", None)
    return view


# --- Node --------------------------------------------------------------------------------------


def default_node(node: Node) -> None:
    status = node.status
    if status is not None and status.allocatable is None and status.capacity is not None:
        status.allocatable = dict(status.capacity)


def validate_node(node: Node, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    spec = node.spec
    if spec is None:
        return
    cidrs = list(spec.pod_cidrs or ())
    if spec.pod_cidr and spec.pod_cidr not in cidrs:
        cidrs.insert(0, spec.pod_cidr)
    for i, cidr in enumerate(cidrs):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            errs.invalid(f"spec.podCIDRs[{i}]", cidr, "must be a valid CIDR")
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(spec.taints or ()):
        p = f"spec.taints[{i}]"
        errs.check(f"{p}.key", taint.key, qualified_name_errors(taint.key))
        if taint.effect not in TAINT_EFFECTS:
            errs.not_supported(f"{p}.effect", taint.effect, TAINT_EFFECTS)
        if (taint.key, taint.effect) in seen:
            errs.duplicate(p, f"{taint.key}:{taint.effect}")
        seen.add((taint.key, taint.effect))
    old_cidr = ((old or {}).get("spec") or {}).get("podCIDR")
    if old_cidr and spec.pod_cidr != old_cidr:
        errs.forbidden(
            "spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'
        )


# --- Service -----------------------------------------------------------------------------------


def default_service(svc: Service, old: dict[str, Any] | None) -> None:
    """Type, affinity, traffic policies, port protocol and targetPort; on update, the
    allocated clusterIP(s) and nodePorts of ``old`` are kept when the new object omits them."""
    spec = svc.spec
    if spec is None:
        return
    if spec.type is None:
        spec.type = "ClusterIP"
    if spec.session_affinity is None:
        spec.session_affinity = "None"
    if spec.type != "ExternalName" and spec.internal_traffic_policy is None:
        spec.internal_traffic_policy = "Cluster"
    if spec.type in ("NodePort", "LoadBalancer") and spec.external_traffic_policy is None:
        spec.external_traffic_policy = "Cluster"
    if spec.type == "LoadBalancer" and spec.allocate_load_balancer_node_ports is None:
        spec.allocate_load_balancer_node_ports = True
    for port in spec.ports or ():
        if port.protocol is None:
            port.protocol = "TCP"
        if port.target_port is None:
            port.target_port = port.port
    old_spec = (old or {}).get("spec") or {}
    if old_spec and spec.type != "ExternalName":
        if spec.cluster_ip is None and old_spec.get("clusterIP"):
            spec.cluster_ip = old_spec["clusterIP"]
            if spec.cluster_ips is None and old_spec.get("clusterIPs"):
                spec.cluster_ips = list(old_spec["clusterIPs"])
        if spec.type in ("NodePort", "LoadBalancer"):
            allocated = {
                (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                for p in old_spec.get("ports") or ()
                if isinstance(p, dict)
            }
            for port in spec.ports or ():
                if port.node_port is None:
                    port.node_port = allocated.get((port.port, port.protocol))


def validate_service(svc: Service, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    spec = svc.spec
    if spec is None:
        errs.required("spec")
        return
    errs.enum("spec.type", spec.type, SERVICE_TYPES)
    errs.enum("spec.sessionAffinity", spec.session_affinity, SESSION_AFFINITIES)
    errs.enum("spec.internalTrafficPolicy", spec.internal_traffic_policy, TRAFFIC_POLICIES)
    errs.enum("spec.externalTrafficPolicy", spec.external_traffic_policy, TRAFFIC_POLICIES)
    validate_labels(spec.selector, "spec.selector", errs)
    if spec.type == "ExternalName":
        if not spec.external_name:
            errs.required("spec.externalName")
        else:
            errs.check(
                "spec.externalName",
                spec.external_name,
                dns1123_subdomain_errors(spec.external_name.rstrip(".")),
            )
    elif not spec.ports and spec.cluster_ip != "None":
        errs.required("spec.ports")
    _validate_cluster_ip(spec.cluster_ip, spec.type, errs)
    _validate_service_ports(svc, errs)
    old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
    if old_ip and spec.type != "ExternalName" and spec.cluster_ip != old_ip:
        errs.invalid("spec.clusterIP", spec.cluster_ip or "", "field is immutable")


def _validate_cluster_ip(ip: str | None, svc_type: str | None, errs: FieldErrors) -> None:
    if not ip:
        return
    if ip == "None":
        if svc_type not in ("ClusterIP", None):
            errs.invalid("spec.clusterIP", ip, f"may not be set to 'None' for {svc_type} services")
        return
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        errs.invalid("spec.clusterIP", ip, "must be empty, 'None', or a valid IP address")


def _validate_service_ports(svc: Service, errs: FieldErrors) -> None:
    spec = svc.spec
    assert spec is not None
    ports = spec.ports or []
    names: set[str] = set()
    keys: set[tuple[int, str | None]] = set()
    node_ports: set[tuple[int, str | None]] = set()
    for i, port in enumerate(ports):
        p = f"spec.ports[{i}]"
        if len(ports) > 1 and not port.name:
            errs.required(f"{p}.name")
        if port.name:
            errs.check(f"{p}.name", port.name, dns1123_label_errors(port.name))
            if port.name in names:
                errs.duplicate(f"{p}.name", port.name)
            names.add(port.name)
        errs.check(f"{p}.port", port.port, port_range_errors(port.port))
        errs.enum(f"{p}.protocol", port.protocol, PROTOCOLS)
        if (port.port, port.protocol) in keys:
            errs.duplicate(p, {"port": port.port, "protocol": port.protocol})
        keys.add((port.port, port.protocol))
        target = port.target_port
        if isinstance(target, int):
            errs.check(f"{p}.targetPort", target, port_range_errors(target))
        elif target is not None:
            errs.check(f"{p}.targetPort", target, iana_svc_name_errors(target))
        if port.node_port:
            # the API server's allocator checks --service-node-port-range
            if spec.type not in ("NodePort", "LoadBalancer"):
                errs.forbidden(f"{p}.nodePort", f"may not be used when `type` is '{spec.type}'")
            else:
                errs.check(f"{p}.nodePort", port.node_port, port_range_errors(port.node_port))
            if (port.node_port, port.protocol) in node_ports:
                errs.duplicate(f"{p}.nodePort", port.node_port)
            node_ports.add((port.node_port, port.protocol))


# --- Endpoints ---------------------------------------------------------------------------------


def default_endpoints(ep: Any) -> None:
    for subset in ep.subsets or ():
        for port in subset.ports or ():
            if port.protocol is None:
                port.protocol = "TCP"


def validate_endpoints(ep: Any, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    for i, subset in enumerate(ep.subsets or ()):
        for field in ("addresses", "notReadyAddresses"):
            attr = "addresses" if field == "addresses" else "not_ready_addresses"
            for j, address in enumerate(getattr(subset, attr) or ()):
                try:
                    ipaddress.ip_address(address.ip)
                except ValueError:
                    errs.invalid(
                        f"subsets[{i}].{field}[{j}].ip", address.ip, "must be a valid IP address"
                    )
        for j, port in enumerate(subset.ports or ()):
            p = f"subsets[{i}].ports[{j}]"
            errs.check(f"{p}.port", port.port, port_range_errors(port.port))
            errs.enum(f"{p}.protocol", port.protocol, PROTOCOLS)


# --- ConfigMap, Secret -------------------------------------------------------------------------


def validate_config_map(cm: ConfigMap, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    size = 0
    for key, value in (cm.data or {}).items():
        errs.check(f"data[{key}]", key, config_key_errors(key))
        size += len(key) + len(value)
    for key, value in (cm.binary_data or {}).items():
        errs.check(f"binaryData[{key}]", key, config_key_errors(key))
        if key in (cm.data or {}):
            errs.invalid(f"data[{key}]", key, "duplicate of key present in binaryData")
        if not _is_base64(value):
            errs.invalid(f"binaryData[{key}]", "<binary>", "illegal base64 data")
        size += len(key) + len(value) * 3 // 4
    if size > _MAX_DATA_SIZE:
        errs.too_long("", _MAX_DATA_SIZE)
    _validate_immutable_data(cm, old, ("data", "binaryData"), errs)


def default_secret(secret: Secret) -> None:
    """Type Opaque; stringData is encoded into data and not kept (as Kubernetes does)."""
    if secret.type is None:
        secret.type = "Opaque"
    if secret.string_data:
        data = dict(secret.data or {})
        for key, value in secret.string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()
        secret.data = data
        secret.string_data = None


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
}


def validate_secret(secret: Secret, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    data = secret.data or {}
    size = 0
    for key, value in data.items():
        errs.check(f"data[{key}]", key, config_key_errors(key))
        if not _is_base64(value):
            errs.invalid(f"data[{key}]", "<secret contents redacted>", "illegal base64 data")
        size += len(value) * 3 // 4
    if size > _MAX_DATA_SIZE:
        errs.too_long("data", _MAX_DATA_SIZE)
    for key in _SECRET_REQUIRED_KEYS.get(secret.type or "", ()):
        if key not in data:
            errs.required(f"data[{key}]")
    if old is not None:
        old_type = old.get("type") or "Opaque"
        if secret.type != old_type:
            errs.invalid("type", secret.type, "field is immutable")
    _validate_immutable_data(secret, old, ("data",), errs)


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _validate_immutable_data(
    obj: Any, old: dict[str, Any] | None, fields: tuple[str, ...], errs: FieldErrors
) -> None:
    if old is None or not old.get("immutable"):
        return
    if not obj.immutable:
        errs.forbidden("immutable", "field is immutable when `immutable` is set")
    new = obj.to_dict()
    for field in fields:
        if new.get(field) != old.get(field):
            errs.forbidden(field, "field is immutable when `immutable` is set")


# --- Namespace, Event, ServiceAccount ----------------------------------------------------------


def default_namespace(ns: Namespace) -> None:
    if ns.spec is None:
        ns.spec = NamespaceSpec()
    if ns.spec.finalizers is None:
        ns.spec.finalizers = ["kubernetes"]
    if ns.status is None:
        ns.status = NamespaceStatus()
    if ns.status.phase is None:
        ns.status.phase = "Active"


def validate_namespace(ns: Namespace, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    for i, finalizer in enumerate((ns.spec.finalizers if ns.spec else None) or ()):
        errs.check(f"spec.finalizers[{i}]", finalizer, qualified_name_errors(finalizer))
    errs.enum("status.phase", ns.status.phase if ns.status else None, ("Active", "Terminating"))


def validate_event(event: Event, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    namespace = event.metadata.namespace if event.metadata else None
    involved = event.involved_object.namespace
    if namespace and involved and involved != namespace:
        errs.invalid("involvedObject.namespace", involved, "does not match event.namespace")
    if event.count is not None:
        errs.non_negative("count", event.count)


def validate_service_account(
    sa: ServiceAccount, old: dict[str, Any] | None, errs: FieldErrors
) -> None:
    for i, ref in enumerate(sa.image_pull_secrets or ()):
        if not ref.name:
            errs.required(f"imagePullSecrets[{i}].name")
