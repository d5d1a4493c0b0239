"""EndpointSlice controller (discovery.k8s.io/v1), mirroring the legacy ``v1/Endpoints`` too.

Wiring: informers on Services, Pods, EndpointSlices and Endpoints. A Service event enqueues its
key; a Pod event enqueues every Service of its namespace whose selector matches the pod's old or
new labels; a change to, or the deletion of, a slice this controller manages (or an Endpoints
object) enqueues the Service it belongs to, so hand edits are repaired.

``reconcile(key)`` (key = the Service's ``namespace/name``) reads the Service and the namespace's
pods from the caches and computes, with the pure :func:`plan_endpoints`, the exact set of slices
and the Endpoints object the Service should have; then writes only the differences (create,
update guarded by resourceVersion, delete). A Service that is gone loses its slices and
Endpoints; a Service without a selector (or of type ExternalName) is left alone: its endpoints
are the user's.

Contract, following Kubernetes:

* an endpoint is a pod of the namespace matching the selector, with a ``status.podIP``, not
  Succeeded/Failed; ``ready`` = pod Ready and not terminating (or ``publishNotReadyAddresses``),
  ``serving`` = pod Ready, ``terminating`` = ``deletionTimestamp`` set;
* named target ports resolve per pod against its containers' ports; pods whose ports resolve to
  the same numbers share slices, at most :data:`MAX_ENDPOINTS_PER_SLICE` endpoints each; a pod
  that lacks a named port is listed without that port (as Kubernetes does);
* the legacy Endpoints lists ready pods under ``addresses`` and not-ready ones under
  ``notReadyAddresses``; terminating pods are left out unless ``publishNotReadyAddresses``;
* slices are named deterministically (``<service>-<hash of their port set and index>``), carry
  the labels ``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by`` and a
  controller ownerReference to the Service.

Deliberate difference: slices are re-packed from scratch on every change (sorted by address),
rather than Kubernetes' churn-minimising placement; fine for hundreds of endpoints per Service.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from controllers.objects import (
    is_deleting,
    key_of,
    labels_of,
    meta,
    name_of,
    namespace_of,
    owner_reference,
    split_key,
    uid_of,
)
from machinery import errors
from machinery.controller import Result
from machinery.informer import InformerFactory, Store
from machinery.kinds import lookup
from machinery.selectors import LabelSelector
from machinery.workqueue import WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = lookup("pods")
SERVICES = lookup("services")
SLICES = lookup("endpointslices")
ENDPOINTS = lookup("endpoints")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
MAX_ENDPOINTS_PER_SLICE = 100

PortKey = tuple[tuple[str, str, int], ...]  # (name, protocol, number) per resolved port


@dataclass(frozen=True)
class EndpointsPlan:
    """What a Service's endpoints should be: slice bodies by name, and the Endpoints body."""

    slices: dict[str, Obj]
    endpoints: Obj


# -- the pure part -----------------------------------------------------------------------------


def service_selector(service: Obj) -> LabelSelector | None:
    """The Service's pod selector; None when the controller must not manage its endpoints."""
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName" or not spec.get("selector"):
        return None
    return LabelSelector.from_labels(spec["selector"])


def resolve_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod's port number for ``service_port.targetPort`` (a number, or a container port
    name looked up in the pod); None when the pod has no port of that name."""
    target = service_port.get("targetPort")
    if target is None or target == "":
        return int(service_port["port"])
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for p in container.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == protocol:
                return int(p["containerPort"])
    return None


def is_endpoint_candidate(pod: Obj) -> bool:
    """A pod that can appear in endpoints at all: has an IP and is not terminal."""
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and status.get("phase") not in ("Succeeded", "Failed")


def _pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def endpoint_conditions(service: Obj, pod: Obj) -> Obj:
    """``ready``/``serving``/``terminating`` as Kubernetes computes them."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    serving = _pod_ready(pod)
    terminating = is_deleting(pod)
    return {
        "ready": publish or (serving and not terminating),
        "serving": serving,
        "terminating": terminating,
    }


def _target_ref(pod: Obj) -> Obj:
    return {
        "kind": "Pod",
        "namespace": namespace_of(pod),
        "name": name_of(pod),
        "uid": uid_of(pod),
    }


def _hostname(service: Obj, pod: Obj) -> str | None:
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == name_of(service):
        return str(spec["hostname"])
    return None


def _resolved_ports(service: Obj, pod: Obj) -> PortKey:
    out = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        number = resolve_port(pod, sp)
        if number is not None:
            out.append((sp.get("name") or "", sp.get("protocol") or "TCP", number))
    return tuple(out)


