"""Garbage collector: deletes objects whose owners are gone, per Kubernetes' propagation rules.

Wiring: one shared informer per kind in :data:`machinery.kinds.BUILTIN` that can be listed,
watched and deleted (events excepted), plus a *monitor* (an informer of the collector's own) for
every other such kind the server's discovery lists (:mod:`controllers.discovery`; custom
resources). ``reconcile("resync:")`` runs discovery and starts or stops monitors; it is enqueued
at start and whenever a CustomResourceDefinition changes, and requeued while a CRD's resource is
not yet in discovery, so the graph covers custom-resource owners and dependents too (as
Kubernetes' collector does by resyncing its monitors from discovery). All their handlers
maintain one in-memory graph of ownerReferences (uid → node with owners and dependents); an owner
referenced before it is seen is a *virtual* node. Handlers only update the graph and enqueue
``delete:<uid>`` or ``orphan:<uid>`` keys.

``reconcile("delete:<uid>")`` (Kubernetes ``attemptToDeleteItem``) re-reads the object live and
classifies each owner: *solid* (exists with that uid), *dangling* (404 or another uid: verified
with a live GET unless the graph has it) or *waiting* (being deleted in the foreground). With a
solid owner, dangling and waiting references are removed; with none, the object is deleted,
Foreground when a waiting owner needs its dependents gone first, else with the policy its own
finalizers ask for (Background by default), preconditioned on its uid.

Propagation policies, as the API server expresses them with finalizers:

* Background: the owner is gone; its dependents get ``delete:`` keys and go next.
* Foreground (``foregroundDeletion``): the owner stays (deletionTimestamp set) while its
  dependents are deleted; once no dependent with ``blockOwnerDeletion: true`` remains, the
  finalizer is removed and the owner goes.
* Orphan (``orphan``): ``reconcile("orphan:<uid>")`` removes the owner's reference from every
  dependent, then the finalizer.

Finalizers are removed with a JSON patch guarded by ``resourceVersion``; a conflict retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from controllers.discovery import preferred_types
from controllers.objects import finalizers_of, is_deleting, meta, uid_of
from machinery import errors
from machinery.controller import Result
from machinery.informer import Informer, InformerFactory, Store
from machinery.kinds import BUILTIN, ResourceType, builtin, lookup
from machinery.workqueue import WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
_IGNORED = {("", "events"), ("events.k8s.io", "events")}
CRDS = lookup("customresourcedefinitions")
RESYNC = "resync:"
DISCOVERY_RETRY = 1.0  # seconds before looking again for a CRD not yet in discovery


def collectable_types(types: tuple[ResourceType, ...] = BUILTIN) -> list[ResourceType]:
    """Kinds the collector watches: list+watch+delete verbs, one version per resource, no
    events."""
    seen: set[str] = set()
    out = []
    for rt in types:
        if (rt.group, rt.plural) in _IGNORED or rt.storage_key in seen:
            continue
        if not {"list", "watch", "delete"} <= set(rt.verbs):
            continue
        seen.add(rt.storage_key)
        out.append(rt)
    return out


@dataclass
class Node:
    uid: str
    api_version: str
    kind: str
    namespace: str
    name: str
    owners: list[Obj] = field(default_factory=list)
    dependents: set[str] = field(default_factory=set)
    virtual: bool = False
    obj: Obj | None = None

    @property
    def deleting_dependents(self) -> bool:
        return (
            self.obj is not None and is_deleting(self.obj) and FOREGROUND in finalizers_of(self.obj)
        )


class GarbageCollector:
    """See the module docstring."""

    name = "garbagecollector"

    def __init__(
        self,
        client: Any,
        *,
        queue: WorkQueue | None = None,
        types: list[ResourceType] | None = None,
    ) -> None:
        self.client = client
        self.queue = queue or WorkQueue(name=self.name)
        self.types = types if types is not None else collectable_types()
        self.nodes: dict[str, Node] = {}
        self.discovered: dict[tuple[str, str], ResourceType] = {}  # (apiVersion, kind) → type
        self.crds: Store | None = None  # the CRD cache, when wired by from_factory
        self.monitors: dict[tuple[str, str], tuple[Informer, asyncio.Task[None]]] = {}

    @classmethod
    def from_factory(
        cls, factory: InformerFactory, recorder: Any = None, **kw: Any
    ) -> GarbageCollector:
        gc = cls(factory.client, **kw)
        for rt in gc.types:
            factory.informer(rt).add_handler(gc.observe, lambda _o, new: gc.observe(new), gc.forget)
        crds = factory.informer(CRDS)
        gc.crds = crds.store
        crds.add_handler(gc.on_crd, lambda _old, new: gc.on_crd(new), gc.on_crd)
        gc.queue.add(RESYNC)
        return gc

    async def aclose(self) -> None:
        """Stop every monitor (the shared informers are the factory's to stop)."""
        tasks = [task for _, task in self.monitors.values()]
        self.monitors.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- graph maintenance (event handlers) ----------------------------------------------------

    def on_crd(self, _crd: Obj) -> None:
        self.queue.add(RESYNC)

    def _rt_of(self, api_version: str, kind: str) -> ResourceType | None:
        try:
            return builtin(api_version, kind)
        except KeyError:
            return self.discovered.get((api_version, kind))

    def _owner_namespace(self, ref: Obj, dependent_ns: str) -> str:
        rt = self._rt_of(ref.get("apiVersion", ""), ref.get("kind", ""))
        return dependent_ns if rt is None or rt.namespaced else ""

    def observe(self, obj: Obj) -> None:
        """An object was added or changed: update the graph, enqueue what must be looked at."""
        m = meta(obj)
        uid = m.get("uid")
        if not uid:
            return
        node = self.nodes.get(uid)
        old_owners = node.owners if node and not node.virtual else []
        if node is None:
            node = Node(
                uid,
                obj.get("apiVersion", ""),
                obj.get("kind", ""),
                m.get("namespace") or "",
                m.get("name") or "",
            )
            self.nodes[uid] = node
        node.virtual = False
        node.api_version = obj.get("apiVersion", node.api_version)
        node.kind = obj.get("kind", node.kind)
        was_deleting_dependents = node.deleting_dependents
        node.obj = obj
        node.owners = list(m.get("ownerReferences") or [])

        new_uids = {r.get("uid") for r in node.owners}
        for ref in old_owners:
            if ref.get("uid") not in new_uids and (owner := self.nodes.get(ref.get("uid"))):
                owner.dependents.discard(uid)
                if owner.deleting_dependents:
                    self._enqueue_delete(owner.uid)
        for ref in node.owners:
            owner_uid = ref.get("uid")
            owner = self.nodes.get(owner_uid)
            if owner is None:
                owner = Node(
                    owner_uid,
                    ref.get("apiVersion", ""),
                    ref.get("kind", ""),
                    self._owner_namespace(ref, node.namespace),
                    ref.get("name", ""),
                    virtual=True,
                )
                self.nodes[owner_uid] = owner
            owner.dependents.add(uid)
            if owner.virtual:
                self._enqueue_delete(uid)  # not seen (yet?): verify the owner exists
            if owner.deleting_dependents:
                self._enqueue_delete(owner_uid)
        if old_owners != node.owners:
            for ref in old_owners:
                if (owner := self.nodes.get(ref.get("uid"))) and owner.deleting_dependents:
                    self._enqueue_delete(owner.uid)

        if is_deleting(obj):
            fins = finalizers_of(obj)
            if FOREGROUND in fins:
                if not was_deleting_dependents:
                    for dep in node.dependents:
                        self._enqueue_delete(dep)
                self._enqueue_delete(uid)
            if ORPHAN in fins:
                self.queue.add(f"orphan:{uid}")

    def forget(self, obj: Obj) -> None:
        """An object is gone: its dependents lose an owner, its owners a dependent."""
        uid = uid_of(obj)
        node = self.nodes.pop(uid, None)
        if node is None:
            return
        for ref in node.owners:
            owner = self.nodes.get(ref.get("uid"))
            if owner is None:
                continue
            owner.dependents.discard(uid)
            if owner.deleting_dependents:
                self._enqueue_delete(owner.uid)
            if owner.virtual and not owner.dependents:
                self.nodes.pop(owner.uid, None)
        for dep in node.dependents:
            self._enqueue_delete(dep)
        if node.dependents:  # they still point at it: keep it as a virtual node
            self.nodes[uid] = Node(
                uid,
                node.api_version,
                node.kind,
                node.namespace,
                node.name,
                dependents=set(node.dependents),
                virtual=True,
            )

    def _enqueue_delete(self, uid: str) -> None:
        self.queue.add(f"delete:{uid}")

    # -- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        if key == RESYNC:
            return await self._resync_monitors()
        action, _, uid = key.partition(":")
        if action == "orphan":
            await self._orphan_dependents(uid)
        else:
            await self._attempt_to_delete(uid)
        return None

    async def _resync_monitors(self) -> Result | None:
        """Monitor every collectable kind discovery lists that no shared informer covers."""
        found = await preferred_types(self.client)
        wanted = {
            (rt.group, rt.plural): rt
            for rt in collectable_types(tuple(found.types))
            if (rt.group, rt.plural) not in {(t.group, t.plural) for t in self.types}
        }
        newly_known = set()
        for rt in wanted.values():
            key = (rt.api_version, rt.kind)
            if key not in self.discovered:
                newly_known.add(key)
            self.discovered[key] = rt
        for gr, (_, task) in list(self.monitors.items()):
            if gr not in wanted:
                log.info("garbage collector: no longer monitoring %s", ".".join(gr))
                del self.monitors[gr]
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for gr, rt in wanted.items():
            if gr not in self.monitors:
                self.monitors[gr] = self._start_monitor(rt)
        # references that could not be checked while their kind was unknown: check them now
        for node in list(self.nodes.values()):
            if node.virtual and (node.api_version, node.kind) in newly_known:
                for dep in node.dependents:
                    self._enqueue_delete(dep)
        if self._crds_missing(wanted):
            return Result(requeue_after=DISCOVERY_RETRY)
        return None

    def _start_monitor(self, rt: ResourceType) -> tuple[Informer, asyncio.Task[None]]:
        log.info("garbage collector: monitoring %s.%s", rt.plural, rt.group)
        inf = Informer(self.client, rt)
        inf.add_handler(self.observe, lambda _o, new: self.observe(new), self.forget)
        return inf, asyncio.create_task(inf.run(), name=f"gc-monitor-{rt.plural}.{rt.group}")

    def _crds_missing(self, wanted: dict[tuple[str, str], ResourceType]) -> bool:
        """True while a CRD in the cache is not (yet) served according to discovery."""
        for crd in self.crds.list() if self.crds is not None else []:
            spec = crd.get("spec") or {}
            names = spec.get("names") or {}
            gr = (spec.get("group") or "", names.get("plural") or "")
            if not is_deleting(crd) and gr not in wanted:
                return True
        return False

    async def _live(self, node: Node) -> Obj | None:
        rt = self._rt_of(node.api_version, node.kind)
        if rt is None:
            return None
        try:
            obj = await self.client.get(rt, node.name, node.namespace or None)
        except errors.NotFound:
            return None
        return obj if uid_of(obj) == node.uid else None

    async def _attempt_to_delete(self, uid: str) -> None:
        node = self.nodes.get(uid)
        if node is None or node.virtual or node.obj is None:
            return
        if not is_deleting(node.obj) and self._owners_look_solid(node):
            return  # cheap path: every owner is in the graph and not going away
        latest = await self._live(node)
        if latest is None:
            return
        if is_deleting(latest) and FOREGROUND in finalizers_of(latest):
            await self._process_deleting_dependents(node, latest)
            return
        if is_deleting(latest):
            return
        refs = list(meta(latest).get("ownerReferences") or [])
        if not refs:
            return
        solid, dangling, waiting = await self._classify(refs, node.namespace)
        if solid:
            if dangling or waiting:
                drop = {r["uid"] for r in (*dangling, *waiting)}
                await self._patch_owner_refs(
                    node, latest, [r for r in refs if r.get("uid") not in drop]
                )
            return
        rt = self._rt_of(node.api_version, node.kind)
        assert rt is not None
        if waiting and node.dependents:
            policy = "Foreground"
        else:
            fins = finalizers_of(latest)
            policy = (
                "Orphan" if ORPHAN in fins else "Foreground" if FOREGROUND in fins else "Background"
            )
        log.info("garbage collecting %s %s/%s (%s)", node.kind, node.namespace, node.name, policy)
        try:
            await self.client.delete(
                rt,
                node.name,
                node.namespace or None,
                propagation_policy=policy,
                preconditions={"uid": uid},
            )
        except errors.NotFound:
            pass

    def _owners_look_solid(self, node: Node) -> bool:
        for ref in node.owners:
            owner = self.nodes.get(ref.get("uid"))
            if owner is None or owner.virtual or owner.deleting_dependents:
                return False
        return True

    async def _classify(
        self, refs: list[Obj], namespace: str
    ) -> tuple[list[Obj], list[Obj], list[Obj]]:
        solid, dangling, waiting = [], [], []
        for ref in refs:
            owner = self.nodes.get(ref.get("uid"))
            if owner is not None and not owner.virtual:
                latest = owner.obj
            else:
                rt = self._rt_of(ref.get("apiVersion", ""), ref.get("kind", ""))
                if rt is None:
                    solid.append(ref)  # a kind we cannot look up: never collect on its account
                    continue
                try:
                    latest = await self.client.get(
                        rt, ref.get("name", ""), namespace if rt.namespaced else None
                    )
                except errors.NotFound:
                    latest = None
                if latest is not None and uid_of(latest) != ref.get("uid"):
                    latest = None
            if latest is None:
                dangling.append(ref)
            elif is_deleting(latest) and FOREGROUND in finalizers_of(latest):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def _process_deleting_dependents(self, node: Node, latest: Obj) -> None:
        blocking = []
        for dep_uid in node.dependents:
            dep = self.nodes.get(dep_uid)
            if dep is None or dep.virtual:
                continue
            for ref in dep.owners:
                if ref.get("uid") == node.uid and ref.get("blockOwnerDeletion"):
                    blocking.append(dep)
        if not blocking:
            await self._remove_finalizer(node, latest, FOREGROUND)
            return
        for dep in blocking:
            if dep.obj is not None and not is_deleting(dep.obj):
                self._enqueue_delete(dep.uid)
            elif dep.deleting_dependents:
                pass  # its own foreground deletion will finish first

    async def _orphan_dependents(self, uid: str) -> None:
        node = self.nodes.get(uid)
        if node is None or node.virtual:
            return
        for dep_uid in list(node.dependents):
            dep = self.nodes.get(dep_uid)
            if dep is None or dep.virtual or dep.obj is None:
                continue
            refs = [r for r in meta(dep.obj).get("ownerReferences") or [] if r.get("uid") != uid]
            await self._patch_owner_refs(dep, dep.obj, refs)
        latest = await self._live(node)
        if latest is not None and ORPHAN in finalizers_of(latest):
            await self._remove_finalizer(node, latest, ORPHAN)

    async def _patch_owner_refs(self, node: Node, latest: Obj, refs: list[Obj]) -> None:
        rt = self._rt_of(node.api_version, node.kind)
        assert rt is not None
        ops = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": meta(latest).get("resourceVersion"),
            }
        ]
        if refs:
            ops.append({"op": "add", "path": "/metadata/ownerReferences", "value": refs})
        elif meta(latest).get("ownerReferences") is not None:
            ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
        try:
            await self.client.patch(rt, node.name, ops, node.namespace or None, patch_type="json")
        except errors.NotFound:
            pass

    async def _remove_finalizer(self, node: Node, latest: Obj, finalizer: str) -> None:
        rt = self._rt_of(node.api_version, node.kind)
        assert rt is not None
        fins = [f for f in finalizers_of(latest) if f != finalizer]
        ops = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": meta(latest).get("resourceVersion"),
            },
            {"op": "add", "path": "/metadata/finalizers", "value": copy.deepcopy(fins)},
        ]
        try:
            await self.client.patch(rt, node.name, ops, node.namespace or None, patch_type="json")
        except errors.NotFound:
            pass
