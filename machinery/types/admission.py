"""``admit``: parse, default and validate one object on its way into storage.

Order (as in Kubernetes): decode (pydantic, strict types) → defaults → metadata and kind rules
→ serialise. Any failure raises :class:`machinery.errors.Invalid` (422) whose causes name every
offending field; pydantic's own errors are translated into the same causes.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from machinery.errors import Invalid, invalid

from .meta import K8sModel, ObjectMeta
from .registry import RULES, KindRules, is_namespaced
from .validation import FieldErrors, dns1123_subdomain_errors, fmt_value, validate_object_meta


def admit(
    obj: dict[str, Any], *, api_version: str, kind: str, old: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Validate and default ``obj``; return it as plain JSON plus its unknown field paths.

    Unknown fields are kept in the result; their paths (``spec.foo``,
    ``spec.template.spec.containers[0].imagee``) let the caller apply ``fieldValidation``.
    ``old`` is the stored object on update (immutable fields are checked against it). Kinds
    without a model get the metadata checks only and come back unchanged, with no unknown
    fields reported. Raises :class:`machinery.errors.Invalid`.
    """
    rules = RULES.get((api_version, kind))
    group = api_version.rpartition("/")[0]
    if rules is None:
        _admit_metadata_only(obj, api_version, kind, group)
        return obj, []
    if old is None and rules.body_apart:
        out = _admit_apart(obj, rules)
        if out is not None:
            return out, []
    return admit_whole(obj, rules, old)


