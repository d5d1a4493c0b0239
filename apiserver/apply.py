"""Server-side apply: field ownership as Kubernetes' structured-merge-diff keeps it.

Pure functions, no I/O; inputs are never mutated.

Vocabulary:

* A **field path** is a tuple of path elements in their FieldsV1 spelling: ``f:<name>`` (a map
  field), ``k:<compact JSON of the merge key>`` (an item of a list merged by key),
  ``v:<JSON value>`` (an item of a list of primitives merged as a set), ``i:<index>``.
* A :class:`FieldSet` holds the paths a manager owns. Its members are *leaves*: scalars,
  ``null``, empty maps, atomic lists (owned whole), and the items of keyed/set lists (the
  ``"."`` entry in FieldsV1), whose own fields are members too.
* Lists merge item by item with the merge keys of strategic merge
  (:func:`machinery.patch.strategy_for`); any other list is atomic. Custom resources
  (``kind=None``) have no merge keys beyond ``metadata``: maps merge, lists are atomic.
* Never owned: ``apiVersion``, ``kind``, ``metadata.name``/``namespace`` and the fields the server
  sets (uid, resourceVersion, generation, creationTimestamp, managedFields, ...); ``status``
  on the main resource when the kind has a status subresource; ``spec`` on the status
  subresource.

:func:`apply` implements an ``application/apply-patch+yaml`` PATCH; :func:`record_update`
records who changed what on every other write (operation ``Update``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from machinery.errors import BadRequest, Conflict, Invalid
from machinery.jsoncopy import json_copy
from machinery.patch import STRATEGIES, FieldStrategy, strategy_for

__all__ = [
    "BEFORE_FIRST_APPLY",
    "FieldSet",
    "Path",
    "apply",
    "fields_of",
    "path_string",
    "record_update",
]

Path = tuple[str, ...]

#: The manager that owns every field of an object first applied to without managedFields.
BEFORE_FIRST_APPLY = "before-first-apply"

_SELF = "."
_KINDS_OF_ELEMENT = ("f:", "k:", "v:", "i:")

# ---------------------------------------------------------------------------------------------
# FieldSet
# ---------------------------------------------------------------------------------------------


def _compact(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _normalise(element: str) -> str:
    """``element`` in canonical form (``k:``/``v:`` JSON re-serialised compactly, keys sorted);
    ``ValueError`` if it is not a path element."""
    prefix, body = element[:2], element[2:]
    if prefix == "f:":
        return element
    if prefix in ("k:", "v:"):
        value = json.loads(body)
        if prefix == "k:" and (not isinstance(value, dict) or not value):
            raise ValueError(f"a k: element needs a non-empty JSON object: {element!r}")
        return prefix + _compact(value)
    if prefix == "i:":
        return f"i:{int(body)}"
    raise ValueError(f"not a FieldsV1 path element: {element!r}")


def _element_order(element: str) -> tuple[int, str]:
    return _KINDS_OF_ELEMENT.index(element[:2]), element[2:]


@dataclass(frozen=True)
class FieldSet:
    """An immutable set of field paths (members only; ancestors are implied)."""

    paths: frozenset[Path] = field(default_factory=frozenset)

    @classmethod
    def of(cls, paths: Iterable[Path]) -> FieldSet:
        return cls(frozenset(paths))

    @classmethod
    def from_fields_v1(cls, data: Mapping[str, Any]) -> FieldSet:
        """Parse the FieldsV1 JSON form; ``ValueError`` on malformed input."""
        if not isinstance(data, Mapping):
            raise ValueError("fieldsV1 must be a JSON object")
        out: set[Path] = set()

        def walk(node: Mapping[str, Any], path: Path) -> None:
            for key, child in node.items():
                if key == _SELF:
                    if not path:
                        raise ValueError('"." is not allowed at the top of fieldsV1')
                    out.add(path)
                    continue
                if not isinstance(child, Mapping):
                    raise ValueError(f"fieldsV1 entry {key!r} must be an object")
                sub = (*path, _normalise(key))
                if child:
                    walk(child, sub)
                else:
                    out.add(sub)

        walk(data, ())
        return cls(frozenset(out))

    def to_fields_v1(self) -> dict[str, Any]:
        """The FieldsV1 JSON form: ``"."`` first, then elements in structured-merge-diff order."""
        tree: dict[str, Any] = {}
        for path in self.paths:
            node = tree
            for element in path:
                node = node.setdefault(element, {})
            node[_SELF] = {}

        def render(node: dict[str, Any]) -> dict[str, Any]:
            children = sorted((k for k in node if k != _SELF), key=_element_order)
            if not children:
                return {}
            out: dict[str, Any] = {_SELF: {}} if _SELF in node else {}
            out.update((k, render(node[k])) for k in children)
            return out

        return render(tree)

    def prefixes(self) -> frozenset[Path]:
        """Every strict ancestor of a member (the paths with something owned below them)."""
        return frozenset(p[:n] for p in self.paths for n in range(1, len(p)))

    def __or__(self, other: FieldSet) -> FieldSet:
        return FieldSet(self.paths | other.paths)

    def __and__(self, other: FieldSet) -> FieldSet:
        return FieldSet(self.paths & other.paths)

    def __sub__(self, other: FieldSet) -> FieldSet:
        return FieldSet(self.paths - other.paths)

    def __bool__(self) -> bool:
        return bool(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[Path]:
        return iter(sorted(self.paths, key=lambda p: [_element_order(e) for e in p]))

    def __contains__(self, path: object) -> bool:
        return path in self.paths


def path_string(path: Path) -> str:
    """A path as Kubernetes prints it in conflicts: ``.spec.containers[name="c"].image``."""
    out = []
    for element in path:
        prefix, body = element[:2], element[2:]
        if prefix == "f:":
            out.append("." + body)
        elif prefix == "k:":
            keys = json.loads(body)
            out.append("[" + ",".join(f"{k}={_compact(v)}" for k, v in keys.items()) + "]")
        elif prefix == "v:":
            out.append(f"[={body}]")
        else:
            out.append(f"[{body}]")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# The schema: which lists merge, and by what
# ---------------------------------------------------------------------------------------------

_NO_STRATEGY = FieldStrategy()
# ObjectMeta is the same in every kind, custom resources included: take its entries from any
# built-in kind's row of the strategic-merge table.
_OBJECT_META: dict[str, FieldStrategy] = {
    path: strategy
    for row in STRATEGIES.values()
    for path, strategy in row.items()
    if path.startswith("metadata.")
}

_IDENTITY: frozenset[Path] = frozenset(
    {("f:apiVersion",), ("f:kind",), ("f:metadata", "f:name"), ("f:metadata", "f:namespace")}
)
_SERVER_SET: frozenset[Path] = frozenset(
    ("f:metadata", f"f:{name}")
    for name in (
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    )
)


def _reset(status_subresource: bool, subresource: str | None) -> frozenset[Path]:
    """Fields another endpoint owns: status on the main resource, spec on ``status``."""
    if subresource == "status":
        return frozenset({("f:spec",)})
    if subresource is None and status_subresource:
        return frozenset({("f:status",)})
    return frozenset()


class _Schema:
    def __init__(self, kind: str | None, ignored: frozenset[Path]) -> None:
        self.kind = kind
        self.ignored = ignored
        #: Paths with an ignored field somewhere below them
        self.above_ignored = frozenset(p[:n] for p in ignored for n in range(1, len(p)))

    def strategy(self, dotted: str) -> FieldStrategy:
        if self.kind is None:
            return _OBJECT_META.get(dotted, _NO_STRATEGY)
        return strategy_for(self.kind, dotted)

    def elements(self, items: list[Any], dotted: str, *, strict: bool) -> list[str] | None:
        """The path element of each item, or ``None`` for an atomic list. A list whose items
        cannot be told apart is atomic, or (``strict``, for applied configuration) ``Invalid``."""
        strategy = self.strategy(dotted)
        if strategy.merge_key is not None:
            key = strategy.merge_key
            elements = []
            for n, item in enumerate(items):
                if not isinstance(item, dict) or item.get(key) is None:
                    _reject_unless_lenient(
                        strict,
                        dotted,
                        f"element {n}: associative list with keys has an element that omits"
                        f" key field {key!r}",
                    )
                    return None
                elements.append("k:" + _compact({key: item[key]}))
        elif strategy.set_merge and all(not isinstance(i, (dict, list)) for i in items):
            elements = ["v:" + _compact(item) for item in items]
        else:
            return None
        if len(set(elements)) != len(elements):
            dup = next(e for e in elements if elements.count(e) > 1)
            _reject_unless_lenient(
                strict, dotted, f"duplicate entries for key {path_string((dup,))}"
            )
            return None
        return elements


def _reject_unless_lenient(strict: bool, dotted: str, message: str) -> None:
    """Raise ``Invalid`` for applied configuration (``strict``); otherwise do nothing."""
    if strict:
        field_path = "." + dotted
        raise Invalid(
            f"failed to create typed patch object: {field_path}: {message}",
            causes=[{"reason": "FieldValueInvalid", "message": message, "field": field_path}],
        )


# ---------------------------------------------------------------------------------------------
# Leaves: every owned path of an object, with its value
# ---------------------------------------------------------------------------------------------

_ITEM = "\0item"  # stands for the value of a list-item member (its fields compare separately)


def _leaves(obj: Mapping[str, Any], schema: _Schema, *, strict: bool = False) -> dict[Path, str]:
    """Member path → comparable value (compact JSON) for every ownable field of ``obj``."""
    out: dict[Path, str] = {}
    _walk_map(obj, (), "", schema, strict, out)
    out.pop(("f:metadata",), None)
    return out


def _walk_map(
    m: Mapping[str, Any], path: Path, dotted: str, schema: _Schema, strict: bool, out: dict
) -> None:
    for key, value in m.items():
        sub = (*path, f"f:{key}")
        if sub not in schema.ignored:
            _walk(value, sub, f"{dotted}.{key}" if dotted else key, schema, strict, out)


def _walk(value: Any, path: Path, dotted: str, schema: _Schema, strict: bool, out: dict) -> None:
    """The members of ``value`` at ``path`` (see :func:`_leaves`) into ``out``."""
    if isinstance(value, dict) and value:
        _walk_map(value, path, dotted, schema, strict, out)
        return
    if isinstance(value, list):
        elements = schema.elements(value, dotted, strict=strict)
        if elements is not None:
            for element, item in zip(elements, value, strict=True):
                out[(*path, element)] = _ITEM
                if isinstance(item, dict):
                    _walk_map(item, (*path, element), dotted, schema, strict, out)
            return
    out[path] = _compact(value)


def _changes(
    old: Mapping[str, Any], new: Mapping[str, Any], schema: _Schema
) -> tuple[FieldSet, FieldSet]:
    """(added or modified, removed) members between two objects: the comparison of their
    :func:`_leaves`, walking only the subtrees whose JSON differs."""
    changed: set[Path] = set()
    removed: set[Path] = set()
    _diff_map(old, new, (), "", schema, changed, removed)
    changed.discard(("f:metadata",))
    removed.discard(("f:metadata",))
    return FieldSet(frozenset(changed)), FieldSet(frozenset(removed))


def _diff_map(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    path: Path,
    dotted: str,
    schema: _Schema,
    changed: set[Path],
    removed: set[Path],
) -> None:
    for key, value in new.items():
        sub = (*path, f"f:{key}")
        if sub in schema.ignored:
            continue
        below = f"{dotted}.{key}" if dotted else key
        if key in old:
            _diff(old[key], value, sub, below, schema, changed, removed)
        else:
            leaves: dict[Path, str] = {}
            _walk(value, sub, below, schema, False, leaves)
            changed.update(leaves)
    for key, value in old.items():
        sub = (*path, f"f:{key}")
        if key not in new and sub not in schema.ignored:
            leaves = {}
            _walk(value, sub, f"{dotted}.{key}" if dotted else key, schema, False, leaves)
            removed.update(leaves)


def _diff(
    old: Any,
    new: Any,
    path: Path,
    dotted: str,
    schema: _Schema,
    changed: set[Path],
    removed: set[Path],
) -> None:
    # Equal JSON text means equal members; above an ignored field the text may differ there.
    if old is new or (path not in schema.above_ignored and orjson.dumps(old) == orjson.dumps(new)):
        return
    if isinstance(old, dict) and old and isinstance(new, dict) and new:
        _diff_map(old, new, path, dotted, schema, changed, removed)
        return
    before: dict[Path, str] = {}
    after: dict[Path, str] = {}
    _walk(old, path, dotted, schema, False, before)
    _walk(new, path, dotted, schema, False, after)
    changed.update(p for p, v in after.items() if before.get(p) != v)
    removed.update(p for p in before if p not in after)


def _fields_v1(obj: Mapping[str, Any], schema: _Schema) -> dict[str, Any]:
    """``FieldSet.of(_leaves(obj, schema)).to_fields_v1()``, built in one walk."""
    tree: dict[str, Any] = {}
    for key in sorted(obj):
        path = (f"f:{key}",)
        if path in schema.ignored:
            continue
        if key in _PER_OBJECT:
            node = _tree(obj[key], path, key, schema)
        else:
            node = _remembered_tree(obj[key], key, schema)
        if node is not None:
            tree[path[0]] = node
    if tree.get("f:metadata") == {}:
        del tree["f:metadata"]  # a leaf metadata is never owned
    return tree


_PER_OBJECT = frozenset(("metadata", "status"))  # top-level fields that differ per object
_REMEMBERED_MAX = 1024  # trees kept; the table is emptied when full
_REMEMBERED_VALUE_MAX = 16 * 1024  # bytes of JSON: larger values are walked afresh
_remembered: dict[tuple[_Schema, str, bytes], bytes] = {}


def _remembered_tree(value: Any, key: str, schema: _Schema) -> dict[str, Any] | None:
    """The FieldsV1 node of the top-level field ``key``, remembered by its JSON: objects
    stamped from one template (a ReplicaSet's pods) share their spec's node."""
    if not isinstance(value, dict):
        return _tree(value, (f"f:{key}",), key, schema)
    text = orjson.dumps(value)
    if len(text) > _REMEMBERED_VALUE_MAX:
        return _tree(value, (f"f:{key}",), key, schema)
    memo = (schema, key, text)
    known = _remembered.get(memo)
    if known is None:
        known = orjson.dumps(_tree(value, (f"f:{key}",), key, schema))
        if len(_remembered) >= _REMEMBERED_MAX:
            _remembered.clear()
        _remembered[memo] = known
    return orjson.loads(known)  # a fresh copy for every object


def _tree_map(m: Mapping[str, Any], path: Path, dotted: str, schema: _Schema) -> dict[str, Any]:
    """The FieldsV1 children of a map, in order (``f:`` elements sort by field name)."""
    out: dict[str, Any] = {}
    for key in sorted(m):
        sub = (*path, f"f:{key}")
        if sub not in schema.ignored:
            node = _tree(m[key], sub, f"{dotted}.{key}" if dotted else key, schema)
            if node is not None:
                out[sub[-1]] = node
    return out


def _tree(value: Any, path: Path, dotted: str, schema: _Schema) -> dict[str, Any] | None:
    """The FieldsV1 node of ``value``: ``{}`` for a leaf, ``None`` when it has no members."""
    if isinstance(value, dict) and value:
        return _tree_map(value, path, dotted, schema) or None
    if isinstance(value, list):
        elements = schema.elements(value, dotted, strict=False)
        if elements is not None:
            items: dict[str, Any] = {}
            for element, item in sorted(zip(elements, value, strict=True), key=_first):
                fields = (
                    _tree_map(item, (*path, element), dotted, schema)
                    if isinstance(item, dict)
                    else {}
                )
                # An item is a member itself: "." marks it, unless it is a leaf ({})
                items[element] = {_SELF: {}, **fields} if fields else {}
            return items or None
    return {}


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


@functools.lru_cache(maxsize=1024)
def _schema(kind: str | None, status_subresource: bool, subresource: str | None) -> _Schema:
    """The schema of a kind, with the fields no manager owns on this endpoint ignored."""
    return _Schema(kind, _IDENTITY | _SERVER_SET | _reset(status_subresource, subresource))


def fields_of(
    obj: Mapping[str, Any],
    kind: str | None,
    *,
    status_subresource: bool = False,
    subresource: str | None = None,
) -> FieldSet:
    """The fields ``obj`` sets, as a manager applying it would own them. ``kind=None`` for a
    custom resource. List items that lack their merge key make the list atomic."""
    schema = _schema(kind, status_subresource, subresource)
    return FieldSet(frozenset(_leaves(obj, schema)))


# ---------------------------------------------------------------------------------------------
# Merge (applied configuration over the live object) and prune (what the applier dropped)
# ---------------------------------------------------------------------------------------------


def _merge_map(
    live: Mapping[str, Any], config: Mapping[str, Any], schema: _Schema, dotted: str
) -> dict[str, Any]:
    out = dict(live)
    for key, want in config.items():
        child = f"{dotted}.{key}" if dotted else key
        have = live.get(key)
        if want is None:
            out.pop(key, None)
        elif isinstance(want, dict) and isinstance(have, dict):
            out[key] = _merge_map(have, want, schema, child)
        elif isinstance(want, list) and isinstance(have, list):
            out[key] = _merge_list(have, want, schema, child)
        else:
            out[key] = json_copy(want)
    return out


def _merge_list(live: list[Any], config: list[Any], schema: _Schema, dotted: str) -> list[Any]:
    """Keyed/set lists: items merged by identity, in the applied order, live-only items kept
    where they were relative to the others. Atomic lists: the applied list."""
    mine = schema.elements(config, dotted, strict=True)
    theirs = schema.elements(live, dotted, strict=False)
    if mine is None or theirs is None:
        return json_copy(config)
    live_by = dict(zip(theirs, live, strict=True))
    wanted = set(mine)
    out: list[Any] = []
    done: set[str] = set()

    def take_config(n: int) -> None:
        item, have = config[n], live_by.get(mine[n])
        if isinstance(item, dict) and isinstance(have, dict):
            out.append(_merge_map(have, item, schema, dotted))
        else:
            out.append(json_copy(item))
        done.add(mine[n])

    li = ri = 0
    while li < len(live) or ri < len(config):
        if li < len(live) and theirs[li] in done:
            li += 1
        elif li < len(live) and ri < len(config) and theirs[li] == mine[ri]:
            take_config(ri)
            li, ri = li + 1, ri + 1
        elif ri < len(config) and (li >= len(live) or theirs[li] in wanted):
            take_config(ri)
            ri += 1
        else:
            out.append(live[li])
            done.add(theirs[li])
            li += 1
    return out


_GONE: Any = object()


class _Pruner:
    """Removes ``remove`` paths from an object unless something in ``keep`` lies below them;
    maps and lists that pruning empties go too, unless they are owned themselves."""

    def __init__(self, schema: _Schema, remove: FieldSet, keep: FieldSet) -> None:
        self.schema = schema
        self.remove, self.remove_below = remove.paths, remove.prefixes()
        self.keep, self.keep_below = keep.paths, keep.prefixes()

    def dropped(self, path: Path) -> bool:
        return path in self.remove and path not in self.keep_below

    def map(self, m: Mapping[str, Any], path: Path, dotted: str) -> dict[str, Any]:
        out = {}
        for key, value in m.items():
            sub = (*path, f"f:{key}")
            if self.dropped(sub):
                continue
            if sub in self.remove_below:
                value = self.value(value, sub, f"{dotted}.{key}" if dotted else key)
                if value is _GONE:
                    continue
            out[key] = value
        return out

    def value(self, value: Any, path: Path, dotted: str) -> Any:
        if isinstance(value, dict):
            pruned: Any = self.map(value, path, dotted)
        elif isinstance(value, list):
            elements = self.schema.elements(value, dotted, strict=False)
            if elements is None:
                return value
            pruned = []
            for element, item in zip(elements, value, strict=True):
                sub = (*path, element)
                if self.dropped(sub):
                    continue
                if sub in self.remove_below and isinstance(item, dict):
                    item = self.map(item, sub, dotted)
                pruned.append(item)
        else:
            return value
        if value and not pruned and path not in self.keep:
            return _GONE
        return pruned


# ---------------------------------------------------------------------------------------------
# managedFields entries
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    manager: str
    operation: str  # "Apply" | "Update"
    api_version: str
    time: str | None
    fields: FieldSet
    subresource: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Kubernetes' manager identity: an applier is one manager whatever its apiVersion."""
        version = self.api_version if self.operation == "Update" else ""
        return self.manager, self.operation, self.subresource or "", version

    def describe(self) -> str:
        """As Kubernetes names a manager in a conflict."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = orjson.loads(_rendered(self.fields))
        if self.subresource:
            out["subresource"] = self.subresource
        return out


@functools.lru_cache(maxsize=8192)
def _parsed(fields_v1: bytes) -> FieldSet:
    """FieldSet.from_fields_v1, remembered: the same sets come back on every write."""
    return FieldSet.from_fields_v1(orjson.loads(fields_v1))


@functools.lru_cache(maxsize=8192)
def _rendered(fields: FieldSet) -> bytes:
    return orjson.dumps(fields.to_fields_v1())


def _parse_entries(raw: Any) -> list[_Entry]:
    """Well-formed FieldsV1 entries of a managedFields list; malformed ones are dropped (as
    Kubernetes resets managedFields it cannot decode)."""
    out: dict[tuple[str, str, str, str], _Entry] = {}
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or item.get("fieldsType", "FieldsV1") != "FieldsV1":
            continue
        manager, operation = item.get("manager"), item.get("operation")
        if not isinstance(manager, str) or operation not in ("Apply", "Update"):
            continue
        try:
            fields = _parsed(orjson.dumps(item.get("fieldsV1") or {}))
        except (ValueError, TypeError):
            continue
        time = item.get("time")
        entry = _Entry(
            manager=manager,
            operation=operation,
            api_version=str(item.get("apiVersion") or ""),
            time=time if isinstance(time, str) else None,
            fields=fields,
            subresource=item.get("subresource") or None,
        )
        previous = out.get(entry.key)
        if previous is not None:
            entry = replace(entry, fields=previous.fields | entry.fields)
        out[entry.key] = entry
    return list(out.values())


def _managed_fields(obj: Mapping[str, Any] | None) -> Any:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    return meta.get("managedFields") if isinstance(meta, Mapping) else None


def _with_entries(obj: dict[str, Any], entries: Iterable[_Entry]) -> dict[str, Any]:
    """``obj`` (owned by the caller) with managedFields set: non-empty entries only, sorted as
    Kubernetes sorts them (Apply before Update, then by time, manager, apiVersion)."""
    kept = sorted(
        (e for e in entries if e.fields),
        key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource or ""),
    )
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = [e.to_json() for e in kept]
    else:
        meta.pop("managedFields", None)
    return obj


def _compare(old: Mapping[Path, str], new: Mapping[Path, str]) -> tuple[FieldSet, FieldSet]:
    """(added or modified, removed) between two leaf maps."""
    changed = {p for p, v in new.items() if old.get(p) != v}
    removed = {p for p in old if p not in new}
    return FieldSet(frozenset(changed)), FieldSet(frozenset(removed))


# ---------------------------------------------------------------------------------------------
# Apply
# ---------------------------------------------------------------------------------------------


def apply(
    current: dict[str, Any] | None,
    applied: dict[str, Any],
    *,
    manager: str,
    kind: str | None,
    force: bool,
    api_version: str,
    now: str,
    status_subresource: bool = False,
    subresource: str | None = None,
) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` to ``current`` (``None``: create).

    * Applied fields are set; maps merge; lists with a merge key merge item by item; atomic
      lists and scalars are replaced. Fields of other managers are kept.
    * Fields this manager applied last time and no longer applies are removed, unless another
      manager (or this apply) still owns them or something below them.
    * A field that changes value and is owned by another manager is a conflict: without
      ``force`` → :class:`~machinery.errors.Conflict` (409) with one ``FieldManagerConflict``
      cause per field; with ``force`` the other manager loses it. Applying a field with the
      value it already has shares ownership.
    * ``metadata.managedFields``: this manager's ``Apply`` entry holds exactly the applied set;
      fields that changed or vanished leave other entries; empty entries are dropped. An
      existing object without managedFields is first owned by ``before-first-apply``.

    The result carries the live object's server-set metadata and (for a kind with a status
    subresource) its status; the caller still validates, defaults and stores it. ``applied``
    with ``metadata.managedFields`` → :class:`~machinery.errors.BadRequest`; list items missing
    their merge key or sharing one → :class:`~machinery.errors.Invalid`.
    """
    if not isinstance(applied, dict):
        raise BadRequest(
            f"the applied configuration must be an object, not {type(applied).__name__}"
        )
    if _managed_fields(applied):
        raise BadRequest("metadata.managedFields must be nil")
    reset = _reset(status_subresource, subresource)
    schema = _schema(kind, status_subresource, subresource)
    live: dict[str, Any] = current if isinstance(current, dict) else {}

    config = _without(applied, _SERVER_SET | reset)
    config_set = FieldSet(frozenset(_leaves(config, schema, strict=True)))
    live_leaves = _leaves(live, schema)

    entries = _parse_entries(_managed_fields(live))
    if current is not None and not entries and live_leaves:
        seed = FieldSet(frozenset(live_leaves))
        entries = [_Entry(BEFORE_FIRST_APPLY, "Update", api_version, now, seed)]
    me = _Entry(manager, "Apply", api_version, now, config_set, subresource)
    previous = next((e for e in entries if e.key == me.key), None)
    others = [e for e in entries if e.key != me.key]

    merged = _merge_map(live, config, schema, "")
    if previous is not None:
        owned = config_set
        for other in others:
            owned = owned | other.fields
        merged = _Pruner(schema, previous.fields - owned, owned).map(merged, (), "")

    changed, removed = _compare(live_leaves, _leaves(merged, schema))
    conflicts = [(other, path) for other in others for path in other.fields & changed]
    if conflicts and not force:
        raise _conflict_error(conflicts)
    others = [replace(o, fields=o.fields - changed - removed) for o in others]
    if previous is not None and not changed and not removed and previous.fields == config_set:
        me = replace(me, time=previous.time)
    merged = json_copy(merged)
    return _with_entries(merged, [*others, me])


def _without(obj: Mapping[str, Any], paths: frozenset[Path]) -> dict[str, Any]:
    """A copy of ``obj`` without the given ``f:``-only paths."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        here = (f"f:{key}",)
        if here in paths:
            continue
        below = frozenset(p[1:] for p in paths if p[:1] == here and len(p) > 1)
        out[key] = _without(value, below) if below and isinstance(value, dict) else value
    return out


def _conflict_error(conflicts: list[tuple[_Entry, Path]]) -> Conflict:
    ordered = sorted(conflicts, key=lambda c: (c[0].describe(), [_element_order(e) for e in c[1]]))
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {entry.describe()}",
            "field": path_string(path),
        }
        for entry, path in ordered
    ]
    if len(ordered) == 1:
        entry, path = ordered[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {entry.describe()}: {path_string(path)}"
        )
    else:
        lines: list[str] = []
        for entry, path in ordered:
            header = f"conflicts with {entry.describe()}:"
            if header not in lines:
                lines.append(header)
            lines.append(f"- {path_string(path)}")
        message = f"Apply failed with {len(ordered)} conflicts: " + "\n".join(lines)
    return Conflict(message, causes=causes)


# ---------------------------------------------------------------------------------------------
# Update
# ---------------------------------------------------------------------------------------------


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    kind: str | None,
    api_version: str,
    now: str,
    subresource: str | None = None,
    status_subresource: bool = False,
) -> dict[str, Any]:
    """``new`` with managedFields updated for an ordinary create/update/patch by ``manager``.

    Fields that were added or changed become owned by ``manager`` (operation ``Update``, one
    entry per manager, apiVersion and subresource) and leave every other entry; removed fields
    leave every entry; entries left empty are dropped. The entry's time moves to ``now`` only
    when the write changed something. If ``new`` carries a non-empty managedFields list that
    differs from ``old``'s, the client is resetting ownership: it is the starting point (an
    entry that is not valid FieldsV1, e.g. ``[{}]``, clears it). The result shares everything
    but its ``metadata`` with ``new``.
    """
    schema = _schema(kind, status_subresource, subresource)
    base = _managed_fields(old)
    sent = _managed_fields(new)
    if isinstance(sent, list) and sent and sent != base:
        base = sent
    entries = _parse_entries(base)
    if old is None and not entries:
        return _created(new, schema, manager, api_version, now, subresource)
    changed, removed = _changes(old or {}, new, schema)

    me = _Entry(manager, "Update", api_version, now, FieldSet(), subresource)
    previous = next((e for e in entries if e.key == me.key), None)
    others = [replace(e, fields=e.fields - changed - removed) for e in entries if e.key != me.key]
    mine = (previous.fields if previous else FieldSet()) - removed | changed
    me = replace(me, fields=mine, time=now if changed or previous is None else previous.time)
    return _with_entries(_shallow(new), [*others, me])


def _created(
    new: dict[str, Any],
    schema: _Schema,
    manager: str,
    api_version: str,
    now: str,
    subresource: str | None,
) -> dict[str, Any]:
    """:func:`record_update` of a create without managedFields: ``manager`` owns every field."""
    fields = _fields_v1(new, schema)
    out = _shallow(new)
    if not fields:
        out["metadata"].pop("managedFields", None)
        return out
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": "Update",
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if subresource:
        entry["subresource"] = subresource
    out["metadata"]["managedFields"] = [entry]
    return out


def _shallow(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` whose ``metadata`` (the part :func:`_with_entries` sets) is its own;
    the rest is shared."""
    out = dict(obj)
    meta = out.setdefault("metadata", {})
    if isinstance(meta, dict):
        out["metadata"] = dict(meta)
    return out
