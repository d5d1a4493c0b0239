"""Kind-specific behaviour plugged into the generic registry.

A :class:`Strategy` answers the questions Kubernetes' per-kind REST strategies answer: what the
server fills in on create, what an update may not change, how long a graceful delete waits, and
what else must happen when an object is written (cluster IPs, CRD serving).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from apiserver import admission
from apiserver.serviceaccount_admission import ServiceAccountAdmission
from apiserver.tolerations import default_toleration_seconds
from machinery import errors
from machinery import types as api_types
from machinery.kinds import ResourceType, lookup

if TYPE_CHECKING:
    from apiserver.registry import Registry, WriteOptions

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
NODE_PORTS = range(30000, 32768)


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


class ServiceStrategy(Strategy):
    """Allocates ``spec.clusterIP`` from 10.96.0.0/16 and node ports from 30000-32767."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry)
        self._ips: set[str] | None = None
        self._ports: set[int] | None = None

    def _used(self) -> tuple[set[str], set[int]]:
        if self._ips is None or self._ports is None:
            self._ips, self._ports = set(), set()
            for _, entry in self.registry.store.cache.list("/services"):
                self._take(entry.obj)
        return self._ips, self._ports

    def _take(self, obj: dict[str, Any]) -> None:
        assert self._ips is not None and self._ports is not None
        spec = obj.get("spec") or {}
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if ip and ip != "None":
                self._ips.add(ip)
        for p in spec.get("ports") or []:
            if p.get("nodePort"):
                self._ports.add(int(p["nodePort"]))

    def prepare_create(self, rt, obj):
        obj.pop("status", None)
        obj["status"] = {"loadBalancer": {}}

    def prepare_update(self, rt, old, new, subresource):
        ospec, nspec = old.get("spec") or {}, new.setdefault("spec", {})
        if subresource is None and ospec.get("clusterIP") and not nspec.get("clusterIP"):
            nspec["clusterIP"], nspec["clusterIPs"] = ospec["clusterIP"], ospec.get("clusterIPs")
        if (
            subresource is None
            and nspec.get("clusterIP") != ospec.get("clusterIP")
            and ospec.get("clusterIP")
        ):
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
        old_ports = {
            (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
            for p in ospec.get("ports") or []
        }
        needs = nspec.get("type") in ("NodePort", "LoadBalancer")
        used = self._used()[1]
        for p in nspec.get("ports") or []:
            if needs and not p.get("nodePort"):
                p["nodePort"] = old_ports.get(
                    (p.get("port"), p.get("protocol", "TCP"))
                ) or self._free_port(used)
                used.add(p["nodePort"])

    def _free_port(self, used: set[int]) -> int:
        for port in NODE_PORTS:
            if port not in used:
                return port
        raise errors.ServiceUnavailable("no free node ports in 30000-32767")

    async def before_create(self, rt, obj, opts):
        ips, ports = self._used()
        spec = obj.setdefault("spec", {})
        want = spec.get("clusterIP")
        if spec.get("type") == "ExternalName":
            return
        if want and want != "None":
            if ipaddress.ip_address(want) not in SERVICE_CIDR:
                raise errors.invalid(
                    "Service",
                    obj["metadata"]["name"],
                    [
                        {
                            "reason": "FieldValueInvalid",
                            "field": "spec.clusterIPs",
                            "message": f'Invalid value: "{want}": provided IP is not in the '
                            f"valid range. The range of valid IPs is {SERVICE_CIDR}",
                        }
                    ],
                )
            if want in ips:
                raise errors.invalid(
                    "Service",
                    obj["metadata"]["name"],
                    [
                        {
                            "reason": "FieldValueInvalid",
                            "field": "spec.clusterIPs",
                            "message": f'Invalid value: ["{want}"]: failed to allocate IP {want}: '
                            "provided IP is already allocated",
                        }
                    ],
                )
        elif not want:
            want = next(
                (
                    str(ip)
                    for ip in SERVICE_CIDR.hosts()
                    if str(ip) not in ips
                    and not str(ip).endswith(".0.10")
                    and str(ip) != "10.96.0.1"
                ),
                None,
            )
            if want is None:
                raise errors.ServiceUnavailable("no free cluster IPs")
        spec["clusterIP"] = want
        spec["clusterIPs"] = [want]
        if want != "None":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        needs = spec.get("type") in ("NodePort", "LoadBalancer")
        for p in spec.get("ports") or []:
            if needs and not p.get("nodePort"):
                p["nodePort"] = self._free_port(ports)
            elif p.get("nodePort") and int(p["nodePort"]) in ports:
                raise errors.invalid(
                    "Service",
                    obj["metadata"]["name"],
                    [
                        {
                            "reason": "FieldValueInvalid",
                            "field": "spec.ports[0].nodePort",
                            "message": f"Invalid value: {p['nodePort']}: provided port is "
                            "already allocated",
                        }
                    ],
                )
        if needs:
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if not opts.dry_run:
            self._take(obj)

    def release(self, rt, obj):
        self._free(obj)

    def _free(self, obj: dict[str, Any]) -> None:
        ips, ports = self._used()
        spec = obj.get("spec") or {}
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            ips.discard(ip)
        for p in spec.get("ports") or []:
            if p.get("nodePort"):
                ports.discard(int(p["nodePort"]))

    def follow(self, _typ: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        """Cache listener: track addresses taken or freed through any API server."""
        if self._ips is None:
            return
        if old is not None:
            self._free(old)
        if new is not None:
            self._take(new)


class Strategies:
    """Strategy per storage resource; custom resources get theirs from :mod:`apiserver.crd`."""

    def __init__(self, registry: Registry) -> None:
        self.default = Strategy(registry)
        self.by_resource: dict[str, Strategy] = {
            "/pods": PodStrategy(registry),
            "/nodes": NodeStrategy(registry),
            "/namespaces": NamespaceStrategy(registry),
            "/services": ServiceStrategy(registry),
        }

    def for_(self, rt: ResourceType) -> Strategy:
        return self.by_resource.get(rt.storage_key, self.default)

    def register(self, storage_key: str, strategy: Strategy) -> None:
        self.by_resource[storage_key] = strategy

    def unregister(self, storage_key: str) -> None:
        self.by_resource.pop(storage_key, None)
