"""Label and field selectors, with Kubernetes syntax and semantics.

Label selectors (``?labelSelector=``, ``spec.selector``)::

    selector    := "" | requirement ("," requirement)*
    requirement := KEY | "!" KEY
                 | KEY ("=" | "==" | "!=") VALUE?
                 | KEY ("in" | "notin") "(" VALUE? ("," VALUE?)* ")"

Whitespace between tokens is ignored; requirements are ANDed. ``k!=v`` and ``k notin (...)``
also match objects *without* the label, as in Kubernetes.

Two selectors match everything or nothing, and they are different (Kubernetes draws the same
line): ``LabelSelector.from_dict({})`` and ``parse_label_selector("")`` match **everything**;
``LabelSelector.from_dict(None)`` (a missing ``spec.selector``) matches **nothing** —
:attr:`LabelSelector.matches_nothing` tells them apart.

Field selectors (``?fieldSelector=``) are ``field=value``, ``field==value`` or
``field!=value`` terms joined by commas, where a field is a dotted path into the object and a
missing field reads as ``""`` (``spec.nodeName=`` selects unbound pods). ``\\,``, ``\\=`` and
``\\\\`` escape those characters in values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = [
    "EQUALS",
    "EXISTS",
    "IN",
    "NOT_EQUALS",
    "NOT_EXISTS",
    "NOT_IN",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "parse_field_selector",
    "parse_label_selector",
    "validate_label_key",
    "validate_label_value",
]

# Label requirement operators, spelled as in the selector string.
EQUALS = "="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
NOT_EXISTS = "!"

_API_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": NOT_EXISTS}

# ---------------------------------------------------------------------------------------------
# Validation (messages as Kubernetes words them; the API server returns them as 422 causes)
# ---------------------------------------------------------------------------------------------

_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME_RE = re.compile(_NAME_FMT)
_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an"
    " alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for"
    f" validation is '{_NAME_FMT}')"
)
_DNS_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS_RE = re.compile(_DNS_FMT)
_DNS_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used"
    f" for validation is '{_DNS_FMT}')"
)
_VALUE_FMT = f"({_NAME_FMT})?"
_VALUE_RE = re.compile(_VALUE_FMT)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or"
    " '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or"
    f" 'my_value',  or '12345', regex used for validation is '{_VALUE_FMT}')"
)


def validate_label_key(key: str) -> str | None:
    """Why ``key`` is not a valid label key (``[prefix/]name``), or ``None`` when it is.

    The prefix is a DNS-1123 subdomain of at most 253 characters; the name has at most 63
    characters of ``[A-Za-z0-9_.-]`` and begins and ends with an alphanumeric character.
    """
    if not isinstance(key, str):
        return f"label key must be a string, not {type(key).__name__}"
    parts = key.split("/")
    if len(parts) > 2:
        return (
            f"a qualified name {_NAME_MSG} with an optional DNS subdomain prefix and '/'"
            " (e.g. 'example.com/MyName')"
        )
    errors: list[str] = []
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("prefix part must be non-empty")
        elif len(prefix) > 253:
            errors.append("prefix part must be no more than 253 characters")
        elif not _DNS_RE.fullmatch(prefix):
            errors.append(f"prefix part {_DNS_MSG}")
    else:
        name = parts[0]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    elif not _NAME_RE.fullmatch(name):
        errors.append(f"name part {_NAME_MSG}")
    return "; ".join(errors) or None


def validate_label_value(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or ``None`` when it is (``""`` is valid)."""
    if not isinstance(value, str):
        return f"label value must be a string, not {type(value).__name__}"
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _VALUE_RE.fullmatch(value):
        return _VALUE_MSG
    return None


# ---------------------------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------------------------


