"""CustomResourceDefinitions: serving their resources and validating them by their schema."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from apiserver.meta import now_rfc3339
from apiserver.strategies import Strategy
from machinery import errors
from machinery import types as api_types
from machinery.kinds import Registry as Kinds
from machinery.kinds import ResourceType

if TYPE_CHECKING:
    from apiserver.registry import Registry

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def validate_schema(
    value: Any, schema: dict[str, Any], path: str, causes: list[dict[str, str]], unknown: list[str]
) -> Any:
    """Check ``value`` against an openAPIV3Schema subset; prune unknown object fields.

    Returns the pruned value. Supported: type, properties, required, items, enum, minimum,
    maximum, minLength, maxLength, pattern, minItems, maxItems, additionalProperties,
    nullable, x-kubernetes-preserve-unknown-fields, x-kubernetes-int-or-string.
    """
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            causes.append(
                {"reason": "FieldValueRequired", "field": path, "message": "Required value"}
            )
        return value
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": path,
                    "message": f"Invalid value: {value!r}: must be an integer or a string",
                }
            )
        return value
    typ = schema.get("type")
    expected = _TYPES.get(typ or "")
    if expected and (
        not isinstance(value, expected)
        or (typ in ("integer", "number") and isinstance(value, bool))
    ):
        causes.append(
            {
                "reason": "FieldValueTypeInvalid",
                "field": path,
                "message": f'Invalid value: "{type(value).__name__}": {path} in body must '
                f'be of type {typ}: "{type(value).__name__}"',
            }
        )
        return value
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{e}"' for e in schema["enum"])
        causes.append(
            {
                "reason": "FieldValueNotSupported",
                "field": path,
                "message": f"Unsupported value: {value!r}: supported values: {allowed}",
            }
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": path,
                    "message": f"Invalid value: {value}: {path} in body should be greater "
                    f"than or equal to {schema['minimum']}",
                }
            )
        if "maximum" in schema and value > schema["maximum"]:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": path,
                    "message": f"Invalid value: {value}: {path} in body should be less "
                    f"than or equal to {schema['maximum']}",
                }
            )
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": path,
                    "message": f"Invalid value: {value!r}: should be at least "
                    f"{schema['minLength']} chars long",
                }
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append(
                {
                    "reason": "FieldValueTooLong",
                    "field": path,
                    "message": f"Too long: may not be longer than {schema['maxLength']}",
                }
            )
        if "pattern" in schema and not re.search(schema["pattern"], value):
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": path,
                    "message": f"Invalid value: {value!r}: should match '{schema['pattern']}'",
                }
            )
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": path,
                    "message": f"should have at least {schema['minItems']} items",
                }
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append(
                {
                    "reason": "FieldValueTooMany",
                    "field": path,
                    "message": f"Too many: must have at most {schema['maxItems']} items",
                }
            )
        items = schema.get("items")
        if isinstance(items, dict):
            return [
                validate_schema(v, items, f"{path}[{i}]", causes, unknown)
                for i, v in enumerate(value)
            ]
        return value
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        for req in schema.get("required") or []:
            if req not in value:
                causes.append(
                    {
                        "reason": "FieldValueRequired",
                        "field": f"{path}.{req}",
                        "message": "Required value",
                    }
                )
        out: dict[str, Any] = {}
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            if k in props:
                out[k] = validate_schema(v, props[k], sub, causes, unknown)
            elif isinstance(extra, dict):
                out[k] = validate_schema(v, extra, sub, causes, unknown)
            elif preserve or extra is True or (not props and not typ):
                out[k] = v
            else:
                unknown.append(sub)
        return out
    return value


class CustomResourceStrategy(Strategy):
    """Validation and status handling for one custom resource (all its versions)."""

    custom = True

    def __init__(self, registry: Registry, crd: dict[str, Any]) -> None:
        super().__init__(registry)
        self.schemas = {
            v["name"]: ((v.get("schema") or {}).get("openAPIV3Schema") or {})
            for v in crd["spec"].get("versions") or []
        }

    def admit(self, rt, obj, old):
        _, unknown = api_types.admit(
            {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": obj["metadata"]},
            api_version=rt.api_version,
            kind=rt.kind,
            old=None,
        )
        schema = self.schemas.get(rt.version) or {}
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        causes: list[dict[str, str]] = []
        unknown_fields: list[str] = []
        props = dict(schema.get("properties") or {})
        for k in ("apiVersion", "kind", "metadata"):
            props.pop(k, None)
        pruned = validate_schema(
            body, {**schema, "properties": props, "type": "object"}, "", causes, unknown_fields
        )
        if causes:
            raise errors.invalid(rt.kind, obj["metadata"].get("name", ""), causes, rt.group)
        out = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": obj["metadata"]}
        out.update(pruned)
        return out, unknown + unknown_fields


class CrdStrategy(Strategy):
    """Marks CRDs Established at once and (un)registers the resources they define."""

    def __init__(self, registry: Registry, kinds: Kinds) -> None:
        super().__init__(registry)
        self.kinds = kinds

    def prepare_create(self, rt, obj):
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        now = now_rfc3339()
        storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        obj["status"] = {
            "acceptedNames": names,
            "storedVersions": storage,
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now}
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }
        plural = names.get("plural", "")
        if obj["metadata"].get("name") != f"{plural}.{spec.get('group')}":
            raise errors.invalid(
                "CustomResourceDefinition",
                obj["metadata"].get("name", ""),
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.name",
                        "message": 'Invalid value: must be spec.names.plural+"."+spec.group',
                    }
                ],
                "apiextensions.k8s.io",
            )

    def follow(self, _typ: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        """Cache listener: serve what a CRD defines from the moment it is stored."""
        if old is not None:
            self.unserve(old)
        if new is not None:
            self.serve(new)

    def serve(self, crd: dict[str, Any]) -> None:
        for t in resource_types(crd):
            self.kinds.add(t)
        self.registry.strategies.register(
            storage_key(crd), CustomResourceStrategy(self.registry, crd)
        )

    def unserve(self, crd: dict[str, Any]) -> None:
        for t in resource_types(crd):
            self.kinds.remove(t.group, t.version, t.plural)
        self.registry.strategies.unregister(storage_key(crd))


def storage_key(crd: dict[str, Any]) -> str:
    spec = crd["spec"]
    return f"{spec['group']}/{spec['names']['plural']}"


def resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    spec = crd["spec"]
    names = spec["names"]
    out = []
    for v in spec.get("versions") or []:
        if not v.get("served", True):
            continue
        subs = v.get("subresources") or {}
        out.append(
            ResourceType(
                group=spec["group"],
                version=v["name"],
                kind=names["kind"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                subresources=tuple(s for s in ("status", "scale") if s in subs),
                categories=tuple(names.get("categories") or ()),
                storage=storage_key(crd),
                list_kind=names.get("listKind", ""),
            )
        )
    return out
