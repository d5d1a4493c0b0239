"""REST semantics over the store: create, get, list, update, patch, delete, per resource.

Every method works on plain dicts, raises :mod:`machinery.errors` on failure and stores nothing
when it fails. Kind-specific behaviour (defaults a server fills in, graceful deletion, status
handling) lives in :mod:`apiserver.strategies`; this module holds what every resource shares:
optimistic concurrency on ``resourceVersion``, ``generation``, ``generateName``, finalizers,
namespace lifecycle, and the status and scale subresources.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apiserver import apply, strategies
from apiserver.cache import Entry
from apiserver.meta import meta, now_rfc3339, random_suffix, spec_of
from apiserver.storage import Key, Write
from apiserver.store import Store
from machinery import errors
from machinery.jsoncopy import json_copy
from machinery.kinds import ResourceType

NS_RESOURCE = "/namespaces"
# What code that reads an object of the wrong shape raises (``spec`` a list, a name a number)
MALFORMED = (AttributeError, TypeError, KeyError, ValueError)
MAX_RETRIES = 8
# Resources whose Kubernetes REST strategy keeps ``metadata.generation`` (1 on create, bumped
# when anything but metadata and status changes); custom resources keep it too. The others
# (ConfigMaps, Secrets, Services, Namespaces, Nodes, ...) have none.
GENERATION_RESOURCES = frozenset(
    {
        "/pods",
        "apps/deployments",
        "apps/replicasets",
        "apps/statefulsets",
        "apps/daemonsets",
        "batch/jobs",
        "batch/cronjobs",
        "policy/poddisruptionbudgets",
        "discovery.k8s.io/endpointslices",
        "networking.k8s.io/ingresses",
        "networking.k8s.io/networkpolicies",
        "apiextensions.k8s.io/customresourcedefinitions",
    }
)


@dataclass
class WriteOptions:
    """Per-request knobs: ``dryRun=All``, ``fieldValidation``, and the field manager whose
    ownership ``metadata.managedFields`` records (``applied``: an apply already recorded it).
    ``duplicates``: the body's duplicate fields, which decoding finds under Strict only."""

    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    field_manager: str | None = None
    applied: bool = False
    duplicates: list[str] = field(default_factory=list)


@dataclass
class Result:
    """What a write returns: the object, an HTTP code, and warnings for the client."""

    obj: dict[str, Any]
    code: int = 200
    warnings: list[str] | None = None


def key_for(rt: ResourceType, namespace: str | None, name: str) -> Key:
    return Key(rt.storage_key, namespace or "" if rt.namespaced else "", name)


