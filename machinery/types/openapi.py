"""OpenAPI v3 component schemas of every modelled kind, named and shaped like Kubernetes'.

``kubectl explain`` walks these (``properties``, ``$ref``, ``allOf``, ``items``,
``additionalProperties``), and ``kubectl apply`` finds a kind through the
``x-kubernetes-group-version-kind`` extension of its top-level schema.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from .meta import K8sModel
from .registry import RULES

_REF = "#/components/schemas/"
_PRIMITIVES: dict[str, tuple[str, dict[str, Any]]] = {
    "IntOrString": (
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        {
            "type": "string",
            "format": "int-or-string",
            "description": 'An integer or a string, such as 8080 or "http", 1 or "25%".',
        },
    ),
    "Quantity": (
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        {
            "type": "string",
            "description": "A fixed-point amount with an optional suffix: 100m, 1.5, 128Mi, 1e3.",
        },
    ),
    "Time": (
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
        {
            "type": "string",
            "format": "date-time",
            "description": "An RFC 3339 time in seconds, in UTC (2024-01-02T03:04:05Z).",
        },
    ),
    "MicroTime": (
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
        {
            "type": "string",
            "format": "date-time",
            "description": "An RFC 3339 time with microseconds.",
        },
    ),
}


def schema_name(api_version: str, kind: str) -> str:
    """The Kubernetes OpenAPI name of a kind: ``io.k8s.api.apps.v1.Deployment``; a custom
    group is reversed (``stable.example.com/v1`` → ``com.example.stable.v1.CronTab``)."""
    rules = RULES.get((api_version, kind))
    if rules is not None:
        return full_name(rules.model)
    group, _, version = api_version.rpartition("/")
    if not group:
        return f"io.k8s.api.core.{version}.{kind}"
    if group == "apiextensions.k8s.io":
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}"
    if group.endswith(".k8s.io"):
        return f"io.k8s.api.{group.removesuffix('.k8s.io').replace('.', '')}.{version}.{kind}"
    if "." not in group:
        return f"io.k8s.api.{group}.{version}.{kind}"
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def full_name(cls: type[K8sModel]) -> str:
    return f"{cls.schema_prefix}.{cls.__dict__.get('schema_type') or cls.__name__}"


class _Generator(GenerateJsonSchema):
    """Optional fields as their plain type (Kubernetes schemas have no nulls)."""

    def nullable_schema(self, schema: Any) -> dict[str, Any]:
        return self.generate_inner(schema["schema"])


@cache
def _components() -> dict[str, dict[str, Any]]:
    models = [r.model for r in RULES.values()]
    _, top = models_json_schema(
        [(m, "validation") for m in models],
        ref_template=_REF + "{model}",
        schema_generator=_Generator,
    )
    defs: dict[str, Any] = top.get("$defs", {})
    names = {cls.__name__: full_name(cls) for cls in _model_classes()}
    unknown = set(defs) - set(names)
    if unknown:  # pragma: no cover - a class name collision between modules
        raise RuntimeError(f"OpenAPI: unnamed definitions {sorted(unknown)}")
    out = {names[key]: _clean(schema, names) for key, schema in defs.items()}
    for name, schema in _PRIMITIVES.values():
        out[name] = dict(schema)
    for rules in RULES.values():
        group, _, version = rules.api_version.rpartition("/")
        out[full_name(rules.model)]["x-kubernetes-group-version-kind"] = [
            {"group": group, "version": version, "kind": rules.kind}
        ]
    return out


def openapi_components() -> dict[str, dict[str, Any]]:
    """Component schemas keyed by Kubernetes name; a fresh copy the caller may change."""
    return copy.deepcopy(_components())


def _model_classes() -> list[type[K8sModel]]:
    seen: list[type[K8sModel]] = []
    stack = list(K8sModel.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen


def _clean(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_clean(item, names) for item in node]
    if not isinstance(node, dict):
        return node
    node = {
        k: _clean(v, names)
        for k, v in node.items()
        if k != "title" and not (k == "default" and v is None)
    }
    marker = node.pop("x-tug-ref", None)
    if marker is not None:
        node["$ref"] = _REF + _PRIMITIVES[marker][0]
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF):
        short = ref.removeprefix(_REF)
        node["$ref"] = _REF + names.get(short, short)
        if len(node) > 1:  # a described reference: Kubernetes' allOf shape
            node["allOf"] = [{"$ref": node.pop("$ref")}]
    if node.get("additionalProperties") is True:
        del node["additionalProperties"]
        if "properties" not in node:
            node["x-kubernetes-preserve-unknown-fields"] = True
    return node
