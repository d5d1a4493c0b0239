"""Fakes at the seam for controller tests: an in-memory client that records writes, a recorder
that keeps events, and stores prefilled without an informer.

:class:`FakeClient` implements the subset of :class:`machinery.client.AsyncClient` controllers
use (get/list/create/update/patch/delete) over a dict, with server-side touches a controller
relies on: uid, resourceVersion (conflict on a stale one), generateName, merge and JSON patches,
status/finalize subresources writing only their part. Every write is appended to
:attr:`FakeClient.actions`; :meth:`FakeClient.fail` makes the next matching calls raise.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

from machinery import errors
from machinery.informer import Store, key_of
from machinery.kinds import ResourceType
from machinery.patch import json_patch, merge_patch, strategic_merge_patch

Obj = dict[str, Any]


@dataclass
class Action:
    verb: str
    resource: str  # plural, with "/sub" for a subresource
    namespace: str
    name: str
    body: Any = None
    options: dict[str, Any] = field(default_factory=dict)


class FakeClient:
    def __init__(self, *objects: tuple[ResourceType, Obj]) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.actions: list[Action] = []
        self._failures: list[tuple[str, str, errors.ApiError | Exception, list[int]]] = []
        self._rv = itertools.count(100)
        self._uid = itertools.count(1)
        self._names = itertools.count(1)
        for rt, obj in objects:
            self.seed(rt, obj)

    # -- setup and inspection -----------------------------------------------------------------

    def seed(self, rt: ResourceType, obj: Obj) -> Obj:
        """Put ``obj`` in place without recording an action."""
        obj = copy.deepcopy(obj)
        m = obj.setdefault("metadata", {})
        m.setdefault("uid", f"uid-{next(self._uid)}")
        m.setdefault("resourceVersion", str(next(self._rv)))
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("kind", rt.kind)
        self.objects[(rt.plural, m.get("namespace") or "", m["name"])] = obj
        return obj

    def fail(self, verb: str, resource: str, error: Exception, times: int = 1) -> None:
        """Make the next ``times`` calls of ``verb`` on ``resource`` raise ``error``."""
        self._failures.append((verb, resource, error, [times]))

    def writes(self, verb: str | None = None, resource: str | None = None) -> list[Action]:
        return [
            a
            for a in self.actions
            if a.verb != "get"
            and a.verb != "list"
            and (verb is None or a.verb == verb)
            and (resource is None or a.resource == resource)
        ]

    def stored(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        return self.objects.get((rt.plural, namespace or "", name))

    def all(self, rt: ResourceType, namespace: str | None = None) -> list[Obj]:
        return [
            o
            for (p, ns, _), o in self.objects.items()
            if p == rt.plural and (namespace is None or ns == namespace)
        ]

    def sync(self, rt: ResourceType, store: Store) -> None:
        """Make ``store`` hold exactly what the fake server holds for ``rt`` (an informer
        catching up)."""
        current = {key_of(o): o for o in self.all(rt)}
        for key in set(store.keys()) - set(current):
            store.delete(key)
        for obj in current.values():
            store.put(copy.deepcopy(obj))

    # -- the client surface ------------------------------------------------------------------

    def _check(self, verb: str, resource: str) -> None:
        for v, r, err, left in self._failures:
            if v == verb and r == resource and left[0] > 0:
                left[0] -= 1
                raise err

    def _record(
        self,
        verb: str,
        rt: ResourceType,
        ns: str | None,
        name: str,
        sub: str | None,
        body: Any = None,
        **options: Any,
    ) -> None:
        resource = f"{rt.plural}/{sub}" if sub else rt.plural
        self.actions.append(Action(verb, resource, ns or "", name, copy.deepcopy(body), options))
        self._check(verb, resource)

    def _get(self, rt: ResourceType, ns: str | None, name: str) -> Obj:
        obj = self.objects.get((rt.plural, ns or "", name))
        if obj is None:
            raise errors.NotFound(f'{rt.plural} "{name}" not found')
        return obj

    async def get(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Obj:
        self._record("get", rt, namespace, name, subresource)
        return copy.deepcopy(self._get(rt, namespace, name))

    async def list(self, rt: ResourceType, namespace: str | None = None, **_: Any) -> Obj:
        self._record("list", rt, namespace, "", None)
        items = [copy.deepcopy(o) for o in self.all(rt, namespace)]
        return {"kind": rt.list_kind_name, "metadata": {"resourceVersion": "1"}, "items": items}

    list_all = list

    async def create(
        self,
        rt: ResourceType,
        obj: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        **_: Any,
    ) -> Obj:
        obj = copy.deepcopy(obj)
        m = obj.setdefault("metadata", {})
        ns = namespace or m.get("namespace") or ""
        if not m.get("name") and m.get("generateName"):
            m["name"] = f"{m['generateName']}{next(self._names):05d}"
        self._record("create", rt, ns, m.get("name", ""), subresource, obj)
        if (rt.plural, ns, m["name"]) in self.objects:
            raise errors.AlreadyExists(f'{rt.plural} "{m["name"]}" already exists')
        if rt.namespaced:
            m["namespace"] = ns
        m.setdefault("generation", 1)
        m["creationTimestamp"] = m.get("creationTimestamp") or "2026-01-01T00:00:00Z"
        m.pop("resourceVersion", None)
        m.pop("uid", None)
        return copy.deepcopy(self.seed(rt, obj))

    def _write(self, rt: ResourceType, current: Obj, new: Obj, sub: str | None) -> Obj:
        if sub == "status":
            merged = copy.deepcopy(current)
            merged["status"] = copy.deepcopy(new.get("status"))
        elif sub == "finalize":
            merged = copy.deepcopy(current)
            merged.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get(
                "finalizers"
            ) or []
        else:
            merged = copy.deepcopy(new)
            merged.pop("status", None)
            if current.get("status") is not None:
                merged["status"] = copy.deepcopy(current["status"])
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "generation"):
                if k in current["metadata"]:
                    merged["metadata"][k] = current["metadata"][k]
            if merged.get("spec") != current.get("spec"):
                merged["metadata"]["generation"] = (
                    int(current["metadata"].get("generation") or 1) + 1
                )
        merged["metadata"]["resourceVersion"] = str(next(self._rv))
        m = merged["metadata"]
        if (
            m.get("deletionTimestamp")
            and not m.get("finalizers")
            and not (merged.get("spec") or {}).get("finalizers")
        ):
            del self.objects[(rt.plural, m.get("namespace") or "", m["name"])]
        else:
            self.objects[(rt.plural, m.get("namespace") or "", m["name"])] = merged
        return copy.deepcopy(merged)

    async def update(self, rt: ResourceType, obj: Obj, *, subresource: str | None = None) -> Obj:
        m = obj.get("metadata") or {}
        self._record("update", rt, m.get("namespace"), m.get("name", ""), subresource, obj)
        current = self._get(rt, m.get("namespace"), m["name"])
        rv = m.get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise errors.Conflict("the object has been modified")
        return self._write(rt, current, obj, subresource)

    async def patch(
        self,
        rt: ResourceType,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
        **_: Any,
    ) -> Obj:
        self._record("patch", rt, namespace, name, subresource, patch, patch_type=patch_type)
        current = self._get(rt, namespace, name)
        if patch_type == "json":
            new = json_patch(current, patch)
        elif patch_type == "strategic":
            new = strategic_merge_patch(current, patch, current.get("kind", rt.kind))
        else:
            new = merge_patch(current, patch)
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if rv != current["metadata"]["resourceVersion"]:
            raise errors.Conflict("the object has been modified")
        return self._write(rt, current, new, subresource)

    async def delete(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> Obj:
        self._record(
            "delete",
            rt,
            namespace,
            name,
            None,
            None,
            propagation_policy=propagation_policy,
            preconditions=preconditions,
        )
        current = self._get(rt, namespace, name)
        if preconditions and preconditions.get("uid") not in (None, current["metadata"]["uid"]):
            raise errors.Conflict("precondition failed: uid")
        finalizers = list(current["metadata"].get("finalizers") or [])
        if propagation_policy == "Foreground":
            finalizers.append("foregroundDeletion")
        elif propagation_policy == "Orphan":
            finalizers.append("orphan")
        if finalizers:
            pending = copy.deepcopy(current)
            pending["metadata"]["finalizers"] = list(dict.fromkeys(finalizers))
            pending["metadata"].setdefault("deletionTimestamp", "2026-01-01T00:00:00Z")
            pending["metadata"]["resourceVersion"] = str(next(self._rv))
            self.objects[(rt.plural, namespace or "", name)] = pending
            return copy.deepcopy(pending)
        del self.objects[(rt.plural, namespace or "", name)]
        return {"kind": "Status", "status": "Success"}


@dataclass
class FakeRecorder:
    """Keeps events as (type, reason, message, object name) tuples."""

    events: list[tuple[str, str, str, str]] = field(default_factory=list)

    def event(self, obj: Obj, type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message, (obj.get("metadata") or {}).get("name", "")))

    def reasons(self) -> list[str]:
        return [e[1] for e in self.events]


def store_of(*objects: Obj) -> Store:
    """A :class:`~machinery.informer.Store` holding ``objects`` (as an informer would)."""
    store = Store()
    for obj in objects:
        store.put(obj)
    return store
