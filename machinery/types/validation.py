"""Field errors worded as Kubernetes words them, and the checks shared by every kind.

A validator appends causes to a :class:`FieldErrors`; each cause is a Kubernetes
``StatusCause`` (``reason``, ``message``, ``field``) with the Kubernetes field path
(``spec.containers[0].name``). Messages match ``k8s.io/apimachinery/pkg/util/validation``:
``Required value``, ``Invalid value: "Foo_": a lowercase RFC 1123 label must ...``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from machinery.quantity import parse_quantity
from machinery.selectors import LabelSelector as Selector
from machinery.selectors import validate_label_key, validate_label_value

from .meta import LabelSelector, ObjectMeta

__all__ = [
    "FieldErrors",
    "dns1035_label_errors",
    "dns1123_label_errors",
    "dns1123_subdomain_errors",
    "label_value_errors",
    "qualified_name_errors",
    "selector_matches",
    "validate_labels",
    "validate_object_meta",
    "validate_selector",
]


def fmt_value(value: Any) -> str:
    """A value as Kubernetes prints it after ``Invalid value:`` (strings quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if value is None:
        return "null"
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


class FieldErrors:
    """An ordered list of StatusCauses; empty means valid."""

    __slots__ = ("causes",)

    def __init__(self) -> None:
        self.causes: list[dict[str, str]] = []

    def __bool__(self) -> bool:
        return bool(self.causes)

    def _add(self, reason: str, field: str, message: str) -> None:
        self.causes.append({"reason": reason, "message": message, "field": field})

    def required(self, field: str, detail: str = "") -> None:
        self._add(
            "FieldValueRequired", field, f"Required value: {detail}" if detail else "Required value"
        )

    def invalid(self, field: str, value: Any, detail: str) -> None:
        self._add("FieldValueInvalid", field, f"Invalid value: {fmt_value(value)}: {detail}")

    def not_supported(self, field: str, value: Any, supported: Iterable[str]) -> None:
        allowed = ", ".join(f'"{s}"' for s in supported)
        self._add(
            "FieldValueNotSupported",
            field,
            f"Unsupported value: {fmt_value(value)}: supported values: {allowed}",
        )

    def duplicate(self, field: str, value: Any) -> None:
        self._add("FieldValueDuplicate", field, f"Duplicate value: {fmt_value(value)}")

    def too_long(self, field: str, limit: int, unit: str = "bytes") -> None:
        self._add("FieldValueTooLong", field, f"Too long: must have at most {limit} {unit}")

    def forbidden(self, field: str, detail: str) -> None:
        self._add("FieldValueForbidden", field, f"Forbidden: {detail}")

    def not_found(self, field: str, value: Any) -> None:
        self._add("FieldValueNotFound", field, f"Not found: {fmt_value(value)}")

    def check(self, field: str, value: Any, messages: list[str]) -> None:
        """One Invalid cause per message (the shape the name checks below return)."""
        for message in messages:
            self.invalid(field, value, message)

    def enum(self, field: str, value: str | None, supported: tuple[str, ...]) -> None:
        """NotSupported unless ``value`` is unset or one of ``supported``."""
        if value is not None and value not in supported:
            self.not_supported(field, value, supported)

    def non_negative(self, field: str, value: int | None) -> None:
        if value is not None and value < 0:
            self.invalid(field, value, "must be greater than or equal to 0")

    def at_least(self, field: str, value: int | None, minimum: int) -> None:
        if value is not None and value < minimum:
            self.invalid(field, value, f"must be greater than or equal to {minimum}")


# --- names -------------------------------------------------------------------------------------

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_FMT = rf"{_DNS1123_LABEL_FMT}(\.{_DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL = re.compile(_DNS1035_LABEL_FMT)
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY = re.compile(_CONFIG_KEY_FMT)
_ENV_VAR_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_VAR_NAME = re.compile(_ENV_VAR_NAME_FMT)
_IANA_SVC_NAME = re.compile("[-a-z0-9]+")
_HAS_LETTER = re.compile("[a-z]")


def _max_len(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters"] if len(value) > limit else []


def dns1123_label_errors(value: str) -> list[str]:
    """Problems with a DNS-1123 label (container, port-less names, namespaces)."""
    errs = _max_len(value, 63)
    if not _DNS1123_LABEL.fullmatch(value):
        errs.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            f"'123-abc', regex used for validation is '{_DNS1123_LABEL_FMT}')"
        )
    return errs


def dns1123_subdomain_errors(value: str) -> list[str]:
    """Problems with a DNS-1123 subdomain (the name of most kinds)."""
    errs = _max_len(value, 253)
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errs.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            f"'example.com', regex used for validation is '{_DNS1123_SUBDOMAIN_FMT}')"
        )
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    """Problems with a DNS-1035 label (Service names, CRD version names)."""
    errs = _max_len(value, 63)
    if not _DNS1035_LABEL.fullmatch(value):
        errs.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character (e.g. "
            f"'my-name',  or 'abc-123', regex used for validation is '{_DNS1035_LABEL_FMT}')"
        )
    return errs


