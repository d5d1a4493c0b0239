"""ResourceQuota controller: keeps each quota's ``status.hard`` and ``status.used`` current.

Wiring: informers on ResourceQuotas and on the kinds quotas count by default (Pods, Services,
ConfigMaps, Secrets, PersistentVolumeClaims). A quota event enqueues the quota; an event of a
counted object enqueues every quota of its namespace. A quota naming ``count/<resource>.<group>``
of another kind gets an informer for that kind on first use (as Kubernetes' quota monitors do),
whose events then enqueue the namespace's quotas too.

``reconcile(namespace/name)`` recomputes the usage of every resource in ``spec.hard`` from the
caches with the pure :func:`used` and writes ``status`` (hard = spec.hard, used) through the
status subresource only when it changed. Accounting (Kubernetes' evaluators):

- ``pods``/``count/pods`` and the compute resources count pods that are not Succeeded/Failed
  and not past their deletion grace period;
- ``requests.cpu``/``cpu``, ``requests.memory``/``memory``, ``requests.ephemeral-storage``/
  ``ephemeral-storage``, ``limits.*``: the pod's effective value, max(sum over containers, max
  over init containers), a limit standing in for a missing request;
- ``services``, ``services.nodeports`` (node ports of NodePort/LoadBalancer Services),
  ``services.loadbalancers``, ``configmaps``, ``secrets``, ``persistentvolumeclaims``,
  ``resourcequotas``, ``requests.storage`` (claims' requests), ``<class>.storageclass.storage.k8s
  .io/requests.storage`` and ``.../persistentvolumeclaims`` per StorageClass;
- ``count/<resource>`` and ``count/<resource>.<group>``: the number of such objects;
- names the controller does not know are left out of ``used``, as Kubernetes does.

Quota scopes and scope selectors are not evaluated (every object counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from controllers.objects import key_of, meta, namespace_of, split_key
from machinery import errors
from machinery.controller import Result
from machinery.informer import InformerFactory, Store
from machinery.kinds import ResourceType, lookup
from machinery.quantity import cpu_millis, format_bytes, format_cpu, to_bytes
from machinery.workqueue import WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
QUOTAS = lookup("resourcequotas")
COUNTED = ("pods", "services", "configmaps", "secrets", "persistentvolumeclaims")
TERMINAL = ("Succeeded", "Failed")
COMPUTE = {
    "cpu": "requests.cpu",
    "memory": "requests.memory",
    "ephemeral-storage": "requests.ephemeral-storage",
}
CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
Inventory = Callable[[str], list[Obj] | None]  # "<plural>[.<group>]" → the namespace's objects


# -- the pure part -----------------------------------------------------------------------------


def resource_key(rt: ResourceType) -> str:
    """How ``count/`` names a kind: ``pods``, ``deployments.apps``."""
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def _parse(resource: str, value: Any) -> int:
    return cpu_millis(value) if resource == "cpu" else to_bytes(value)


def _show(resource: str, amount: int) -> str:
    return format_cpu(amount) if resource == "cpu" else format_bytes(amount)


def pod_counts(pod: Obj, now: float) -> bool:
    """Whether the pod is charged to quota (Kubernetes' ``QuotaV1Pod``)."""
    if (pod.get("status") or {}).get("phase") in TERMINAL:
        return False
    m = meta(pod)
    deleted, grace = m.get("deletionTimestamp"), m.get("deletionGracePeriodSeconds")
    if deleted and grace is not None:
        at = datetime.datetime.fromisoformat(str(deleted).replace("Z", "+00:00")).timestamp()
        return now <= at + float(grace)
    return True


def pod_amount(pod: Obj, kind: str, resource: str) -> int:
    """The pod's effective ``kind`` (``requests``/``limits``) of ``resource`` (milli-CPU or
    bytes)."""
    spec = pod.get("spec") or {}

    def one(c: Obj) -> int:
        res = c.get("resources") or {}
        values = dict(res.get("limits") or {})
        if kind == "requests":
            values.update(res.get("requests") or {})
        return _parse(resource, values[resource]) if resource in values else 0

    app = sum(one(c) for c in spec.get("containers") or [])
    init = max((one(c) for c in spec.get("initContainers") or []), default=0)
    return max(app, init)


def _node_ports(service: Obj) -> int:
    spec = service.get("spec") or {}
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        return 0
    return len(spec.get("ports") or [])


def _claim_request(claim: Obj) -> int:
    requests = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
    return to_bytes(requests["storage"]) if "storage" in requests else 0


def usage_of(name: str, objects: Inventory, now: float) -> str | None:
    """The used amount of quota resource ``name`` in one namespace, or ``None`` when the name
    is not one this controller accounts for (or its kind is unknown)."""

    def pods() -> list[Obj]:
        return [p for p in objects("pods") or [] if pod_counts(p, now)]

    kind, _, resource = COMPUTE.get(name, name).partition(".")
    if kind in ("requests", "limits") and resource in ("cpu", "memory", "ephemeral-storage"):
        return _show(resource, sum(pod_amount(p, kind, resource) for p in pods()))
    if name in ("pods", "count/pods"):
        return str(len(pods()))
    if name == "services.nodeports":
        return str(sum(_node_ports(s) for s in objects("services") or []))
    if name == "services.loadbalancers":
        services = objects("services") or []
        return str(sum((s.get("spec") or {}).get("type") == "LoadBalancer" for s in services))
    if name == "requests.storage":
        return format_bytes(sum(_claim_request(c) for c in objects("persistentvolumeclaims") or []))
    if CLASS_SUFFIX in name:
        storage_class, _, what = name.partition(CLASS_SUFFIX)
        claims = [
            c
            for c in objects("persistentvolumeclaims") or []
            if (c.get("spec") or {}).get("storageClassName") == storage_class
        ]
        if what == "requests.storage":
            return format_bytes(sum(_claim_request(c) for c in claims))
        return str(len(claims)) if what == "persistentvolumeclaims" else None
    counted = objects(name.removeprefix("count/"))
    return None if counted is None else str(len(counted))


def used(hard: dict[str, Any], objects: Inventory, now: float) -> dict[str, str]:
    """``status.used`` for a quota with ``hard`` over one namespace's ``objects``."""
    out = {}
    for name in hard:
        value = usage_of(name, objects, now)
        if value is not None:
            out[name] = value
    return out


def status_patch(old: Obj, hard: dict[str, Any], new_used: dict[str, str]) -> Obj | None:
    """A merge patch turning ``old`` status into {hard, used} (``None``: nothing to do)."""
    if old.get("hard") == hard and old.get("used") == new_used:
        return None

    def diff(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
        return {**{k: None for k in before or {} if k not in after}, **after}

    return {"hard": diff(old.get("hard"), hard), "used": diff(old.get("used"), new_used)}


# -- the controller ----------------------------------------------------------------------------


class ResourceQuotaController:
    name = "resourcequota"

    def __init__(
        self,
        client: Any,
        *,
        quotas: Store,
        stores: dict[str, Store],
        factory: InformerFactory | None = None,
        queue: WorkQueue | None = None,
        clock: Callable[[], float] = time.time,
        recorder: Any = None,
    ) -> None:
        self.client = client
        self.quotas = quotas
        self.stores = dict(stores)  # resource key ("pods", "deployments.apps") → cache
        self.factory = factory
        self.queue = queue or WorkQueue(name=self.name)
        self.clock = clock
        self.recorder = recorder
        self._watching = asyncio.Lock()

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Any = None, **kw: Any
    ) -> ResourceQuotaController:
        quotas = factory.informer(QUOTAS)
        stores = {"resourcequotas": quotas.store}
        ctl = cls(
            factory.client,
            quotas=quotas.store,
            stores=stores,
            factory=factory,
            recorder=recorder,
            **kw,
        )
        quotas.add_handler(ctl.enqueue, lambda _old, new: ctl.enqueue(new), None)
        for plural in COUNTED:
            ctl._watch(factory, lookup(plural))
        return ctl

    def _watch(self, factory: InformerFactory, rt: ResourceType) -> None:
        informer = factory.informer(rt)
        self.stores[resource_key(rt)] = informer.store
        informer.add_handler(
            self.enqueue_namespace,
            lambda old, new: self.enqueue_namespace(new),
            self.enqueue_namespace,
        )

    # -- event handlers ----------------------------------------------------------------------

    def enqueue(self, quota: Obj) -> None:
        self.queue.add(key_of(quota))

    def enqueue_namespace(self, obj: Obj) -> None:
        for quota in self.quotas.list(namespace_of(obj)):
            self.enqueue(quota)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        quota = self.quotas.get(key)
        if quota is None:
            return None
        namespace, name = split_key(key)
        hard = dict((quota.get("spec") or {}).get("hard") or {})
        await self._ensure_watched(hard)
        inventory = self._inventory(namespace)
        patch = status_patch(quota.get("status") or {}, hard, used(hard, inventory, self.clock()))
        if patch is None:
            return None
        with contextlib.suppress(errors.NotFound):
            await self.client.patch(
                QUOTAS, name, {"status": patch}, namespace, subresource="status"
            )
        return None

    # -- private steps -----------------------------------------------------------------------

    def _inventory(self, namespace: str) -> Inventory:
        def objects(resource: str) -> list[Obj] | None:
            store = self.stores.get(resource)
            return None if store is None else store.list(namespace)

        return objects

    async def _ensure_watched(self, hard: dict[str, Any]) -> None:
        """Start an informer for each ``count/`` kind not cached yet (needs the factory)."""
        wanted = [_kind(n.removeprefix("count/")) for n in hard if n.startswith("count/")]
        missing = [rt for rt in wanted if rt is not None and resource_key(rt) not in self.stores]
        if not missing or self.factory is None:
            return
        async with self._watching:
            for rt in missing:
                if resource_key(rt) not in self.stores:
                    log.info("quota: counting %s", resource_key(rt))
                    self._watch(self.factory, rt)
            await self.factory.start()
            await self.factory.wait_synced()


def _kind(resource: str) -> ResourceType | None:
    try:
        rt = lookup(resource)
    except KeyError:
        return None
    plural, _, group = resource.partition(".")
    return rt if rt.plural == plural and rt.group == group else None
