"""Adoption and release of dependents (Kubernetes ``ControllerRefManager``).

:func:`plan_claim` decides (pure) which candidates an owner keeps, adopts and releases:

* owned by another controller → ignored;
* owned by us and matching the selector → kept; not matching → released (unless the owner is
  being deleted, then ignored);
* orphans matching the selector, not being deleted, while the owner is not being deleted →
  adopted.

:func:`adopt` and :func:`release` write with a JSON patch that first tests the object's
``uid`` and ``resourceVersion``, so a concurrent change makes the write fail (422) instead of
clobbering ``ownerReferences``; the caller retries from a fresh cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from controllers.objects import controller_ref, is_deleting, meta, owner_reference, uid_of
from machinery import errors
from machinery.kinds import ResourceType

Obj = dict[str, Any]


class _Patcher(Protocol):
    async def patch(
        self,
        rt: ResourceType,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = ...,
    ) -> Obj: ...


@dataclass
class ClaimPlan:
    owned: list[Obj] = field(default_factory=list)
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)


def plan_claim(owner: Obj, matches: Callable[[Obj], bool], candidates: list[Obj]) -> ClaimPlan:
    plan = ClaimPlan()
    owner_uid = uid_of(owner)
    owner_deleting = is_deleting(owner)
    for obj in candidates:
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != owner_uid:
                continue
            if matches(obj):
                plan.owned.append(obj)
            elif not owner_deleting:
                plan.release.append(obj)
            continue
        if owner_deleting or is_deleting(obj) or not matches(obj):
            continue
        plan.adopt.append(obj)
    return plan


def _guarded(obj: Obj, refs: list[Obj]) -> list[Obj]:
    m = meta(obj)
    return [
        {"op": "test", "path": "/metadata/uid", "value": m.get("uid")},
        {"op": "test", "path": "/metadata/resourceVersion", "value": m.get("resourceVersion")},
        {"op": "add", "path": "/metadata/ownerReferences", "value": refs},
    ]


async def adopt(client: _Patcher, rt: ResourceType, obj: Obj, owner: Obj) -> Obj | None:
    """Make ``owner`` the controller of ``obj``; None when ``obj`` is gone."""
    refs = [r for r in meta(obj).get("ownerReferences") or [] if r.get("uid") != uid_of(owner)]
    refs.append(owner_reference(owner))
    try:
        return await client.patch(
            rt,
            meta(obj)["name"],
            _guarded(obj, refs),
            meta(obj).get("namespace"),
            patch_type="json",
        )
    except errors.NotFound:
        return None


async def release(client: _Patcher, rt: ResourceType, obj: Obj, owner_uid: str) -> Obj | None:
    """Remove the ownerReference to ``owner_uid`` from ``obj``; None when ``obj`` is gone."""
    refs = [r for r in meta(obj).get("ownerReferences") or [] if r.get("uid") != owner_uid]
    try:
        return await client.patch(
            rt,
            meta(obj)["name"],
            _guarded(obj, refs),
            meta(obj).get("namespace"),
            patch_type="json",
        )
    except errors.NotFound:
        return None