def _slice_ports(service: Obj, key: PortKey) -> list[Obj]:
    app = {
        (sp.get("name") or ""): sp.get("appProtocol")
        for sp in (service.get("spec") or {}).get("ports") or []
    }
    ports = []
    for name, protocol, number in key:
        port: Obj = {"name": name, "protocol": protocol, "port": number}
        if app.get(name):
            port["appProtocol"] = app[name]
        ports.append(port)
    return ports


def _slice_name(service: Obj, key: PortKey, index: int) -> str:
    digest = hashlib.sha256(repr((key, index)).encode()).hexdigest()[:5]
    return f"{name_of(service)[:56]}-{digest}"


def _slice_body(service: Obj, name: str, endpoints: list[Obj], ports: list[Obj]) -> Obj:
    labels = {
        **labels_of(service),
        SERVICE_NAME_LABEL: name_of(service),
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    return {
        "apiVersion": SLICES.api_version,
        "kind": SLICES.kind,
        "metadata": {
            "name": name,
            "namespace": namespace_of(service),
            "labels": labels,
            "ownerReferences": [owner_reference(_with_kind(service))],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def plan_endpoints(
    service: Obj, pods: list[Obj], max_per_slice: int = MAX_ENDPOINTS_PER_SLICE
) -> EndpointsPlan:
    """Pure: the slices and Endpoints object ``service`` should have, given the namespace's
    ``pods`` (already filtered by the selector or not: the selector is applied here)."""
    selector = service_selector(service)
    matching = [
        p
        for p in pods
        if selector is not None
        and namespace_of(p) == namespace_of(service)
        and selector.matches(labels_of(p))
        and is_endpoint_candidate(p)
    ]
    matching.sort(key=lambda p: (_ip_sort_key(p["status"]["podIP"]), name_of(p)))

    groups: dict[PortKey, list[Obj]] = {}
    for pod in matching:
        groups.setdefault(_resolved_ports(service, pod), []).append(pod)

    slices: dict[str, Obj] = {}
    for key in sorted(groups):
        members = groups[key]
        for index in range(0, len(members), max_per_slice):
            chunk = members[index : index + max_per_slice]
            endpoints = [_slice_endpoint(service, p) for p in chunk]
            name = _slice_name(service, key, index // max_per_slice)
            slices[name] = _slice_body(service, name, endpoints, _slice_ports(service, key))
    if not slices:  # a placeholder, so clients can tell "no endpoints" from "not processed"
        name = _slice_name(service, (), 0)
        slices[name] = _slice_body(service, name, [], [])
    return EndpointsPlan(slices, _endpoints_body(service, groups))


def _slice_endpoint(service: Obj, pod: Obj) -> Obj:
    ep: Obj = {
        "addresses": [pod["status"]["podIP"]],
        "conditions": endpoint_conditions(service, pod),
        "targetRef": _target_ref(pod),
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        ep["nodeName"] = node
    hostname = _hostname(service, pod)
    if hostname:
        ep["hostname"] = hostname
    return ep


def _endpoints_body(service: Obj, groups: dict[PortKey, list[Obj]]) -> Obj:
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    subsets = []
    for key in sorted(groups):
        ready: list[Obj] = []
        not_ready: list[Obj] = []
        for pod in groups[key]:
            if is_deleting(pod) and not publish:
                continue
            address: Obj = {"ip": pod["status"]["podIP"], "targetRef": _target_ref(pod)}
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                address["nodeName"] = node
            hostname = _hostname(service, pod)
            if hostname:
                address["hostname"] = hostname
            (ready if publish or _pod_ready(pod) else not_ready).append(address)
        if not ready and not not_ready:
            continue
        subset: Obj = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if key:
            subset["ports"] = [{"name": n, "port": num, "protocol": proto} for n, proto, num in key]
        subsets.append(subset)
    labels = labels_of(service)
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    body: Obj = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name_of(service), "namespace": namespace_of(service)},
        "subsets": subsets,
    }
    if labels:
        body["metadata"]["labels"] = labels
    return body


def _ip_sort_key(ip: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in ip.split("."))
    except ValueError:
        return (1 << 16,)


def differs(current: Obj, desired: Obj) -> bool:
    """True when ``current`` lacks what ``desired`` states (labels, owners, data fields)."""
    cm, dm = meta(current), meta(desired)
    if (cm.get("labels") or {}) != (dm.get("labels") or {}):
        return True
    if "ownerReferences" in dm and cm.get("ownerReferences") != dm["ownerReferences"]:
        return True
    fields = [k for k in desired if k not in ("apiVersion", "kind", "metadata")]
    return any(_norm(current.get(k)) != _norm(desired.get(k)) for k in fields)


def _norm(value: Any) -> Any:
    """Empty lists and None compare equal (the server may drop either)."""
    return value or None


# -- the controller ---------------------------------------------------------------------------


class EndpointSliceController:
    """See the module docstring."""

    name = "endpointslice"

    def __init__(
        self,
        client: Any,
        *,
        services: Store,
        pods: Store,
        slices: Store,
        endpoints: Store,
        recorder: Any = None,
        queue: WorkQueue | None = None,
        max_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
    ) -> None:
        self.client = client
        self.services = services
        self.pods = pods
        self.slices = slices
        self.endpoints = endpoints
        self.recorder = recorder
        self.queue = queue or WorkQueue(name=self.name)
        self.max_per_slice = max_per_slice

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Any = None, **kw: Any
    ) -> EndpointSliceController:
        svc_inf = factory.informer(SERVICES)
        pod_inf = factory.informer(PODS)
        slice_inf = factory.informer(SLICES, indexers={"service": _slice_service_index})
        ep_inf = factory.informer(ENDPOINTS)
        ctl = cls(
            factory.client,
            services=svc_inf.store,
            pods=pod_inf.store,
            slices=slice_inf.store,
            endpoints=ep_inf.store,
            recorder=recorder,
            **kw,
        )
        svc_inf.add_handler(ctl.enqueue, lambda _old, new: ctl.enqueue(new), ctl.enqueue)
        pod_inf.add_handler(ctl.on_pod_add, ctl.on_pod_update, ctl.on_pod_add)
        slice_inf.add_handler(None, lambda _old, new: ctl.on_slice(new), ctl.on_slice)
        ep_inf.add_handler(None, None, ctl.enqueue)
        return ctl

    # -- event handlers (only enqueue) ---------------------------------------------------------

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def _enqueue_matching(self, pod: Obj, labels: dict[str, str]) -> None:
        for svc in self.services.list(namespace_of(pod)):
            selector = service_selector(svc)
            if selector is not None and selector.matches(labels):
                self.enqueue(svc)

    def on_pod_add(self, pod: Obj) -> None:
        self._enqueue_matching(pod, labels_of(pod))

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return  # a resync: the Service resync covers it
        self._enqueue_matching(new, labels_of(new))
        if labels_of(old) != labels_of(new):
            self._enqueue_matching(old, labels_of(old))

    def on_slice(self, eps: Obj) -> None:
        labels = labels_of(eps)
        if labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(SERVICE_NAME_LABEL):
            self.queue.add(f"{namespace_of(eps)}/{labels[SERVICE_NAME_LABEL]}")

    # -- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        service = self.services.get_by(namespace, name)
        current = [
            s
            for s in self.slices.by_index("service", key)
            if labels_of(s).get(MANAGED_BY_LABEL) == MANAGED_BY
        ]
        if service is None or is_deleting(service):
            for s in current:
                await self._delete(SLICES, s)
            legacy = self.endpoints.get_by(namespace, name)
            if legacy is not None and service is None:
                await self._delete(ENDPOINTS, legacy)
            return None
        if service_selector(service) is None:
            return None
        plan = plan_endpoints(service, self.pods.list(namespace), self.max_per_slice)
        by_name = {name_of(s): s for s in current}
        for slice_name, body in plan.slices.items():
            await self._put(SLICES, by_name.pop(slice_name, None), body)
        for stale in by_name.values():
            await self._delete(SLICES, stale)
        await self._put(ENDPOINTS, self.endpoints.get_by(namespace, name), plan.endpoints)
        return None

    # -- steps ---------------------------------------------------------------------------------

    async def _put(self, rt: Any, current: Obj | None, desired: Obj) -> None:
        """Create ``desired`` or bring ``current`` to it; a stale cache raises Conflict or
        AlreadyExists, which retries the key with backoff."""
        if current is None:
            await self.client.create(rt, desired, namespace_of(desired))
            return
        if not differs(current, desired):
            return
        body = copy.deepcopy(current)
        body["metadata"]["labels"] = meta(desired).get("labels") or {}
        if "ownerReferences" in meta(desired):
            body["metadata"]["ownerReferences"] = meta(desired)["ownerReferences"]
        for field, value in desired.items():
            if field not in ("apiVersion", "kind", "metadata"):
                body[field] = value
        await self.client.update(rt, body)

    async def _delete(self, rt: Any, obj: Obj) -> None:
        try:
            await self.client.delete(
                rt, name_of(obj), namespace_of(obj), preconditions={"uid": uid_of(obj)}
            )
        except (errors.NotFound, errors.Conflict):
            pass  # gone already, or replaced: the next event re-reconciles


def _slice_service_index(eps: Obj) -> list[str]:
    service = labels_of(eps).get(SERVICE_NAME_LABEL)
    return [f"{namespace_of(eps)}/{service}"] if service else []


def _with_kind(service: Obj) -> Obj:
    out = dict(service)
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", "Service")
    return out