def admit_whole(
    obj: dict[str, Any], rules: KindRules, old: dict[str, Any] | None
) -> tuple[dict[str, Any], list[str]]:
    """:func:`admit` of a modelled kind in one piece (never from remembered bodies)."""
    api_version, kind, group = rules.api_version, rules.kind, rules.group
    try:
        model = rules.model.model_validate(obj, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise _from_pydantic(exc, rules.model, kind, _name_of(obj), group) from None
    if rules.default is not None:
        rules.default(model, old)
    errs = FieldErrors()
    validate_object_meta(
        getattr(model, "metadata", None),
        errs,
        namespaced=rules.namespaced,
        name_check=rules.name_check,
    )
    if rules.validate is not None:
        rules.validate(model, old, errs)
    if errs:
        raise invalid(kind, _name_of(obj), errs.causes, group)
    unknown: list[str] = []
    collect_unknown(model, "", unknown)
    out = model.model_dump(by_alias=True, exclude_none=True)
    if "apiVersion" not in out or "kind" not in out:
        out = {"apiVersion": api_version, "kind": kind, **out}
    return out, unknown


_REMEMBERED_MAX = 1024  # admitted bodies kept; the table is emptied when full
_REMEMBERED_BODY_MAX = 16 * 1024  # bytes of JSON: larger bodies are admitted afresh
_remembered: dict[tuple[str, str, bytes], bytes] = {}  # body JSON -> admitted body JSON


def _admit_apart(obj: dict[str, Any], rules: KindRules) -> dict[str, Any] | None:
    """Admit a new object as its metadata plus a remembered admission of everything else.

    For kinds whose rules never read metadata, the admitted body is a pure function of the
    body's JSON. Returns None (the caller takes the whole path, with its exact errors and
    unknown-field report) when the body is large, invalid or has unknown fields, or when the
    metadata is not plainly valid.
    """
    body = {k: v for k, v in obj.items() if k != "metadata"}
    text = orjson.dumps(body)
    if len(text) > _REMEMBERED_BODY_MAX:
        return None
    key = (rules.api_version, rules.kind, text)
    admitted = _remembered.get(key)
    if admitted is None:
        body_out = _admit_body(body, rules)
        if body_out is None:
            return None
        admitted = orjson.dumps(body_out)
        if len(_remembered) >= _REMEMBERED_MAX:
            _remembered.clear()
        _remembered[key] = admitted
    meta = _admitted_metadata(obj.get("metadata"), rules)
    if meta is None:
        return None
    out = orjson.loads(admitted)  # a fresh copy for every object
    return {
        "apiVersion": out.pop("apiVersion", rules.api_version),
        "kind": out.pop("kind", rules.kind),
        "metadata": meta,
        **out,
    }


def _admit_body(body: dict[str, Any], rules: KindRules) -> dict[str, Any] | None:
    try:
        model = rules.model.model_validate(body, by_alias=True, by_name=False)
    except ValidationError:
        return None
    if rules.default is not None:
        rules.default(model, None)
    errs = FieldErrors()
    if rules.validate is not None:
        rules.validate(model, None, errs)
    unknown: list[str] = []
    collect_unknown(model, "", unknown)
    if errs or unknown:
        return None
    return model.model_dump(by_alias=True, exclude_none=True)


def _admitted_metadata(raw: Any, rules: KindRules) -> dict[str, Any] | None:
    try:
        meta = ObjectMeta.model_validate(raw, by_alias=True, by_name=False)
    except ValidationError:
        return None
    errs = FieldErrors()
    validate_object_meta(meta, errs, namespaced=rules.namespaced, name_check=rules.name_check)
    unknown: list[str] = []
    collect_unknown(meta, "", unknown)
    if errs or unknown:
        return None
    return meta.model_dump(by_alias=True, exclude_none=True)


def _admit_metadata_only(obj: dict[str, Any], api_version: str, kind: str, group: str) -> None:
    raw = obj.get("metadata")
    try:
        meta = ObjectMeta.model_validate(
            raw if raw is not None else {}, by_alias=True, by_name=False
        )
    except ValidationError as exc:
        raise _from_pydantic(
            exc, ObjectMeta, kind, _name_of(obj), group, prefix="metadata"
        ) from None
    errs = FieldErrors()
    validate_object_meta(
        meta, errs, namespaced=is_namespaced(api_version, kind), name_check=dns1123_subdomain_errors
    )
    if errs:
        raise invalid(kind, _name_of(obj), errs.causes, group)


def _name_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return ""
    return str(meta.get("name") or meta.get("generateName") or "")


# --- unknown fields ----------------------------------------------------------------------------

_MODEL, _LIST, _DICT = 0, 1, 2


def _strip_optional(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


@cache
def _children(cls: type[BaseModel]) -> tuple[tuple[str, str, int], ...]:
    """(attribute, alias, shape) of every field that holds models."""
    out = []
    for name, field in cls.model_fields.items():
        tp = _strip_optional(field.annotation)
        alias = field.alias or name
        origin = typing.get_origin(tp)
        if _is_model(tp):
            out.append((name, alias, _MODEL))
        elif origin is list and _is_model(typing.get_args(tp)[0]):
            out.append((name, alias, _LIST))
        elif origin is dict and _is_model(typing.get_args(tp)[1]):
            out.append((name, alias, _DICT))
    return tuple(out)


def collect_unknown(model: BaseModel, path: str, out: list[str]) -> None:
    """Append the path of every field of ``model`` (recursively) that no model declares."""
    extra = model.__pydantic_extra__
    if extra:
        out.extend(f"{path}.{key}" if path else key for key in extra)
    data = model.__dict__
    for attr, alias, shape in _children(type(model)):
        value = data.get(attr)
        if value is None:
            continue
        sub = f"{path}.{alias}" if path else alias
        if shape == _MODEL:
            collect_unknown(value, sub, out)
        elif shape == _LIST:
            for i, item in enumerate(value):
                collect_unknown(item, f"{sub}[{i}]", out)
        else:
            for key, item in value.items():
                collect_unknown(item, f"{sub}[{key}]", out)


# --- pydantic errors → causes ------------------------------------------------------------------

_TYPE_WORDS = {
    "int": "integer",
    "float": "number",
    "string": "string",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
    "model": "object",
    "model_attributes": "object",
}


@cache
def _aliases(cls: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or n): f.annotation for n, f in cls.model_fields.items()}


def field_path(root: type[BaseModel], loc: tuple[Any, ...], prefix: str = "") -> str:
    """A pydantic error location as a Kubernetes field path, walking the model types so dict
    keys come out as ``[key]`` and fields as ``.name``."""
    path = prefix
    tp: Any = root
    for seg in loc:
        tp = _strip_optional(tp)
        origin = typing.get_origin(tp)
        if _is_model(tp) and isinstance(seg, str):
            path = f"{path}.{seg}" if path else seg
            tp = _aliases(tp).get(seg)
        elif origin is list or isinstance(seg, int):
            path = f"{path}[{seg}]"
            tp = typing.get_args(tp)[0] if origin is list else None
        elif origin is dict:
            path = f"{path}[{seg}]"
            tp = typing.get_args(tp)[1]
        else:
            path = f"{path}.{seg}" if path else str(seg)
            tp = None
    return path


def _from_pydantic(
    exc: ValidationError, root: type[K8sModel], kind: str, name: str, group: str, prefix: str = ""
) -> Invalid:
    errs = FieldErrors()
    for error in exc.errors(include_url=False):
        path = field_path(root, tuple(error["loc"]), prefix)
        etype = error["type"]
        if etype == "missing":
            errs.required(path)
            continue
        if etype == "value_error":
            detail = str(error.get("ctx", {}).get("error", error["msg"]))
        else:
            word = _TYPE_WORDS.get(
                etype.removesuffix("_type").removesuffix("_parsing").removesuffix("_from_float")
            )
            detail = f"must be of type {word}" if word else error["msg"]
        errs.invalid(path, _jsonable(error.get("input")), detail)
    return invalid(kind, name, errs.causes, group)


def _jsonable(value: Any) -> Any:
    try:
        fmt_value(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
