"""Matching ``NodeSelectorTerm``s against a node's labels and name (pod node affinity, a
PersistentVolume's ``nodeAffinity``): shared by the scheduler and the node agent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Obj = Mapping[str, Any]


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def requirement_matches(req: Obj, value: str | None) -> bool:
    """One ``NodeSelectorRequirement`` against one label/field value (None: absent)."""
    op = req.get("operator")
    values = req.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        have, want = _int(value), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: Obj, labels: Mapping[str, str], node_name: str) -> bool:
    """A ``NodeSelectorTerm``: all expressions and fields must match; an empty term matches
    nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    for req in exprs:
        if not requirement_matches(req, labels.get(req.get("key", ""))):
            return False
    for req in fields:
        value = node_name if req.get("key") == "metadata.name" else None
        if not requirement_matches(req, value):
            return False
    return True


def required_terms(volume: Obj) -> tuple[Obj, ...] | None:
    """A PersistentVolume's required node selector terms; ``None``: usable on any node."""
    affinity = (volume.get("spec") or {}).get("nodeAffinity") or {}
    required = affinity.get("required")
    if required is None:
        return None
    return tuple(required.get("nodeSelectorTerms") or ())


def any_term_matches(terms: Iterable[Obj], labels: Mapping[str, str], node_name: str) -> bool:
    """Whether the node meets ``terms`` (they are ORed)."""
    return any(term_matches(t, labels, node_name) for t in terms)
