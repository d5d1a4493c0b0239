"""``tug apply --prune``: delete what an earlier apply created and this one no longer names.

kubectl's semantics (``kubectl apply --prune -l SELECTOR`` or ``--all``): after every object
applied without error, list the prunable types — kubectl's default set of workload and config
kinds (those this server serves; kubectl fails on one it does not), or the ``--prune-allowlist``
GVKs — in each namespace an applied object lives in, then the cluster-scoped ones
(Namespace, PersistentVolume by default) cluster-wide, select with the selector, and delete
each object that carries the ``kubectl.kubernetes.io/last-applied-configuration``
annotation (was applied, not created otherwise) and was not part of this apply. Each deletion
prints ``KIND/NAME pruned``; a dry run deletes nothing (``--dry-run=server`` asks the server
to check the deletion) and says so in the suffix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from cli.config import Session
from cli.errors import CliError
from cli.resources import qualified_kind
from machinery import errors
from machinery.kinds import ResourceType

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# kubectl's default prune set (group, version, kind), in the order it prunes them.
DEFAULT_PRUNE_KINDS: tuple[tuple[str, str, str], ...] = (
    ("", "v1", "ConfigMap"),
    ("", "v1", "Endpoints"),
    ("", "v1", "PersistentVolumeClaim"),
    ("", "v1", "Pod"),
    ("", "v1", "ReplicationController"),
    ("", "v1", "Secret"),
    ("", "v1", "Service"),
    ("batch", "v1", "Job"),
    ("batch", "v1", "CronJob"),
    ("networking.k8s.io", "v1", "Ingress"),
    ("apps", "v1", "DaemonSet"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "ReplicaSet"),
    ("apps", "v1", "StatefulSet"),
    ("", "v1", "Namespace"),
    ("", "v1", "PersistentVolume"),
)


@dataclass(frozen=True)
class Applied:
    """The identity of one object this apply wrote (or would write)."""

    group: str
    kind: str
    namespace: str | None
    name: str


def parse_allowlist(specs: Iterable[str]) -> list[tuple[str, str, str]]:
    """``group/version/kind`` (``core`` for the core group) → (group, version, kind)."""
    out = []
    for spec in specs:
        parts = spec.split("/")
        if len(parts) != 3 or not all(parts):
            raise CliError(
                f"invalid GroupVersionKind format: {spec}, please follow <group/version/kind>"
            )
        group, version, kind = parts
        out.append(("" if group == "core" else group, version, kind))
    return out


def prune_types(session: Session, allowlist: list[str]) -> list[ResourceType]:
    """The types to prune: the allowlist's (each must be served) or the default set (those
    the server serves)."""
    served = {(rt.group, rt.version, rt.kind): rt for rt in session.resources.types}
    if not allowlist:
        return [served[gvk] for gvk in DEFAULT_PRUNE_KINDS if gvk in served]
    out = []
    for group, version, kind in parse_allowlist(allowlist):
        rt = served.get((group, version, kind))
        if rt is None:
            gv = f"{group}/{version}" if group else version
            raise CliError(f'no matches for kind "{kind}" in version "{gv}"')
        out.append(rt)
    return out


def prune(
    session: Session,
    applied: set[Applied],
    namespaces: list[str],
    *,
    selector: str | None,
    allowlist: list[str],
    dry_run: str,
) -> bool:
    """Delete (or, in a dry run, name) the objects to prune; print one line each. Returns
    False when a deletion failed (reported on stderr)."""
    ok = True
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(dry_run, "")
    types = prune_types(session, allowlist)
    scopes = [(ns, rt) for ns in namespaces for rt in types if rt.namespaced]
    scopes += [(None, rt) for rt in types if not rt.namespaced]
    for ns, rt in scopes:
        listing = session.client.list_all(rt, ns, label_selector=selector or None)
        for obj in listing.get("items") or []:
            meta = obj.get("metadata") or {}
            mine = Applied(rt.group, rt.kind, meta.get("namespace"), meta.get("name", ""))
            if LAST_APPLIED not in (meta.get("annotations") or {}) or mine in applied:
                continue
            try:
                if dry_run != "client":
                    _delete(session, rt, mine.name, mine.namespace, dry_run == "server")
            except errors.NotFound:
                continue
            except errors.ApiError as e:
                session.warn(f"error: pruning {qualified_kind(rt)}/{mine.name}: {e.message}")
                ok = False
                continue
            session.print(f"{qualified_kind(rt)}/{mine.name} pruned{suffix}")
    return ok


def _delete(session: Session, rt: ResourceType, name: str, ns: str | None, dry: bool) -> None:
    """DELETE with kubectl's default cascade for prune (background)."""
    body: dict[str, Any] = {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Background",
    }
    if dry:
        body["dryRun"] = ["All"]
    session.client.request(
        "DELETE",
        rt.path(ns, name),
        params={"dryRun": "All"} if dry else None,  # tugboat reads it from the query only
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
    )
