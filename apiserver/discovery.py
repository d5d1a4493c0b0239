"""API discovery: the legacy documents (``/api``, ``/apis``, per group/version) and the
aggregated ``apidiscovery.k8s.io/v2`` form kubectl asks for first."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from machinery.kinds import Registry as Kinds
from machinery.kinds import ResourceType

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
# Preferred version per group when a group serves several.
_PREFERRED = {"autoscaling": "v2"}
_SUB_KIND = {
    "scale": ("autoscaling", "v1", "Scale"),
    "eviction": ("policy", "v1", "Eviction"),
    "binding": ("", "v1", "Binding"),
}
_SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "eviction": ["create"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "proxy": ["get", "create"],
    "finalize": ["update"],
    "token": ["create"],
}


def wants_aggregated(accept: str | None) -> bool:
    return "as=APIGroupDiscoveryList" in (accept or "")


def _groups(kinds: Kinds) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for t in kinds.types:
        if t.group and t.version not in out[t.group]:
            out[t.group].append(t.version)
    return out


def _preferred(group: str, versions: list[str]) -> str:
    return _PREFERRED.get(group) if _PREFERRED.get(group) in versions else versions[0]


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def api_group_list(kinds: Kinds) -> dict[str, Any]:
    groups = []
    for g, versions in sorted(_groups(kinds).items()):
        pref = _preferred(g, versions)
        groups.append(
            {
                "name": g,
                "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{g}/{pref}", "version": pref},
            }
        )
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(kinds: Kinds, group: str) -> dict[str, Any] | None:
    versions = _groups(kinds).get(group)
    if not versions:
        return None
    pref = _preferred(group, versions)
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{pref}", "version": pref},
    }


def _resource_entries(t: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": t.plural,
        "singularName": t.singular,
        "namespaced": t.namespaced,
        "kind": t.kind,
        "verbs": list(t.verbs),
    }
    if t.short_names:
        main["shortNames"] = list(t.short_names)
    if t.categories:
        main["categories"] = list(t.categories)
    entries = [main]
    for sub in t.subresources:
        group, version, kind = _SUB_KIND.get(sub, (None, None, t.kind))
        e: dict[str, Any] = {
            "name": f"{t.plural}/{sub}",
            "singularName": "",
            "namespaced": t.namespaced,
            "kind": kind,
            "verbs": _SUB_VERBS.get(sub, ["get"]),
        }
        if group is not None:
            e["group"], e["version"] = group, version
        entries.append(e)
    return entries


def api_resource_list(kinds: Kinds, group: str, version: str) -> dict[str, Any] | None:
    gv = f"{group}/{version}" if group else version
    types = [t for t in kinds.types if t.group == group and t.version == version]
    if not types:
        return None
    resources = [e for t in types for e in _resource_entries(t)]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def _aggregated_resource(t: ResourceType) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resource": t.plural,
        "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
        "scope": "Namespaced" if t.namespaced else "Cluster",
        "singularResource": t.singular,
        "verbs": list(t.verbs),
    }
    if t.short_names:
        r["shortNames"] = list(t.short_names)
    if t.categories:
        r["categories"] = list(t.categories)
    subs = []
    for sub in t.subresources:
        group, version, kind = _SUB_KIND.get(sub, (t.group, t.version, t.kind))
        subs.append(
            {
                "subresource": sub,
                "responseKind": {"group": group, "version": version, "kind": kind},
                "verbs": _SUB_VERBS.get(sub, ["get"]),
            }
        )
    if subs:
        r["subresources"] = subs
    return r


def aggregated(kinds: Kinds, legacy: bool) -> dict[str, Any]:
    """The APIGroupDiscoveryList for ``/api`` (legacy=True) or ``/apis``."""
    items = []
    groups = {"": ["v1"]} if legacy else dict(sorted(_groups(kinds).items()))
    for g, versions in groups.items():
        pref = _preferred(g, versions) if g else "v1"
        ordered = [pref] + [v for v in versions if v != pref]
        items.append(
            {
                "metadata": {"name": g, "creationTimestamp": None},
                "versions": [
                    {
                        "version": v,
                        "resources": [
                            _aggregated_resource(t)
                            for t in kinds.types
                            if t.group == g and t.version == v
                        ],
                        "freshness": "Current",
                    }
                    for v in ordered
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
