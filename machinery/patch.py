"""The three Kubernetes patch formats, and the patch ``kubectl apply`` computes.

Every function here is pure: inputs are never mutated and results share no mutable objects
with them.

* :func:`merge_patch` — JSON merge patch (RFC 7386), ``application/merge-patch+json``.
* :func:`json_patch` — JSON patch (RFC 6902), ``application/json-patch+json``. A body that is
  not a list of objects → :class:`~machinery.errors.BadRequest` (400); an operation that cannot
  be applied, including a failed ``test`` → :class:`~machinery.errors.Invalid` (422).
* :func:`strategic_merge_patch` — ``application/strategic-merge-patch+json`` for built-in kinds.
  Maps merge recursively, ``null`` deletes a key, lists are replaced unless the field has a
  strategy in :data:`STRATEGIES` (merge by a key, or merge a primitive list as a set).
  Directives: ``$patch: replace|merge|delete`` (in a map, or as a list item),
  ``$setElementOrder/<list>``, ``$retainKeys``, ``$deleteFromPrimitiveList/<list>``.
  A malformed directive → ``BadRequest``; content that contradicts one (a patch key outside
  ``$retainKeys``, a list item without its merge key) → ``Invalid``; a kind without strategy
  information (a custom resource) → :class:`~machinery.errors.UnsupportedMediaType` (415).
* :func:`three_way_merge_patch` — what client-side ``kubectl apply`` sends.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer

from machinery import kinds
from machinery.errors import BadRequest, Invalid, UnsupportedMediaType
from machinery.jsoncopy import json_copy

__all__ = [
    "STRATEGIES",
    "FieldStrategy",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
    "strategy_for",
    "supports_strategic",
    "three_way_merge_patch",
]

# ---------------------------------------------------------------------------------------------
# RFC 7386
# ---------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch: ``null`` deletes, objects merge recursively, anything else
    (lists included) replaces. A non-object ``patch`` replaces ``target`` entirely."""
    if not isinstance(patch, dict):
        return json_copy(patch)
    result = json_copy(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(result: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            sub = result.get(key)
            if not isinstance(sub, dict):
                sub = result[key] = {}
            _merge_into(sub, value)
        else:
            result[key] = json_copy(value)


# ---------------------------------------------------------------------------------------------
# RFC 6902
# ---------------------------------------------------------------------------------------------


def json_patch(target: Any, ops: Any) -> Any:
    """Apply a JSON patch (``add remove replace move copy test``), all or nothing."""
    if not isinstance(ops, list):
        raise BadRequest(f"a JSON patch must be a list of operations, not {type(ops).__name__}")
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise BadRequest(f"JSON patch operation {index} must be an object: {op!r}")
    try:
        # Copy the operations too: the library inserts their values into the document.
        return jsonpatch.JsonPatch(copy.deepcopy(ops)).apply(target, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise Invalid(f"the JSON patch test operation failed: {exc}") from None
    except (
        jsonpatch.JsonPatchException,
        jsonpointer.JsonPointerException,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
    ) as exc:
        raise Invalid(f"the JSON patch could not be applied: {_describe(exc)}") from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing member {exc}"
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Strategy table (data, not code): which lists merge, by which key, in each built-in kind
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldStrategy:
    """How strategic merge treats one field.

    ``merge_key``: a list of objects merged item by item on that key; ``set_merge``: a list of
    primitives merged as an ordered set; ``retain_keys``: a map (or the items of a list) that
    a ``$retainKeys`` directive from three-way merge may prune. Lists with no strategy are
    replaced atomically.
    """

    merge_key: str | None = None
    set_merge: bool = False
    retain_keys: bool = False

    @classmethod
    def parse(cls, spec: str) -> FieldStrategy:
        """``"merge:name"``, ``"merge"`` (primitive set), ``"retainKeys"``, comma-joined."""
        merge_key, set_merge, retain = None, False, False
        for part in spec.split(","):
            if part == "merge":
                set_merge = True
            elif part.startswith("merge:"):
                merge_key = part.removeprefix("merge:")
            elif part == "retainKeys":
                retain = True
            else:
                raise ValueError(f"unknown patch strategy {part!r}")
        return cls(merge_key, set_merge, retain)


_CONTAINER: dict[str, str] = {
    "env": "merge:name",
    "ports": "merge:containerPort",
    "volumeMounts": "merge:mountPath",
    "volumeDevices": "merge:devicePath",
}
_POD_SPEC: dict[str, str] = {
    "containers": "merge:name",
    "initContainers": "merge:name",
    "ephemeralContainers": "merge:name",
    "volumes": "merge:name,retainKeys",
    "imagePullSecrets": "merge:name",
    "hostAliases": "merge:ip",
    "topologySpreadConstraints": "merge:topologyKey",
    "resourceClaims": "merge:name",
    "schedulingGates": "merge:name",
    **{
        f"{containers}.{field}": spec
        for containers in ("containers", "initContainers", "ephemeralContainers")
        for field, spec in _CONTAINER.items()
    },
}
# Where a PodSpec sits in each kind that embeds one.
_POD_SPEC_AT: dict[str, str] = {
    "Pod": "spec",
    "PodTemplate": "template.spec",
    "ReplicationController": "spec.template.spec",
    "ReplicaSet": "spec.template.spec",
    "Deployment": "spec.template.spec",
    "StatefulSet": "spec.template.spec",
    "DaemonSet": "spec.template.spec",
    "Job": "spec.template.spec",
    "CronJob": "spec.jobTemplate.spec.template.spec",
}
_EVERY_KIND: dict[str, str] = {
    "metadata.ownerReferences": "merge:uid",
    "metadata.finalizers": "merge",
    "status.conditions": "merge:type",
}
_PER_KIND: dict[str, dict[str, str]] = {
    "Pod": {"status.podIPs": "merge:ip", "status.hostIPs": "merge:ip"},
    "Service": {"spec.ports": "merge:port"},
    "Node": {
        "spec.taints": "merge:key",
        "spec.podCIDRs": "merge",
        "status.addresses": "merge:type",
    },
    "Deployment": {"spec.strategy": "retainKeys"},
    "DaemonSet": {"spec.updateStrategy": "retainKeys"},
}
_OTHER_KINDS = ("ReplicationController", "PodTemplate", "CronJob")


def _kind_table(kind: str) -> dict[str, FieldStrategy]:
    specs = dict(_EVERY_KIND)
    if kind in _POD_SPEC_AT:
        specs.update({f"{_POD_SPEC_AT[kind]}.{path}": spec for path, spec in _POD_SPEC.items()})
    specs.update(_PER_KIND.get(kind, {}))
    return {path: FieldStrategy.parse(spec) for path, spec in specs.items()}


#: kind → dotted field path (list items add no segment) → strategy.
STRATEGIES: dict[str, dict[str, FieldStrategy]] = {
    kind: _kind_table(kind)
    for kind in sorted({*(rt.kind for rt in kinds.BUILTIN), *_POD_SPEC_AT, *_OTHER_KINDS})
}
_NO_STRATEGY = FieldStrategy()


def supports_strategic(kind: str, api_version: str | None = None) -> bool:
    """Whether ``kind`` is a built-in kind (strategic merge applies); False for custom
    resources, which the API server answers with 415. With ``api_version`` the pair must be
    a built-in one (a CRD may reuse a built-in kind name in its own group)."""
    if api_version is not None:
        try:
            kinds.builtin(api_version, kind)
        except KeyError:
            return False
    return kind in STRATEGIES


def strategy_for(kind: str, path: str) -> FieldStrategy:
    """The strategy of the field at ``path`` (e.g. ``spec.template.spec.containers.env``)."""
    return STRATEGIES.get(kind, {}).get(path, _NO_STRATEGY)


# ---------------------------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------------------------

_PATCH = "$patch"
_RETAIN = "$retainKeys"
_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def strategic_merge_patch(
    target: dict[str, Any], patch: dict[str, Any], kind: str
) -> dict[str, Any]:
    """Apply a strategic merge patch to an object of built-in ``kind``.

    ``$deleteFromPrimitiveList`` is applied before the list's own patch; a nested map with
    ``$patch: delete`` is removed from its parent (at the top level the result is ``{}``).
    """
    if not supports_strategic(kind):
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include:"
            " application/json-patch+json, application/merge-patch+json,"
            " application/apply-patch+yaml"
        )
    if not isinstance(patch, dict):
        raise BadRequest(f"a strategic merge patch must be an object, not {type(patch).__name__}")
    # One deep copy up front; the merger then works in place on objects it owns.
    owned = json_copy(target) if isinstance(target, dict) else {}
    merged = _Merger(STRATEGIES[kind]).map(owned, patch, "")
    return {} if merged is None else merged


class _Merger:
    """Strategic merge on an ``original`` the merger owns (it is updated in place); every
    value taken from the patch is copied."""

    def __init__(self, table: Mapping[str, FieldStrategy]) -> None:
        self.table = table

    def strategy(self, path: str) -> FieldStrategy:
        return self.table.get(path, _NO_STRATEGY)

    def map(
        self, original: dict[str, Any], patch: Mapping[str, Any], path: str
    ) -> dict[str, Any] | None:
        """The merged map (``original`` updated in place, or a new map), or ``None`` when the
        patch deletes it."""
        directive = patch.get(_PATCH, "merge")
        if directive == "delete":
            return None
        if directive not in ("replace", "merge"):
            raise BadRequest(f"unknown patch directive {_PATCH}: {directive!r} at {path or '.'}")
        result = {} if directive == "replace" else original
        live_lists = {
            field: list(result[field])
            for key in patch
            if key.startswith(_ORDER)
            and isinstance(result.get(field := key.removeprefix(_ORDER)), list)
        }

        retain = patch.get(_RETAIN)
        if retain is not None:
            if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
                raise BadRequest(f"{_RETAIN} must be a list of field names at {path or '.'}")
            extra = [
                k
                for k, v in patch.items()
                if v is not None and not k.startswith("$") and k not in retain
            ]
            if extra:
                raise BadRequest(
                    f"the patch has fields {sorted(extra)} not listed in {_RETAIN} at {path or '.'}"
                )
            result = {k: v for k, v in result.items() if k in retain}

        for key, values in patch.items():
            if key.startswith(_DELETE_PRIMITIVE):
                field = key.removeprefix(_DELETE_PRIMITIVE)
                if not isinstance(values, list):
                    raise BadRequest(f"{key} must be a list at {path or '.'}")
                if isinstance(result.get(field), list):
                    gone = {_hashable(v) for v in values}
                    result[field] = [v for v in result[field] if _hashable(v) not in gone]

        for key, value in patch.items():
            if key.startswith("$"):
                if key in (_PATCH, _RETAIN) or key.startswith((_ORDER, _DELETE_PRIMITIVE)):
                    continue
                raise BadRequest(f"unknown patch directive {key!r} at {path or '.'}")
            child = f"{path}.{key}" if path else key
            if value is None:
                result.pop(key, None)
            elif isinstance(value, dict):
                current = result.get(key)
                merged = self.map(current if isinstance(current, dict) else {}, value, child)
                if merged is None:
                    result.pop(key, None)
                else:
                    result[key] = merged
            elif isinstance(value, list):
                current = result.get(key)
                result[key] = self.list(current if isinstance(current, list) else [], value, child)
            else:
                result[key] = value

        for key, order in patch.items():
            if key.startswith(_ORDER):
                field = key.removeprefix(_ORDER)
                if not isinstance(order, list):
                    raise BadRequest(f"{key} must be a list at {path or '.'}")
                if isinstance(result.get(field), list):
                    child = f"{path}.{field}" if path else field
                    live = live_lists.get(field)
                    result[field] = self.order(
                        result[field], order, live if isinstance(live, list) else [], child
                    )
        return result

    def list(self, original: list[Any], patch: list[Any], path: str) -> list[Any]:
        strategy = self.strategy(path)
        directives = [i for i in patch if isinstance(i, dict) and _PATCH in i]
        items = [i for i in patch if not (isinstance(i, dict) and _PATCH in i and len(i) == 1)]
        replace = any(d[_PATCH] == "replace" for d in directives)
        for d in directives:
            if d[_PATCH] not in ("replace", "delete", "merge"):
                raise BadRequest(f"unknown patch directive {_PATCH}: {d[_PATCH]!r} in {path}")
        if replace or (strategy.merge_key is None and not strategy.set_merge):
            return [self.fresh(i, path) for i in items if not _is_directive(i, "delete")]
        if strategy.merge_key is not None:
            return self.keyed_list(original, items, strategy.merge_key, path)
        result = list(original)
        result.extend(json_copy(i) for i in items)
        return _dedupe(result)

    def keyed_list(self, original: list[Any], patch: list[Any], key: str, path: str) -> list[Any]:
        result = list(original)
        for item in patch:
            if not isinstance(item, dict):
                raise Invalid(f"{path}: a list merged by {key!r} must hold objects, got {item!r}")
            if key not in item:
                raise Invalid(f"{path}: map {item!r} does not contain declared merge key: {key}")
            at = next(
                (
                    n
                    for n, o in enumerate(result)
                    if isinstance(o, dict) and o.get(key) == item[key]
                ),
                None,
            )
            if _is_directive(item, "delete"):
                result = [
                    o for o in result if not (isinstance(o, dict) and o.get(key) == item[key])
                ]
                continue
            merged = self.map(result[at] if at is not None else {}, item, path)
            if merged is None:  # pragma: no cover - delete handled above
                continue
            if at is None:
                result.append(merged)
            else:
                result[at] = merged
        return result

    def fresh(self, value: Any, path: str) -> Any:
        """A patch value laid where nothing was: directives and nulls applied to empty."""
        if isinstance(value, dict):
            return self.map({}, value, path)
        if isinstance(value, list):
            return self.list([], value, path)
        return json_copy(value)

    def order(self, merged: list[Any], order: list[Any], live: list[Any], path: str) -> list[Any]:
        """``$setElementOrder``: listed items in the given order, others (server-only) kept
        at their live positions relative to the listed ones."""
        key = self.strategy(path).merge_key

        def ident(item: Any) -> Any:
            if key is None:
                return _hashable(item)
            return _hashable(item.get(key)) if isinstance(item, dict) else None

        if key is not None and not all(isinstance(o, dict) and key in o for o in order):
            raise BadRequest(f"{_ORDER}{path.rsplit('.', 1)[-1]} items must be maps with {key!r}")
        wanted = {ident(o): n for n, o in enumerate(order)}
        live_at = {ident(item): n for n, item in enumerate(live)}
        listed = sorted((i for i in merged if ident(i) in wanted), key=lambda i: wanted[ident(i)])
        rest = sorted(
            (i for i in merged if ident(i) not in wanted),
            key=lambda i: live_at.get(ident(i), len(live)),
        )
        out: list[Any] = []
        while listed and rest:
            left, right = live_at.get(ident(rest[0])), live_at.get(ident(listed[0]))
            if left is not None and right is not None and left < right:
                out.append(rest.pop(0))
            else:
                out.append(listed.pop(0))
        return out + listed + rest


def _is_directive(item: Any, name: str) -> bool:
    return isinstance(item, dict) and item.get(_PATCH) == name


def _hashable(value: Any) -> Any:
    """A hashable stand-in with JSON equality (``true`` differs from ``1``)."""
    if isinstance(value, bool):
        return ("__bool__", value)
    if isinstance(value, dict):
        return ("__map__", tuple(sorted((k, _hashable(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("__list__", tuple(_hashable(v) for v in value))
    return value


def _dedupe(values: Iterable[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for v in values:
        h = _hashable(v)
        if h not in seen:
            seen.add(h)
            out.append(v)
    return out


# ---------------------------------------------------------------------------------------------
# Three-way merge (client-side apply)
# ---------------------------------------------------------------------------------------------


def three_way_merge_patch(
    original: dict[str, Any] | None,
    modified: dict[str, Any],
    current: dict[str, Any],
    kind: str | None,
) -> dict[str, Any]:
    """The patch that turns ``current`` into ``current`` with ``modified`` laid over it and
    every field the user dropped (in ``original``, not in ``modified``) removed.

    ``original`` is the last-applied configuration (``None`` the first time). Fields that
    others set in ``current`` and the user never wrote are kept. ``null`` in ``modified``
    means "not set". With ``kind=None`` the result is a JSON merge patch (lists replaced
    whole); otherwise a strategic merge patch: lists with a merge key are diffed item by item
    (a removed item becomes ``{key: v, "$patch": "delete"}``) and carry
    ``$setElementOrder/<list>`` as kubectl sends it; primitive set lists use
    ``$deleteFromPrimitiveList``; ``retainKeys`` fields carry ``$retainKeys``. An empty
    result means "unchanged". Apply it with :func:`merge_patch` or
    :func:`strategic_merge_patch`.
    """
    table: Mapping[str, FieldStrategy] = {}
    if kind is not None:
        if not supports_strategic(kind):
            raise UnsupportedMediaType(f"strategic merge patch is not supported for kind {kind!r}")
        table = STRATEGIES[kind]
    return _Differ(table, strategic=kind is not None).map(
        original if isinstance(original, dict) else {},
        _strip_nulls(modified),
        current if isinstance(current, dict) else {},
        "",
    )


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


class _Differ:
    def __init__(self, table: Mapping[str, FieldStrategy], strategic: bool) -> None:
        self.table = table
        self.strategic = strategic

    def map(self, original: dict, modified: dict, current: dict, path: str) -> dict[str, Any]:
        patch: dict[str, Any] = {}
        for key in original:
            if key not in modified and key in current:
                patch[key] = None
        for key, want in modified.items():
            child = f"{path}.{key}" if path else key
            have = current.get(key, _MISSING)
            was = original.get(key, _MISSING)
            if isinstance(want, dict) and isinstance(have, dict):
                sub = self.map(was if isinstance(was, dict) else {}, want, have, child)
                if sub and self.table.get(child, _NO_STRATEGY).retain_keys:
                    sub[_RETAIN] = sorted(want)
                if sub:
                    patch[key] = sub
            elif self.strategic and isinstance(want, list) and isinstance(have, list):
                self.list(patch, key, was if isinstance(was, list) else [], want, have, child)
            elif self.strategic and isinstance(want, list) and self.unkeyable(want, child):
                patch[key] = [{_PATCH: "replace"}, *copy.deepcopy(want)]
            elif have is _MISSING or not _same(have, want):
                patch[key] = copy.deepcopy(want)
        return patch

    def unkeyable(self, items: list, path: str) -> bool:
        """A list with a merge key whose items cannot be merged by it (sent as a replace)."""
        merge_key = self.table.get(path, _NO_STRATEGY).merge_key
        return merge_key is not None and _index(items, merge_key) is None

    def list(
        self,
        patch: dict[str, Any],
        key: str,
        original: list,
        modified: list,
        current: list,
        path: str,
    ) -> None:
        strategy = self.table.get(path, _NO_STRATEGY)
        if strategy.merge_key is not None:
            self.keyed(patch, key, original, modified, current, strategy, path)
        elif strategy.set_merge and _all_scalars(modified, current, original):
            live, wanted = {_hashable(v) for v in current}, {_hashable(v) for v in modified}
            added = [v for v in modified if _hashable(v) not in live]
            removed = [v for v in original if _hashable(v) not in wanted and _hashable(v) in live]
            in_both = [v for v in current if _hashable(v) in wanted]
            if added:
                patch[key] = added
            if removed:
                patch[_DELETE_PRIMITIVE + key] = removed
            if added or removed or in_both != [v for v in modified if _hashable(v) in live]:
                patch[_ORDER + key] = list(modified)
        elif not _same(modified, current):
            patch[key] = copy.deepcopy(modified)

    def keyed(
        self,
        patch: dict[str, Any],
        key: str,
        original: list,
        modified: list,
        current: list,
        strategy: FieldStrategy,
        path: str,
    ) -> None:
        mk = strategy.merge_key
        assert mk is not None
        want = _index(modified, mk)
        have = _index(current, mk)
        if want is None or have is None:  # items without a usable key: replace the list
            if not _same(modified, current):
                patch[key] = [{_PATCH: "replace"}, *copy.deepcopy(modified)]
            return
        was = _index(original, mk) or {}
        items: list[dict[str, Any]] = []
        for value, item in want.items():
            if value in have:
                sub = self.map(was.get(value, {}), item, have[value], path)
                if sub and strategy.retain_keys:
                    sub[_RETAIN] = sorted(item)
                if sub:
                    items.append({mk: item[mk], **sub})
            else:
                items.append(copy.deepcopy(item))
        for value, item in was.items():
            if value not in want and value in have:
                items.append({mk: item[mk], _PATCH: "delete"})
        kept_live = [v for v in have if v in want]
        kept_wanted = [v for v in want if v in have]
        if items:
            patch[key] = items
        if items or kept_live != kept_wanted:
            patch[_ORDER + key] = [{mk: item[mk]} for item in modified]


_MISSING: Any = object()


def _same(a: Any, b: Any) -> bool:
    """JSON equality: like ``==`` but ``true`` is not ``1``."""
    return _hashable(a) == _hashable(b)


def _all_scalars(*lists: list) -> bool:
    return all(not isinstance(v, (dict, list)) for values in lists for v in values)


def _index(items: list, key: str) -> dict[Any, dict] | None:
    """Items by merge-key value, or ``None`` if one lacks the key or two share a value."""
    out: dict[Any, dict] = {}
    for item in items:
        if not isinstance(item, dict) or key not in item:
            return None
        value = _hashable(item[key])
        if value in out:
            return None
        out[value] = item
    return out
