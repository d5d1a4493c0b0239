"""The resource types a server serves, as its discovery documents say (built-in and CRDs alike).

:func:`preferred_types` is client-go's ``ServerPreferredResources``: ``/api/v1``, then the
preferred version of every group in ``/apis``. The namespace controller empties a namespace of
every namespaced type it returns; the garbage collector watches every type it returns that can
be listed, watched and deleted. A group whose document fails is reported in
:attr:`Discovered.failed` and skipped, so one bad group never blocks the others (the namespace
controller then does not finalize, as Kubernetes' does not).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from machinery import errors
from machinery.kinds import ResourceType, parse_resource_list

log = logging.getLogger(__name__)

Obj = dict[str, Any]


async def _json(client: Any, path: str) -> Obj:
    resp = await client.request("GET", path, headers={"Accept": "application/json"})
    return resp.json()


@dataclass(frozen=True)
class Discovered:
    """What discovery found, and the group versions whose documents could not be read."""

    types: list[ResourceType]
    failed: dict[str, str] = field(default_factory=dict)  # group version → error


async def preferred_types(client: Any) -> Discovered:
    """One version (the preferred one) of every resource the server serves.

    Raises when ``/api/v1`` or ``/apis`` cannot be read (nothing useful can be done then)."""
    core, groups = await asyncio.gather(_json(client, "/api/v1"), _json(client, "/apis"))
    versions = [
        gv
        for g in groups.get("groups") or []
        if (gv := (g.get("preferredVersion") or {}).get("groupVersion"))
    ]
    failed: dict[str, str] = {}

    async def one(gv: str) -> list[ResourceType]:
        try:
            return parse_resource_list(await _json(client, f"/apis/{gv}"))
        except errors.ApiError as e:
            log.warning("discovery of %s failed: %s", gv, e)
            failed[gv] = str(e)
            return []

    found = await asyncio.gather(*(one(gv) for gv in versions))
    types = parse_resource_list(core) + [rt for part in found for rt in part]
    return Discovered(types, failed)
