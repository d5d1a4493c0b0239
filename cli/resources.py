"""Resource names → :class:`~machinery.kinds.ResourceType`, through the server's discovery.

One aggregated-discovery request each for ``/api`` and ``/apis`` (kubectl's first choice), else
the legacy documents (``/api/v1``, ``/apis``, ``/apis/G/V``). Custom resources therefore resolve
like built-ins. When discovery is unavailable the built-in table in :mod:`machinery.kinds` is
used. Types are listed in discovery order: the core group first, each group's preferred version
first, which is the order ``kubectl get all`` and name resolution follow.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from cli.errors import CliError
from machinery import errors, kinds
from machinery.client import Client
from machinery.kinds import ResourceType, parse_resource_list

AGGREGATED = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;q=0.9"
)


def _from_aggregated(doc: dict[str, Any]) -> list[ResourceType]:
    out: list[ResourceType] = []
    for group in doc.get("items") or []:
        gname = (group.get("metadata") or {}).get("name", "")
        for ver in group.get("versions") or []:
            for r in ver.get("resources") or []:
                kind = (r.get("responseKind") or {}).get("kind", "")
                out.append(
                    ResourceType(
                        gname,
                        ver["version"],
                        kind,
                        r["resource"],
                        r.get("singularResource") or kind.lower(),
                        r.get("scope") == "Namespaced",
                        tuple(r.get("shortNames") or ()),
                        tuple(s["subresource"] for s in r.get("subresources") or ()),
                        tuple(r.get("categories") or ()),
                        tuple(r.get("verbs") or ()),
                    )
                )
    return out


class Resources:
    """Discovery for one session (fetched once, on first use)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def _json(self, path: str, accept: str = "application/json") -> dict[str, Any]:
        return self.client.request("GET", path, headers={"Accept": accept}).json()

    def _discover(self) -> list[ResourceType]:
        core = self._json("/api", AGGREGATED)
        if core.get("kind") == "APIGroupDiscoveryList":
            return _from_aggregated(core) + _from_aggregated(self._json("/apis", AGGREGATED))
        out = parse_resource_list(self._json("/api/v1"))
        for g in self._json("/apis").get("groups") or []:
            preferred = (g.get("preferredVersion") or {}).get("groupVersion")
            gvs = [v["groupVersion"] for v in g.get("versions") or []]
            for gv in sorted(gvs, key=lambda v: v != preferred):
                try:
                    out += parse_resource_list(self._json(f"/apis/{gv}"))
                except errors.ApiError:
                    continue
        return out

    @cached_property
    def types(self) -> list[ResourceType]:
        """Every served resource type; the built-in table if the server has no discovery."""
        try:
            found = self._discover()
        except (errors.NotFound, ValueError, KeyError):
            found = []
        return found or list(kinds.BUILTIN)

    def resolve(self, name: str) -> ResourceType:
        """``pods``, ``pod``, ``po``, ``Pod``, ``deployments.apps``, ``deployments.v1.apps``."""
        wanted = name.lower()
        base, _, rest = wanted.partition(".")
        version = group = ""
        if rest:
            head, _, tail = rest.partition(".")
            if tail and head.startswith("v") and head[1:2].isdigit():
                version, group = head, tail
            else:
                group = rest
        for rt in self.types:
            exact = rt.group == group and (not version or rt.version == version)
            prefix = rt.group.startswith(group + ".") and not version
            if rest and not (exact or prefix):
                continue
            if base in (rt.plural, rt.singular, rt.kind.lower()) or base in rt.short_names:
                return rt
        raise CliError(f'the server doesn\'t have a resource type "{name}"')

    def for_kind(self, api_version: str, kind: str) -> ResourceType:
        """The type serving ``kind`` in ``apiVersion`` (a manifest's header)."""
        for rt in self.types:
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        try:
            return kinds.builtin(api_version, kind)
        except KeyError:
            raise CliError(
                f'resource mapping not found for kind "{kind}" in version "{api_version}": '
                "ensure CRDs are installed first"
            ) from None

    def category(self, name: str) -> list[ResourceType]:
        """Types in a discovery category (``all``), one version per resource."""
        seen: set[tuple[str, str]] = set()
        out = []
        for rt in self.types:
            if name in rt.categories and (rt.group, rt.plural) not in seen:
                seen.add((rt.group, rt.plural))
                out.append(rt)
        return out


def qualified_kind(rt: ResourceType) -> str:
    """``pod``, ``deployment.apps``: the resource part of ``-o name`` and apply messages."""
    kind = rt.kind.lower()
    return f"{kind}.{rt.group}" if rt.group else kind
