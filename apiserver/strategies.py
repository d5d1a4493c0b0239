"""Kind-specific behaviour plugged into the generic registry.

A :class:`Strategy` answers the questions Kubernetes' per-kind REST strategies answer: what the
server fills in on create, what an update may not change, how long a graceful delete waits, and
what else must happen when an object is written (cluster IPs, CRD serving).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from apiserver import admission
from apiserver.service_alloc import (
    DEFAULT_NODE_PORTS,
    DEFAULT_SERVICE_CIDR,
    AllocationError,
    IPAllocator,
    PortAllocator,
)
from apiserver.serviceaccount_admission import ServiceAccountAdmission
from apiserver.tolerations import default_toleration_seconds
from machinery import errors
from machinery import types as api_types
from machinery.kinds import ResourceType, lookup
from machinery.volumes import PV_PROTECTION, PVC_PROTECTION

if TYPE_CHECKING:
    from apiserver.registry import Registry, WriteOptions

T = TypeVar("T")


def convertible(rt: ResourceType, api_version: str | None) -> bool:
    """Whether a body of ``api_version`` may be stored as ``rt`` (same group, other version)."""
    return (
        bool(api_version)
        and rt.group != ""
        and api_version.split("/")[0] == rt.group
        and rt.storage != ""
    )


class Strategy:
    """Defaults shared by every kind; subclasses override what differs."""

    custom = False  # custom resources refuse strategic merge patches

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def prepare_create(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if "status" in rt.subresources:
            obj.pop("status", None)

    def prepare_update(
        self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any], subresource: str | None
    ) -> None:
        """Adjust ``new`` (a private copy) before validation."""

    def admit(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> tuple[dict[str, Any], list[str]]:
        return api_types.admit(obj, api_version=rt.api_version, kind=rt.kind, old=old)

    async def before_create(
        self, rt: ResourceType, obj: dict[str, Any], opts: WriteOptions
    ) -> None:
        """Last step before a create is stored (allocations)."""

    def release(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Give back what :meth:`before_create` took, after a failed create or a delete."""

    async def before_update(
        self, rt: ResourceType, new: dict[str, Any], old: dict[str, Any], opts: WriteOptions
    ) -> None:
        """Last step before an update is stored (allocations), after validation."""

    def abandon_update(self, rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> None:
        """Give back what :meth:`before_update` took for an update that was not stored."""

    def after_write(
        self, rt: ResourceType, new: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None:
        """Called once a write is committed (``new`` None for a delete)."""

    def grace_period(
        self, rt: ResourceType, obj: dict[str, Any], requested: int | None
    ) -> int | None:
        """Seconds a delete waits before the object goes; 0/None means at once."""
        return None

    def mark_deleting(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Changes made when ``deletionTimestamp`` is first set."""

    def ready_to_delete(self, rt: ResourceType, obj: dict[str, Any]) -> bool:
        """Whether a deleting object whose finalizers are gone may be removed now."""
        return True


class PodStrategy(Strategy):
    """Pods: status starts over on create (the types fill in phase and QoS class), priority
    comes from the PriorityClass, and deletion of a bound pod is graceful."""

    #: ServiceAccount admission, set by the API server (:mod:`apiserver.serviceaccount_admission`)
    service_accounts: ServiceAccountAdmission | None = None

    def prepare_create(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        obj.pop("status", None)
        default_toleration_seconds(obj.setdefault("spec", {}))
        if self.service_accounts is not None:
            self.service_accounts.admit(obj)

    async def before_create(self, rt, obj, opts):
        spec = obj.setdefault("spec", {})
        name = spec.get("priorityClassName")
        classes = self.registry.list(lookup("priorityclasses"), None)
        if name:
            found = next((e.obj for (_, n), e in classes if n == name), None)
            if found is None:
                raise errors.Forbidden(
                    f'pods "{obj["metadata"]["name"]}" is forbidden: no PriorityClass with '
                    f"name {name} was found"
                )
        else:
            found = next((e.obj for _, e in classes if e.obj.get("globalDefault")), None)
        if found is not None:
            if spec.get("priority") not in (None, found.get("value", 0)):
                raise errors.Forbidden(
                    f'pods "{obj["metadata"]["name"]}" is forbidden: the integer value of '
                    "priority must not be provided in pod spec; priority admission controller "
                    "computed {} from the given PriorityClass name".format(found.get("value"))
                )
            spec["priority"] = found.get("value", 0)
            spec.setdefault("priorityClassName", found["metadata"]["name"])
            spec.setdefault(
                "preemptionPolicy", found.get("preemptionPolicy", "PreemptLowerPriority")
            )
        else:
            spec.setdefault("priority", 0)
        admission.admit_pod_in(self.registry, obj)

    def grace_period(self, rt, obj, requested):
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(0, int(requested))
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def ready_to_delete(self, rt, obj):
        return not self.grace_period(rt, obj, obj["metadata"].get("deletionGracePeriodSeconds"))


class NodeStrategy(Strategy):
    def prepare_create(self, rt, obj):
        """Nodes may carry status on create (the node agent registers with it)."""


class NamespaceStrategy(Strategy):
    def prepare_create(self, rt, obj):
        obj["status"] = {"phase": "Active"}
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"][
            "name"
        ]

    def prepare_update(self, rt, old, new, subresource):
        if subresource != "finalize":
            new["spec"] = dict(old.get("spec") or {})
        new["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = old["metadata"][
            "name"
        ]

    def mark_deleting(self, rt, obj):
        obj.setdefault("status", {})["phase"] = "Terminating"

    def grace_period(self, rt, obj, requested):
        # The namespace controller must empty it first; spec.finalizers holds it until then.
        return 1 if (obj.get("spec") or {}).get("finalizers") else None

    def ready_to_delete(self, rt, obj):
        return not (obj.get("spec") or {}).get("finalizers")


class ProtectedStrategy(Strategy):
    """Kubernetes' ``StorageObjectInUseProtection`` admission: every new claim (volume) gets
    the finalizer that keeps it while a pod uses it (while it is bound); the
    controller-manager's storage-object-protection controller removes it."""

    def __init__(self, registry: Registry, finalizer: str) -> None:
        super().__init__(registry)
        self.finalizer = finalizer

    def prepare_create(self, rt, obj):
        super().prepare_create(rt, obj)
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if self.finalizer not in finalizers:
            finalizers.append(self.finalizer)


class ServiceStrategy(Strategy):
    """ClusterIPs and node ports, allocated as Kubernetes allocates them
    (:mod:`apiserver.service_alloc`): on create; on an update that needs new ones (type
    NodePort, ExternalName to ClusterIP); released on delete and when an update drops them
    (leaving NodePort, going to ExternalName). A value given to a write that is not stored (a
    failure, a dry run) is given back. The allocators hold the values of stored Services, kept
    current by :meth:`follow` whichever API server wrote them, plus those of writes in flight
    here."""

    def __init__(
        self,
        registry: Registry,
        cidr: str = DEFAULT_SERVICE_CIDR,
        node_ports: str = DEFAULT_NODE_PORTS,
    ) -> None:
        super().__init__(registry)
        self.ips = IPAllocator(cidr)
        self.ports = PortAllocator(node_ports)
        self._loaded = False

    def _load(self) -> None:
        """Take the values of every stored Service (once, after the cache loaded)."""
        if not self._loaded:
            self._loaded = True
            for _, entry in self.registry.store.cache.list("/services"):
                self._hold(entry.obj)

    def _hold(self, obj: dict[str, Any]) -> None:
        for ip in _cluster_ips(obj):
            self.ips.hold(ip)
        for port in _node_ports(obj):
            self.ports.hold(port)

    def _free(self, obj: dict[str, Any], keep: dict[str, Any] | None = None) -> None:
        """Release the values of ``obj`` that ``keep`` does not have."""
        for ip in _cluster_ips(obj) - _cluster_ips(keep):
            self.ips.release(ip)
        for port in _node_ports(obj) - _node_ports(keep):
            self.ports.release(port)

    def prepare_create(self, rt, obj):
        obj.pop("status", None)
        obj["status"] = {"loadBalancer": {}}

    def prepare_update(self, rt, old, new, subresource):
        if subresource is not None:
            return
        ospec, nspec = old.get("spec") or {}, new.setdefault("spec", {})
        _drop_type_dependent_fields(ospec, nspec)
        if not _needs_cluster_ip(nspec):
            return
        if ospec.get("clusterIP") and not nspec.get("clusterIP"):
            nspec["clusterIP"], nspec["clusterIPs"] = ospec["clusterIP"], ospec.get("clusterIPs")
        if ospec.get("clusterIP") and nspec.get("clusterIP") != ospec["clusterIP"]:
            raise errors.invalid(
                "Service",
                old["metadata"]["name"],
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.clusterIPs[0]",
                        "message": "Invalid value: field is immutable",
                    }
                ],
            )

    async def before_create(self, rt, obj, opts):
        self._allocate(obj, None, opts.dry_run)

    def release(self, rt, obj):
        self._load()
        self._free(obj)

    async def before_update(self, rt, new, old, opts):
        self._allocate(new, old, opts.dry_run)

    def abandon_update(self, rt, new, old):
        self._load()
        self._free(new, keep=old)

    def _allocate(self, obj: dict[str, Any], old: dict[str, Any] | None, dry_run: bool) -> None:
        """Fill in and take the ClusterIP and node ports ``obj`` needs that ``old`` (the
        stored object of an update) does not hold; all or nothing; a dry run takes nothing."""
        self._load()
        spec = obj.setdefault("spec", {})
        held_ips, held_ports = _cluster_ips(old), _node_ports(old)
        ips: list[str] = []
        ports: list[int] = []
        try:
            if _needs_cluster_ip(spec):
                ip = spec.get("clusterIP")
                if not ip:
                    ip = self._next(self.ips.allocate_next, "serviceIP")
                    ips.append(ip)
                elif ip != "None" and ip not in held_ips:
                    self._take_ip(obj, ip)
                    ips.append(ip)
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
                if ip != "None":
                    spec.setdefault("ipFamilies", ["IPv6" if ":" in ip else "IPv4"])
                    spec.setdefault("ipFamilyPolicy", "SingleStack")
                spec.setdefault("internalTrafficPolicy", "Cluster")
            if _needs_node_ports(spec):
                for i, p in enumerate(spec.get("ports") or []):
                    if not p.get("nodePort"):
                        p["nodePort"] = self._next(self.ports.allocate_next, "nodePort")
                        ports.append(p["nodePort"])
                    elif int(p["nodePort"]) not in held_ports | set(ports):
                        self._take_port(obj, i, int(p["nodePort"]))
                        ports.append(int(p["nodePort"]))
                spec.setdefault("externalTrafficPolicy", "Cluster")
        except BaseException:
            self._give_back(ips, ports)
            raise
        if dry_run:
            self._give_back(ips, ports)

    def _give_back(self, ips: list[str], ports: list[int]) -> None:
        for ip in ips:
            self.ips.release(ip)
        for port in ports:
            self.ports.release(port)

    @staticmethod
    def _next(allocate: Callable[[], T], what: str) -> T:
        try:
            return allocate()
        except AllocationError as err:
            message = f"failed to allocate a {what}: {err}"
            raise errors.InternalError(
                f"Internal error occurred: {message}", causes=[{"message": message}]
            ) from None

    def _take_ip(self, obj: dict[str, Any], ip: str) -> None:
        try:
            self.ips.allocate(ip)
        except AllocationError as err:
            message = f'Invalid value: ["{ip}"]: failed to allocate IP {ip}: {err}'
            raise _invalid_service_field(obj, "spec.clusterIPs", message) from None

    def _take_port(self, obj: dict[str, Any], index: int, port: int) -> None:
        try:
            self.ports.allocate(port)
        except AllocationError as err:
            raise _invalid_service_field(
                obj, f"spec.ports[{index}].nodePort", f"Invalid value: {port}: {err}"
            ) from None

    def follow(self, _typ: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        """Cache listener: track values taken or freed through any API server."""
        if not self._loaded:
            return
        if old is not None:
            self._free(old, keep=new)
        if new is not None:
            self._hold(new)


def _needs_cluster_ip(spec: dict[str, Any]) -> bool:
    return spec.get("type") != "ExternalName"


def _needs_node_ports(spec: dict[str, Any]) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def _cluster_ips(obj: dict[str, Any] | None) -> set[str]:
    spec = (obj or {}).get("spec") or {}
    ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return {ip for ip in ips if ip and ip != "None"}


def _node_ports(obj: dict[str, Any] | None) -> set[int]:
    spec = (obj or {}).get("spec") or {}
    return {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}


def _drop_type_dependent_fields(ospec: dict[str, Any], nspec: dict[str, Any]) -> None:
    """An update leaving a type drops what only that type has, where the new object repeats
    the old values (a client that changes ``type`` alone), as Kubernetes does: ClusterIPs when
    going to ExternalName, node ports and ``externalTrafficPolicy`` when leaving NodePort."""
    if _needs_cluster_ip(ospec) and not _needs_cluster_ip(nspec):
        for name in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if nspec.get(name) in (None, ospec.get(name)):
                nspec.pop(name, None)
        if nspec.get("internalTrafficPolicy") in (None, ospec.get("internalTrafficPolicy")):
            nspec.pop("internalTrafficPolicy", None)
    if _needs_node_ports(ospec) and not _needs_node_ports(nspec):
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in ospec.get("ports") or []}  # fmt: skip
        for p in nspec.get("ports") or []:
            if p.get("nodePort") == old_ports.get((p.get("port"), p.get("protocol", "TCP"))):
                p.pop("nodePort", None)
        if nspec.get("externalTrafficPolicy") in (None, ospec.get("externalTrafficPolicy")):
            nspec.pop("externalTrafficPolicy", None)


class Strategies:
    """Strategy per storage resource; custom resources get theirs from :mod:`apiserver.crd`."""

    def __init__(self, registry: Registry) -> None:
        self.default = Strategy(registry)
        self.by_resource: dict[str, Strategy] = {
            "/pods": PodStrategy(registry),
            "/nodes": NodeStrategy(registry),
            "/namespaces": NamespaceStrategy(registry),
            "/services": ServiceStrategy(registry),
            "/persistentvolumeclaims": ProtectedStrategy(registry, PVC_PROTECTION),
            "/persistentvolumes": ProtectedStrategy(registry, PV_PROTECTION),
        }

    def for_(self, rt: ResourceType) -> Strategy:
        return self.by_resource.get(rt.storage_key, self.default)

    def register(self, storage_key: str, strategy: Strategy) -> None:
        self.by_resource[storage_key] = strategy

    def unregister(self, storage_key: str) -> None:
        self.by_resource.pop(storage_key, None)


def _invalid_service_field(obj: dict[str, Any], field: str, message: str) -> errors.Invalid:
    """422 Invalid naming one field of a Service, as its allocators report."""
    cause = {"reason": "FieldValueInvalid", "field": field, "message": message}
    return errors.invalid("Service", obj["metadata"]["name"], [cause])