def _gr(rt: ResourceType) -> str:
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def not_found(rt: ResourceType, name: str) -> errors.NotFound:
    return errors.NotFound(
        f'{_gr(rt)} "{name}" not found',
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def parse_rv(value: Any) -> int | None:
    """A resourceVersion a client sent as a precondition (None when unset); 400 when it is
    not a revision."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.BadRequest(f"invalid resourceVersion {value!r}") from None


def conflict(rt: ResourceType, name: str) -> errors.Conflict:
    return errors.Conflict(
        f'Operation cannot be fulfilled on {_gr(rt)} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def already_exists(rt: ResourceType, name: str) -> errors.AlreadyExists:
    return errors.AlreadyExists(
        f'{_gr(rt)} "{name}" already exists',
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


class Registry:
    """The resource-generic REST logic. One per API server, over one :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.strategies = strategies.Strategies(self)
        #: Validating admission (NodeRestriction, RBAC escalation): each is called with the
        #: type, the admitted object and the stored one (None on create) and raises to refuse.
        self.admission: list[Callable[[ResourceType, dict[str, Any], dict[str, Any] | None], None]]
        self.admission = []

    # -- reads ----------------------------------------------------------------------------------
    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Entry:
        entry = self.store.get(key_for(rt, namespace, name))
        if entry is None:
            raise not_found(rt, name)
        return entry

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> Entry | None:
        return self.store.get(key_for(rt, namespace, name))

    def list(self, rt: ResourceType, namespace: str | None) -> list[tuple[tuple[str, str], Entry]]:
        return self.store.cache.list(rt.storage_key, namespace if rt.namespaced else None)

    def list_at(
        self, rt: ResourceType, namespace: str | None, rev: int
    ) -> list[tuple[tuple[str, str], Entry]]:
        """The list as it was at revision ``rev``; LookupError when that is too old."""
        return self.store.cache.list_at(rt.storage_key, namespace if rt.namespaced else None, rev)

    # -- create ---------------------------------------------------------------------------------
    async def create(
        self, rt: ResourceType, namespace: str | None, body: dict[str, Any], opts: WriteOptions
    ) -> Result:
        try:
            return await self._create(rt, namespace, body, opts)
        except MALFORMED:
            self._explain(rt, body, None)
            raise

    async def _create(
        self, rt: ResourceType, namespace: str | None, body: dict[str, Any], opts: WriteOptions
    ) -> Result:
        obj = json_copy(body)
        self._check_type(rt, obj)
        m = meta(obj)
        if rt.namespaced:
            ns = namespace or m.get("namespace") or "default"
            if m.get("namespace") and m["namespace"] != ns:
                raise errors.BadRequest(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            m["namespace"] = ns
            self._check_namespace(ns)
        else:
            m.pop("namespace", None)
        if not m.get("name"):
            if m.get("generateName"):
                m["name"] = m["generateName"] + random_suffix()
            else:
                raise errors.invalid(
                    rt.kind,
                    "",
                    [
                        {
                            "reason": "FieldValueRequired",
                            "field": "metadata.name",
                            "message": "Required value: name or generateName is required",
                        }
                    ],
                    rt.group,
                )
        for server_field in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ):
            m.pop(server_field, None)
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = now_rfc3339()
        if self._has_generation(rt):
            m["generation"] = 1
        else:
            m.pop("generation", None)
        self.strategies.for_(rt).prepare_create(rt, obj)
        obj, warnings = self._admit(rt, obj, None, opts)
        await self.strategies.for_(rt).before_create(rt, obj, opts)
        if opts.dry_run:
            return Result(obj, 201, warnings)
        try:
            out = await self.store.write(
                Write("create", key_for(rt, m.get("namespace"), m["name"]), obj)
            )
        except BaseException:
            self.strategies.for_(rt).release(rt, obj)
            raise
        if out.error == "exists":
            self.strategies.for_(rt).release(rt, obj)
            raise already_exists(rt, m["name"])
        self.strategies.for_(rt).after_write(rt, obj, None)
        return Result(obj, 201, warnings)

    # -- update ---------------------------------------------------------------------------------
    async def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: dict[str, Any],
        opts: WriteOptions,
        subresource: str | None = None,
    ) -> Result:
        """PUT: the body replaces the object; its resourceVersion, when set, must be current."""
        self._check_type(rt, body)
        bm = body.get("metadata") or {}
        if bm.get("name") and bm["name"] != name:
            raise errors.BadRequest(
                f"the name of the object ({bm['name']}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and bm.get("namespace") and bm["namespace"] != namespace:
            raise errors.BadRequest(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        wanted = bm.get("resourceVersion")
        return await self.mutate(
            rt,
            namespace,
            name,
            lambda _cur: json_copy(body),
            opts,
            subresource,
            expected=parse_rv(wanted),
        )

    async def mutate(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        opts: WriteOptions,
        subresource: str | None = None,
        expected: int | None = None,
    ) -> Result:
        """Read-modify-write with optimistic concurrency.

        ``change`` gets a private copy of the current object and returns the new one. With
        ``expected`` the current revision must match (else 409); without, a concurrent change
        makes the whole step re-run on the newer object.
        """
        for _ in range(MAX_RETRIES):
            cur = self.get(rt, namespace, name)
            if expected is not None and expected != cur.rev:
                raise conflict(rt, name)
            new = change(json_copy(cur.obj))
            if not isinstance(new, dict):
                raise errors.BadRequest("the patched object is not a JSON object")
            try:
                new, warnings = self._prepare_update(rt, cur.obj, new, opts, subresource)
            except MALFORMED:
                self._explain(rt, new, cur.obj)
                raise
            if new == cur.obj:
                return Result(cur.obj, 200, warnings)
            strategy = self.strategies.for_(rt)
            await strategy.before_update(rt, new, cur.obj, opts)
            if opts.dry_run:
                return Result(new, 200, warnings)
            op = "update"
            nm = new["metadata"]
            if (
                nm.get("deletionTimestamp")
                and not nm.get("finalizers")
                and self.strategies.for_(rt).ready_to_delete(rt, new)
            ):
                op = "delete"
            try:
                out = await self.store.write(
                    Write(op, key_for(rt, namespace, name), new, expected=cur.rev)
                )
            except BaseException:
                strategy.abandon_update(rt, new, cur.obj)
                raise
            if out.error is None:
                strategy.after_write(rt, new, cur.obj if op == "update" else None)
                return Result(new, 200, warnings)
            strategy.abandon_update(rt, new, cur.obj)
            if out.error == "missing":
                raise not_found(rt, name)
            if expected is not None:
                raise conflict(rt, name)
        raise conflict(rt, name)

    def _prepare_update(
        self,
        rt: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        opts: WriteOptions,
        subresource: str | None,
    ) -> tuple[dict[str, Any], list[str] | None]:
        self._check_type(rt, new)
        om, nm = old["metadata"], meta(new)
        if subresource == "status":
            status = new.get("status")
            new = json_copy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            nm = new["metadata"]
        elif "status" in rt.subresources and subresource is None:
            if "status" in old:
                new["status"] = json_copy(old["status"])
            else:
                new.pop("status", None)
        for keep in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "name",
            "namespace",
            "generateName",
        ):
            if keep in om:
                nm[keep] = om[keep]
            else:
                nm.pop(keep, None)
        nm["resourceVersion"] = om.get("resourceVersion")
        if om.get("deletionTimestamp"):
            # A deleting object may only lose finalizers, never gain them.
            nm["finalizers"] = [
                f for f in nm.get("finalizers") or [] if f in (om.get("finalizers") or [])
            ]
            if not nm["finalizers"]:
                nm.pop("finalizers")
        self.strategies.for_(rt).prepare_update(rt, old, new, subresource)
        new, warnings = self._admit(rt, new, old, opts, subresource)
        if self._has_generation(rt):
            gen = om.get("generation", 1)
            new["metadata"]["generation"] = gen + 1 if spec_of(new) != spec_of(old) else gen
        elif "generation" in om:
            new["metadata"]["generation"] = om["generation"]
        else:
            new["metadata"].pop("generation", None)
        return new, warnings

    # -- delete ---------------------------------------------------------------------------------
    async def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        options: dict[str, Any],
        opts: WriteOptions,
    ) -> Result:
        """Delete now, or mark for deletion when finalizers or a grace period hold it."""
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is True and not policy:
            policy = "Orphan"
        pre = options.get("preconditions") or {}
        for _ in range(MAX_RETRIES):
            cur = self.get(rt, namespace, name)
            if pre.get("uid") and pre["uid"] != cur.obj["metadata"].get("uid"):
                raise errors.Conflict(
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                    f"meta: {cur.obj['metadata'].get('uid')}"
                )
            if pre.get("resourceVersion") and parse_rv(pre["resourceVersion"]) != cur.rev:
                raise conflict(rt, name)
            new = json_copy(cur.obj)
            nm = new["metadata"]
            finalizers = list(nm.get("finalizers") or [])
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            elif policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            strategy = self.strategies.for_(rt)
            grace = strategy.grace_period(rt, new, options.get("gracePeriodSeconds"))
            if not finalizers and not grace:
                op = "delete"
            else:
                op = "update"
                if finalizers:
                    nm["finalizers"] = finalizers
                if not nm.get("deletionTimestamp"):
                    nm["deletionTimestamp"] = now_rfc3339()
                    nm["deletionGracePeriodSeconds"] = grace or 0
                    strategy.mark_deleting(rt, new)
                elif grace is not None and grace < (nm.get("deletionGracePeriodSeconds") or 0):
                    nm["deletionGracePeriodSeconds"] = grace
                if not grace and not finalizers:
                    op = "delete"
                if op == "update" and new == cur.obj:
                    return Result(cur.obj, 200)
            if opts.dry_run:
                return Result(new, 200)
            out = await self.store.write(
                Write(op, key_for(rt, namespace, name), new, expected=cur.rev)
            )
            if out.error is None:
                if op == "delete":
                    strategy.release(rt, new)
                    strategy.after_write(rt, None, cur.obj)
                return Result(new, 200 if op == "delete" else 202 if finalizers else 200)
            if out.error == "missing":
                raise not_found(rt, name)
        raise conflict(rt, name)

    # -- helpers --------------------------------------------------------------------------------
    def _explain(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """After a step choked on ``obj`` (a wrong type where a strategy looked): raise the
        validation error that says what is wrong with it. Validation runs before anything is
        stored, so an object it refuses was not stored; one it accepts means a bug of ours,
        and the caller re-raises the original error."""
        if isinstance(obj, dict):
            self._check_type(rt, obj)
            self.strategies.for_(rt).admit(rt, json_copy(obj), old)

    def _has_generation(self, rt: ResourceType) -> bool:
        return rt.storage_key in GENERATION_RESOURCES or self.strategies.for_(rt).custom

    def _check_type(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if not isinstance(obj, dict):
            raise errors.BadRequest("the request body must be a JSON object")
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if not isinstance(kind, str | None) or not isinstance(api_version, str | None):
            raise errors.BadRequest("kind and apiVersion must be strings")
        if not isinstance(obj.get("metadata"), dict | None):
            raise errors.BadRequest("metadata must be an object")
        if kind is None and api_version is None:
            obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version
            return
        if kind != rt.kind or (
            api_version != rt.api_version and not strategies.convertible(rt, api_version)
        ):
            raise errors.BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
                if kind == rt.kind
                else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        obj["apiVersion"] = rt.api_version

    def _check_namespace(self, ns: str) -> None:
        entry = self.store.get(Key(NS_RESOURCE, "", ns))
        if entry is None:
            raise errors.NotFound(
                f'namespaces "{ns}" not found',
                details={"name": ns, "kind": "namespaces"},
            )
        if entry.obj["metadata"].get("deletionTimestamp"):
            message = (
                f"unable to create new content in namespace {ns} because it is being terminated"
            )
            raise errors.Forbidden(
                message,
                reason="Forbidden",
                causes=[
                    {
                        "type": "NamespaceTerminating",
                        "message": message,
                        "field": "metadata.namespace",
                    }
                ],
            )

    def _admit(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        opts: WriteOptions,
        subresource: str | None = None,
    ) -> tuple[dict[str, Any], list[str] | None]:
        strategy = self.strategies.for_(rt)
        obj, unknown = strategy.admit(rt, obj, old)
        for check in self.admission:
            check(rt, obj, old)
        if opts.field_manager and not opts.applied:
            obj = apply.record_update(
                old,
                obj,
                manager=opts.field_manager,
                kind=None if strategy.custom else rt.kind,
                api_version=rt.api_version,
                now=now_rfc3339(),
                subresource=subresource,
                status_subresource="status" in rt.subresources,
            )
        if (not unknown and not opts.duplicates) or opts.field_validation == "Ignore":
            return obj, None
        if opts.field_validation == "Strict":
            detail = ", ".join([*opts.duplicates, *(f'unknown field "{u}"' for u in unknown)])
            raise errors.BadRequest(f"strict decoding error: {detail}")
        return obj, [f'unknown field "{u}"' for u in unknown]