def qualified_name_errors(value: str) -> list[str]:
    """Problems with a qualified name (``[prefix/]name``): label and annotation keys,
    finalizers, toleration and topology keys (the rule of :mod:`machinery.selectors`)."""
    problem = _label_key_problem(value) if type(value) is str else validate_label_key(value)
    return [problem] if problem else []


def label_value_errors(value: str) -> list[str]:
    """Problems with a label value (empty is allowed)."""
    problem = _label_value_problem(value) if type(value) is str else validate_label_value(value)
    return [problem] if problem else []


# Keys and values repeat across objects (app, tier, node.kubernetes.io/...): check each once.
_label_key_problem = lru_cache(maxsize=8192)(validate_label_key)
_label_value_problem = lru_cache(maxsize=8192)(validate_label_value)


def config_key_errors(value: str) -> list[str]:
    """Problems with a ConfigMap/Secret data key."""
    errs = _max_len(value, 253)
    if not _CONFIG_KEY.fullmatch(value):
        errs.append(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
            "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            f"'{_CONFIG_KEY_FMT}')"
        )
    elif value in (".", ".."):
        errs.append(f"must not be '{value}'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def env_var_name_errors(value: str) -> list[str]:
    """Problems with an environment variable name."""
    if _ENV_VAR_NAME.fullmatch(value):
        return []
    return [
        "a valid environment variable name must consist of alphabetic characters, digits, '_', "
        "'-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  "
        f"or 'MyEnvName1', regex used for validation is '{_ENV_VAR_NAME_FMT}')"
    ]


def iana_svc_name_errors(value: str) -> list[str]:
    """Problems with a port name (IANA service name)."""
    errs = _max_len(value, 15)
    if not _IANA_SVC_NAME.fullmatch(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if not _HAS_LETTER.search(value):
        errs.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_range_errors(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else ["must be between 1 and 65535, inclusive"]


# --- labels, annotations, selectors ------------------------------------------------------------

_TOTAL_ANNOTATION_SIZE = 256 * 1024


def validate_labels(labels: Mapping[str, str] | None, path: str, errs: FieldErrors) -> None:
    """Label keys are qualified names and values label values; causes name ``path``."""
    if not labels:
        return
    for key, value in labels.items():
        errs.check(path, key, qualified_name_errors(key))
        errs.check(path, value, label_value_errors(value))


def validate_annotations(
    annotations: Mapping[str, str] | None, path: str, errs: FieldErrors
) -> None:
    """Annotation keys are qualified names (case-insensitively) and all fit in 256 KiB."""
    if not annotations:
        return
    total = 0
    for key, value in annotations.items():
        errs.check(path, key, qualified_name_errors(key.lower()))
        total += len(key) + len(value)
    if total > _TOTAL_ANNOTATION_SIZE:
        errs.too_long(path, _TOTAL_ANNOTATION_SIZE)


_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_selector(selector: LabelSelector | None, path: str, errs: FieldErrors) -> None:
    """A meta/v1 LabelSelector is well formed."""
    if selector is None:
        return
    validate_labels(selector.match_labels, f"{path}.matchLabels", errs)
    for i, expr in enumerate(selector.match_expressions or ()):
        p = f"{path}.matchExpressions[{i}]"
        errs.check(f"{p}.key", expr.key, qualified_name_errors(expr.key))
        if expr.operator in ("In", "NotIn"):
            if not expr.values:
                errs.required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'")
        elif expr.operator in ("Exists", "DoesNotExist"):
            if expr.values:
                errs.forbidden(
                    f"{p}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
        else:
            errs.invalid(f"{p}.operator", expr.operator, "not a valid selector operator")
        for value in expr.values or ():
            errs.check(f"{p}.values", value, label_value_errors(value))


def selector_is_empty(selector: LabelSelector | None) -> bool:
    return selector is None or (not selector.match_labels and not selector.match_expressions)


def selector_matches(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` satisfy every requirement of ``selector`` (a malformed selector
    matches nothing; :func:`validate_selector` reports why)."""
    try:
        return Selector.from_dict(selector.to_dict()).matches(labels)
    except ValueError:
        return False


# --- object metadata ---------------------------------------------------------------------------

NameCheck = Any  # Callable[[str], list[str]]


def validate_object_meta(
    meta: ObjectMeta | None,
    errs: FieldErrors,
    *,
    namespaced: bool,
    name_check: NameCheck = dns1123_subdomain_errors,
    path: str = "metadata",
) -> None:
    """Name (or generateName), namespace, labels, annotations, owner references, finalizers."""
    if meta is None:
        errs.required(f"{path}.name", "name or generateName is required")
        return
    if meta.name:
        errs.check(f"{path}.name", meta.name, name_check(meta.name))
    elif meta.generate_name:
        # The server appends a suffix, so a trailing '-' (or a trailing dot) is fine here.
        prefix = meta.generate_name.rstrip("-.") or "a"
        errs.check(f"{path}.generateName", meta.generate_name, name_check(prefix))
    else:
        errs.required(f"{path}.name", "name or generateName is required")
    if meta.namespace:
        if namespaced:
            errs.check(f"{path}.namespace", meta.namespace, dns1123_label_errors(meta.namespace))
        else:
            errs.forbidden(f"{path}.namespace", "not allowed on this type")
    errs.non_negative(f"{path}.generation", meta.generation)
    validate_labels(meta.labels, f"{path}.labels", errs)
    validate_annotations(meta.annotations, f"{path}.annotations", errs)
    _validate_owner_references(meta, path, errs)
    for i, finalizer in enumerate(meta.finalizers or ()):
        errs.check(f"{path}.finalizers[{i}]", finalizer, qualified_name_errors(finalizer))


def _validate_owner_references(meta: ObjectMeta, path: str, errs: FieldErrors) -> None:
    controllers = []
    for i, ref in enumerate(meta.owner_references or ()):
        p = f"{path}.ownerReferences[{i}]"
        for field, value in (
            ("apiVersion", ref.api_version),
            ("kind", ref.kind),
            ("name", ref.name),
            ("uid", ref.uid),
        ):
            if not value:
                errs.required(f"{p}.{field}")
        if ref.controller:
            controllers.append(ref.name)
    if len(controllers) > 1:
        errs.invalid(
            f"{path}.ownerReferences",
            controllers,
            'Only one reference can have Controller set to true. Found "true" in '
            f"references for {' and '.join(controllers)}",
        )


# --- resources ---------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def quantity(value: str) -> Decimal | None:
    """The parsed quantity, or None when it does not parse (the type check reported it).

    Cached: the same few amounts ("100m", "128Mi") recur on every write."""
    try:
        return parse_quantity(value)
    except ValueError:
        return None


def validate_immutable(new: Any, old: Any, field: str, errs: FieldErrors) -> None:
    """``field is immutable`` unless ``new == old``."""
    if new != old:
        shown = new.to_dict() if hasattr(new, "to_dict") else new
        errs.invalid(field, shown, "field is immutable")