class Requirement(NamedTuple):
    """One ANDed term: ``key``, an operator constant (``=``, ``!=``, ``in``, ``notin``,
    ``exists``, ``!``) and its values (sorted, distinct; empty for the existence operators)."""

    key: str
    operator: str
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == EXISTS:
            return self.key in labels
        if op == NOT_EXISTS:
            return self.key not in labels
        if op in (EQUALS, IN):
            return self.key in labels and labels[self.key] in self.values
        # != and notin also select objects that lack the label.
        return self.key not in labels or labels[self.key] not in self.values

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == NOT_EXISTS:
            return f"!{self.key}"
        if op in (EQUALS, NOT_EQUALS):
            return f"{self.key}{op}{self.values[0]}"
        return f"{self.key} {op} ({','.join(self.values)})"


def _requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """A validated requirement; raises :class:`ValueError` naming what is wrong."""
    if error := validate_label_key(key):
        raise ValueError(f"invalid label key {key!r}: {error}")
    vals = tuple(sorted(set(values)))
    for value in vals:
        if error := validate_label_value(value):
            raise ValueError(f"invalid label value {value!r} for key {key!r}: {error}")
    if operator in (EXISTS, NOT_EXISTS):
        if vals:
            raise ValueError(f"values set must be empty for exists and does not exist ({key!r})")
    elif operator in (EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            raise ValueError(f"exact-match compatibility requires one single value ({key!r})")
    elif operator in (IN, NOT_IN):
        if not vals:
            raise ValueError(f"for 'in', 'notin' operators, values set can't be empty ({key!r})")
    else:
        raise ValueError(f"{operator!r} is not a valid label selector operator")
    return Requirement(key, operator, vals)


class LabelSelector:
    """An immutable, hashable label selector (requirements sorted by key, ANDed)."""

    __slots__ = ("_nothing", "_requirements")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False):
        reqs = tuple(Requirement(r[0], r[1], tuple(sorted(set(r[2])))) for r in requirements)
        self._requirements: tuple[Requirement, ...] = tuple(sorted(reqs, key=lambda r: r.key))
        self._nothing = nothing

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        """The selector of a missing ``spec.selector``: matches no object at all."""
        return cls(nothing=True)

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        return parse_label_selector(text)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> LabelSelector:
        """``k=v`` for every pair (a Service's ``spec.selector``); empty or None → everything."""
        return cls(_requirement(k, EQUALS, (v,)) for k, v in (labels or {}).items())

    @classmethod
    def from_dict(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        """The API form ``{matchLabels, matchExpressions}``.

        ``None`` → matches nothing; ``{}`` → matches everything (Kubernetes semantics).
        Raises :class:`ValueError` for unknown operators, bad keys/values, or In/NotIn without
        values and Exists/DoesNotExist with values.
        """
        if selector is None:
            return cls.nothing()
        if not isinstance(selector, Mapping):
            raise ValueError(f"a label selector must be an object, not {type(selector).__name__}")
        reqs: list[Requirement] = []
        match_labels = selector.get("matchLabels") or {}
        if not isinstance(match_labels, Mapping):
            raise ValueError("matchLabels must be an object of string to string")
        for key, value in match_labels.items():
            reqs.append(_requirement(key, EQUALS, (value,)))
        expressions = selector.get("matchExpressions") or []
        if not isinstance(expressions, list):
            raise ValueError("matchExpressions must be a list")
        for expr in expressions:
            if not isinstance(expr, Mapping):
                raise ValueError("each matchExpressions item must be an object")
            operator = expr.get("operator")
            if operator not in _API_OPERATORS:
                raise ValueError(f"{operator!r} is not a valid label selector operator")
            values = expr.get("values") or []
            if not isinstance(values, list):
                raise ValueError("matchExpressions values must be a list of strings")
            reqs.append(_requirement(expr.get("key", ""), _API_OPERATORS[operator], values))
        return cls(reqs)

    # -- queries --------------------------------------------------------------------------

    @property
    def requirements(self) -> tuple[Requirement, ...]:
        return self._requirements

    @property
    def empty(self) -> bool:
        """True for the match-everything selector (no requirements)."""
        return not self._nothing and not self._requirements

    @property
    def matches_nothing(self) -> bool:
        """True only for :meth:`nothing` (``from_dict(None)``)."""
        return self._nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with ``labels`` (``None`` = no labels) is selected."""
        if self._nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self._requirements)

    def exact_labels(self) -> dict[str, str]:
        """The ``key: value`` pairs every selected object must carry (from ``=`` and
        single-valued ``in``), for index look-ups. Empty for :meth:`nothing`."""
        if self._nothing:
            return {}
        exact: dict[str, str] = {}
        for r in self._requirements:
            if r.operator == EQUALS or (r.operator == IN and len(r.values) == 1):
                exact.setdefault(r.key, r.values[0])
        return exact

    def to_dict(self) -> dict[str, Any]:
        """The API form (``!=`` becomes ``NotIn`` with one value). Not for :meth:`nothing`."""
        if self._nothing:
            raise ValueError("the match-nothing selector has no API form (it is a null selector)")
        api_ops = {v: k for k, v in _API_OPERATORS.items()}
        out: dict[str, Any] = {}
        labels: dict[str, str] = {}
        exprs: list[dict[str, Any]] = []
        for r in self._requirements:
            if r.operator == EQUALS and r.key not in labels:
                labels[r.key] = r.values[0]
                continue
            op = {EQUALS: IN, NOT_EQUALS: NOT_IN}.get(r.operator, r.operator)
            expr: dict[str, Any] = {"key": r.key, "operator": api_ops[op]}
            if r.values:
                expr["values"] = list(r.values)
            exprs.append(expr)
        if labels:
            out["matchLabels"] = labels
        if exprs:
            out["matchExpressions"] = exprs
        return out

    def __str__(self) -> str:
        """Canonical form: ``parse_label_selector(str(s)) == s`` (``""`` for both the
        everything and the nothing selector, as in Kubernetes)."""
        return ",".join(str(r) for r in self._requirements)

    def __repr__(self) -> str:
        if self._nothing:
            return "LabelSelector.nothing()"
        return f"LabelSelector.parse({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return (self._nothing, self._requirements) == (other._nothing, other._requirements)

    def __hash__(self) -> int:
        return hash((self._nothing, self._requirements))


_TOKEN = re.compile(r"\s*(?:(?P<op>!=|==|=|!|\(|\)|,)|(?P<ident>[^\s!=,()]+))")


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # only trailing whitespace is left
            break
        kind = "op" if m.group("op") else "ident"
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the string form; ``""`` and ``None`` give the match-everything selector.

    Raises :class:`ValueError` with the position and what was expected.
    """
    if text is None:
        return LabelSelector()
    tokens = _tokenize(text)
    end = ("end", "", len(text))
    i = 0

    def peek() -> tuple[str, str, int]:
        return tokens[i] if i < len(tokens) else end

    def take() -> tuple[str, str, int]:
        nonlocal i
        tok = peek()
        i += 1
        return tok

    def fail(tok: tuple[str, str, int], expected: str) -> ValueError:
        found = "end of string" if tok[0] == "end" else repr(tok[1])
        return ValueError(
            f"unable to parse label selector {text!r}: found {found} at position {tok[2]},"
            f" expected {expected}"
        )

    def ident(expected: str) -> str:
        tok = take()
        if tok[0] != "ident":
            raise fail(tok, expected)
        return tok[1]

    reqs: list[Requirement] = []
    if not tokens:
        return LabelSelector()
    while True:
        if peek()[1] == "!" and peek()[0] == "op":
            take()
            key = ident("a label key")
            reqs.append(_parse_checked(key, NOT_EXISTS, (), text))
        else:
            key_tok = peek()
            key = ident("a label key or '!'")
            if key in (IN, NOT_IN):
                raise fail(key_tok, "a label key (not a keyword)")
            tok = peek()
            if tok[0] == "end" or tok[1] == ",":
                reqs.append(_parse_checked(key, EXISTS, (), text))
            elif tok[1] in ("=", "==", "!="):
                take()
                op = NOT_EQUALS if tok[1] == "!=" else EQUALS
                value = take()[1] if peek()[0] == "ident" else ""
                reqs.append(_parse_checked(key, op, (value,), text))
            elif tok[0] == "ident" and tok[1] in (IN, NOT_IN):
                take()
                paren = take()
                if paren[1] != "(":
                    raise fail(paren, "'('")
                values: list[str] = []
                while True:
                    values.append(take()[1] if peek()[0] == "ident" else "")
                    sep = take()
                    if sep[1] == ")":
                        break
                    if sep[1] != ",":
                        raise fail(sep, "',' or ')'")
                reqs.append(_parse_checked(key, tok[1], values, text))
            else:
                raise fail(tok, "'=', '==', '!=', 'in', 'notin', ',' or end of string")
        sep = take()
        if sep[0] == "end":
            return LabelSelector(reqs)
        if sep[1] != ",":
            raise fail(sep, "',' or end of string")


def _parse_checked(key: str, op: str, values: Iterable[str], text: str) -> Requirement:
    try:
        return _requirement(key, op, values)
    except ValueError as exc:
        raise ValueError(f"unable to parse label selector {text!r}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------------------------


class FieldRequirement(NamedTuple):
    """``field`` (a dotted path), operator ``=`` or ``!=``, and the value compared against."""

    field: str
    operator: str
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        equal = _field_value(obj, self.field) == self.value
        return equal if self.operator == EQUALS else not equal

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{_escape(self.value)}"


class FieldSelector:
    """An immutable, hashable field selector: requirements ANDed, in the order written."""

    __slots__ = ("_requirements",)

    def __init__(self, requirements: Iterable[FieldRequirement] = ()):
        self._requirements = [FieldRequirement(*r) for r in requirements]

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        return parse_field_selector(text)

    @property
    def requirements(self) -> list[FieldRequirement]:
        """A copy of the requirements as ``(field, op, value)`` with op ``=`` or ``!=``."""
        return list(self._requirements)

    @property
    def empty(self) -> bool:
        return not self._requirements

    @property
    def fields(self) -> frozenset[str]:
        """Every field named (the API server rejects fields a resource does not support)."""
        return frozenset(r.field for r in self._requirements)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self._requirements)

    def exact(self, field: str) -> str | None:
        """The value ``field`` must equal (``field=value``), or ``None`` if not pinned."""
        for r in self._requirements:
            if r.field == field and r.operator == EQUALS:
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self._requirements)

    def __repr__(self) -> str:
        return f"FieldSelector.parse({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self._requirements == other._requirements

    def __hash__(self) -> int:
        return hash(tuple(self._requirements))


_FIELD_PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse ``field=value,field!=value``; ``""``/``None`` match everything.

    Whitespace around fields and values is ignored. Raises :class:`ValueError` for a term
    without an operator or with a malformed field path.
    """
    if text is None or not text.strip():
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    for term in _split_unescaped(text, ","):
        lhs, op, rhs = _split_term(term)
        field = lhs.strip()
        if op is None or not _FIELD_PATH.fullmatch(field):
            raise ValueError(f"invalid selector: {text!r}; can't understand {term!r}")
        reqs.append(FieldRequirement(field, NOT_EQUALS if op == "!=" else EQUALS, rhs.strip()))
    return FieldSelector(reqs)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _split_term(term: str) -> tuple[str, str | None, str]:
    """Split at the first unescaped operator (``!=`` before ``==`` before ``=``)."""
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, _unescape(term[i + len(op) :])
        i += 1
    return term, None, ""


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in "\\,=":
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _field_value(obj: Mapping[str, Any], path: str) -> str | None:
    """The field as a string (missing/null → ``""``; booleans → ``true``/``false``);
    ``None`` for an object or list, which equals no value."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return ""
        node = node.get(part)
        if node is None:
            return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, (str, int, float)):
        return str(node)
    return None
