"""Namespace controller: empties a Terminating namespace, then lets it go.

Wiring: an informer on Namespaces; a namespace with ``deletionTimestamp`` is enqueued.

``reconcile(name)``: once a namespace is being deleted, its ``status.phase`` is Terminating
(written if the API server has not). Every namespaced kind the server's discovery lists
(:mod:`controllers.discovery`: built-in kinds and custom resources alike) that can be listed and
deleted is listed live in it and each object not already going away is deleted (Background). If
anything remains, or a group could not be discovered, the conditions
``NamespaceDeletionDiscoveryFailure`` / ``NamespaceDeletionContentFailure`` /
``NamespaceContentRemaining`` / ``NamespaceFinalizersRemaining`` say what, with Kubernetes'
reasons and messages, and the key is looked at again shortly. When nothing remains,
``kubernetes`` is removed from ``spec.finalizers`` with a PUT to the ``finalize`` subresource,
after which the API server deletes the namespace.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from controllers.conditions import new_condition, set_condition
from controllers.discovery import preferred_types
from controllers.objects import finalizers_of, is_deleting, meta, name_of
from machinery import errors
from machinery.controller import Result
from machinery.informer import InformerFactory, Store
from machinery.kinds import BUILTIN, ResourceType, lookup
from machinery.workqueue import WorkQueue

Obj = dict[str, Any]
NAMESPACES = lookup("namespaces")
FINALIZER = "kubernetes"
RECHECK_SECONDS = 1.0
DELETE_CONCURRENCY = 32


def namespaced_types(types: tuple[ResourceType, ...] = BUILTIN) -> list[ResourceType]:
    """One version of every namespaced resource that can be listed and deleted."""
    seen: set[str] = set()
    out = []
    for rt in types:
        if not rt.namespaced or rt.storage_key in seen:
            continue
        if not {"list", "delete"} <= set(rt.verbs):
            continue
        seen.add(rt.storage_key)
        out.append(rt)
    return out


def _group_resource(rt: ResourceType) -> str:
    """Kubernetes' ``GroupResource.String()``: ``configmaps``, ``deployments.apps``."""
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


# condition type → (reason, message) while all is well, as Kubernetes' namespace deleter says
_OK = {
    "NamespaceDeletionDiscoveryFailure": (
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    "NamespaceDeletionContentFailure": (
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": (
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
}


class NamespaceController:
    name = "namespace"

    def __init__(
        self,
        client: Any,
        *,
        namespaces: Store,
        queue: WorkQueue | None = None,
        types: list[ResourceType] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.namespaces = namespaces
        self.queue = queue or WorkQueue(name=self.name)
        self.types = types  # None: ask the server's discovery on every pass
        self.now = now

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Any = None, **kw: Any
    ) -> NamespaceController:
        inf = factory.informer(NAMESPACES)
        ctl = cls(factory.client, namespaces=inf.store, **kw)
        inf.add_handler(ctl.enqueue, lambda _old, new: ctl.enqueue(new))
        return ctl

    def enqueue(self, ns: Obj) -> None:
        if is_deleting(ns):
            self.queue.add(name_of(ns))

    async def reconcile(self, key: str) -> Result | None:
        cached = self.namespaces.get(key)
        if cached is None or not is_deleting(cached):
            return None
        ns = copy.deepcopy(cached)
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return None
        remaining: Counter[str] = Counter()
        finalizers: Counter[str] = Counter()
        failures: list[str] = []
        types, undiscovered = await self._types()
        for rt in types:
            try:
                items = (await self.client.list_all(rt, key)).get("items") or []
            except (errors.NotFound, errors.MethodNotAllowed):
                continue
            await self._delete_all(rt, key, items, failures)
            if items:
                left = (await self.client.list_all(rt, key)).get("items") or []
                for item in left:
                    remaining[_group_resource(rt)] += 1
                    for f in finalizers_of(item):
                        finalizers[f] += 1
        if remaining or failures or undiscovered:
            await self._write_status(ns, remaining, finalizers, failures, undiscovered)
            return Result(requeue_after=RECHECK_SECONDS)
        body = copy.deepcopy(ns)
        body["spec"]["finalizers"] = [f for f in body["spec"]["finalizers"] if f != FINALIZER]
        try:
            await self.client.update(NAMESPACES, body, subresource="finalize")
        except errors.NotFound:
            pass
        return None

    async def _types(self) -> tuple[list[ResourceType], dict[str, str]]:
        """The namespaced types to empty, and the group versions discovery failed for."""
        if self.types is not None:
            return self.types, {}
        found = await preferred_types(self.client)
        return namespaced_types(tuple(found.types)), found.failed

    async def _delete_all(
        self, rt: ResourceType, namespace: str, items: list[Obj], failures: list[str]
    ) -> None:
        limit = asyncio.Semaphore(DELETE_CONCURRENCY)

        async def one(item: Obj) -> None:
            if is_deleting(item):
                return
            async with limit:
                try:
                    await self.client.delete(
                        rt, name_of(item), namespace, propagation_policy="Background"
                    )
                except errors.NotFound:
                    pass
                except errors.ApiError as e:
                    failures.append(f"{_group_resource(rt)} {name_of(item)}: {e}")

        await asyncio.gather(*(one(i) for i in items))

    async def _write_status(
        self,
        ns: Obj,
        remaining: Counter[str],
        finalizers: Counter[str],
        failures: list[str],
        undiscovered: dict[str, str],
    ) -> None:
        status = copy.deepcopy(ns.get("status") or {})
        status["phase"] = "Terminating"
        now = self.now()

        def cond(ctype: str, active: bool, reason: str, message: str) -> None:
            if active:
                c = new_condition(ctype, "True", reason, message, now, with_update_time=False)
            else:
                ok_reason, ok_message = _OK[ctype]
                c = new_condition(
                    ctype, "False", ok_reason, ok_message, now, with_update_time=False
                )
            set_condition(status, c)

        cond(
            "NamespaceDeletionDiscoveryFailure",
            bool(undiscovered),
            "DiscoveryFailed",
            f"Discovery failed for some groups, {len(undiscovered)} failing: "
            + ", ".join(f"{gv}: {e}" for gv, e in sorted(undiscovered.items())),
        )
        cond(
            "NamespaceDeletionContentFailure",
            bool(failures),
            "ContentDeletionFailed",
            f"Failed to delete all resource types, {len(failures)} remaining: "
            + ", ".join(failures[:5]),
        )
        cond(
            "NamespaceContentRemaining",
            bool(remaining),
            "SomeResourcesRemain",
            "Some resources are remaining: "
            + ", ".join(f"{gr} has {n} resource instances" for gr, n in sorted(remaining.items())),
        )
        cond(
            "NamespaceFinalizersRemaining",
            bool(finalizers),
            "SomeFinalizersRemain",
            "Some content in the namespace has finalizers remaining: "
            + ", ".join(f"{f} in {n} resource instances" for f, n in sorted(finalizers.items())),
        )
        if status == (ns.get("status") or {}):
            return
        body = copy.deepcopy(ns)
        body["status"] = status
        body["metadata"] = {k: v for k, v in meta(ns).items()}
        try:
            await self.client.update(NAMESPACES, body, subresource="status")
        except (errors.NotFound, errors.Conflict):
            pass
