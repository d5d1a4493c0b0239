"""``apiextensions.k8s.io/v1``: CustomResourceDefinition — model, defaults, rules.

``openAPIV3Schema`` is kept as free-form JSON (it is a JSON Schema, validated by the API
server's CRD machinery, not here).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .core import Object
from .meta import Condition, K8sModel, opt, req
from .validation import (
    FieldErrors,
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
)


class ExtModel(K8sModel):
    schema_prefix: ClassVar[str] = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1"


class CustomResourceDefinitionNames(ExtModel):
    """How the new resource is named."""

    plural: str = req("Plural resource name used in URLs, lowercase.")
    singular: str | None = opt("Singular name; defaults to the lowercased kind.")
    kind: str = req("CamelCase kind of the objects.")
    list_kind: str | None = opt("Kind of lists; defaults to kind + List.")
    short_names: list[str] | None = opt("Short names for kubectl.")
    categories: list[str] | None = opt("Groups such as all.")


class CustomResourceValidation(ExtModel):
    """The schema of a version."""

    open_api_v3_schema: dict[str, Any] | None = opt(
        "Structural OpenAPI v3 schema.", alias="openAPIV3Schema"
    )


class CustomResourceSubresourceScale(ExtModel):
    """Where the scale subresource reads and writes replicas."""

    spec_replicas_path: str = req("JSON path of the desired replicas, under .spec.")
    status_replicas_path: str = req("JSON path of the observed replicas, under .status.")
    label_selector_path: str | None = opt("JSON path of the label selector string.")


class CustomResourceSubresources(ExtModel):
    """Subresources the resource serves."""

    status: dict[str, Any] | None = opt("Serve /status; set to {}.")
    scale: CustomResourceSubresourceScale | None = opt("Serve /scale.")


class CustomResourceColumnDefinition(ExtModel):
    """A column of kubectl get."""

    name: str = req("Column header.")
    type: str = req("integer, number, string, boolean or date.")
    json_path: str = req("JSON path of the value.")
    description: str | None = opt("Column description.")
    priority: int | None = opt("0 shows in the default view, higher in wide only.")
    format: str | None = opt("Display format hint.")


class CustomResourceDefinitionVersion(ExtModel):
    """One served version."""

    name: str = req("Version name, such as v1 or v1beta1.")
    served: bool = req("Whether the version is served.")
    storage: bool = req("Whether objects are stored in this version (exactly one).")
    deprecated: bool | None = opt("Warn clients that use this version.")
    deprecation_warning: str | None = opt("The warning text.")
    schema_: CustomResourceValidation | None = opt("Schema of the objects.", alias="schema")
    subresources: CustomResourceSubresources | None = opt("status and scale subresources.")
    additional_printer_columns: list[CustomResourceColumnDefinition] | None = opt(
        "Extra kubectl get columns."
    )


class CustomResourceConversion(ExtModel):
    """How objects convert between versions."""

    strategy: str = req("None or Webhook.")
    webhook: dict[str, Any] | None = opt("Webhook settings.")


class CustomResourceDefinitionSpec(ExtModel):
    """The desired state of a definition."""

    group: str = req("API group of the resource, a DNS subdomain with a dot.")
    names: CustomResourceDefinitionNames = req("Names of the resource.")
    scope: str = req("Namespaced or Cluster.")
    versions: list[CustomResourceDefinitionVersion] = req("Served versions.")
    conversion: CustomResourceConversion | None = opt("Conversion settings; defaults to None.")
    preserve_unknown_fields: bool | None = opt("Deprecated; must be false.")


class CustomResourceDefinitionStatus(ExtModel):
    """The observed state of a definition."""

    conditions: list[Condition] | None = opt("Established, NamesAccepted, ...")
    accepted_names: CustomResourceDefinitionNames | None = opt("Names in use.")
    stored_versions: list[str] | None = opt("Versions objects have been stored in.")


class CustomResourceDefinition(Object):
    """Adds a resource type to the API."""

    schema_prefix: ClassVar[str] = ExtModel.schema_prefix
    spec: CustomResourceDefinitionSpec | None = opt("Desired state.")
    status: CustomResourceDefinitionStatus | None = opt("Observed state.")


def default_crd(crd: CustomResourceDefinition) -> None:
    spec = crd.spec
    if spec is None:
        return
    if spec.names.singular is None:
        spec.names.singular = spec.names.kind.lower()
    if spec.names.list_kind is None and spec.names.kind:
        spec.names.list_kind = spec.names.kind + "List"
    if spec.conversion is None:
        spec.conversion = CustomResourceConversion(strategy="None")


def validate_crd(
    crd: CustomResourceDefinition, old: dict[str, Any] | None, errs: FieldErrors
) -> None:
    spec = crd.spec
    if spec is None:
        errs.required("spec")
        return
    name = crd.metadata.name if crd.metadata else None
    if name and name != f"{spec.names.plural}.{spec.group}":
        errs.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group')
    if "." not in spec.group:
        errs.invalid("spec.group", spec.group, "should be a domain with at least one dot")
    else:
        errs.check("spec.group", spec.group, dns1123_subdomain_errors(spec.group))
    errs.enum("spec.scope", spec.scope, ("Cluster", "Namespaced"))
    names = spec.names
    errs.check("spec.names.plural", names.plural, dns1123_label_errors(names.plural))
    if names.singular:
        errs.check("spec.names.singular", names.singular, dns1123_label_errors(names.singular))
    for i, short in enumerate(names.short_names or ()):
        errs.check(f"spec.names.shortNames[{i}]", short, dns1123_label_errors(short))
    if not names.kind:
        errs.required("spec.names.kind")
    if not spec.versions:
        errs.invalid("spec.versions", [], "must have exactly one version marked as storage version")
        return
    storage = 0
    seen: set[str] = set()
    for i, version in enumerate(spec.versions):
        p = f"spec.versions[{i}]"
        errs.check(f"{p}.name", version.name, dns1035_label_errors(version.name))
        if version.name in seen:
            errs.invalid(f"{p}.name", version.name, "must be unique")
        seen.add(version.name)
        storage += version.storage
        schema = version.schema_.open_api_v3_schema if version.schema_ else None
        if schema is None:
            errs.required(f"{p}.schema.openAPIV3Schema", "schemas are required")
        for j, column in enumerate(version.additional_printer_columns or ()):
            errs.enum(
                f"{p}.additionalPrinterColumns[{j}].type",
                column.type,
                ("boolean", "date", "integer", "number", "string"),
            )
    if storage != 1:
        errs.invalid(
            "spec.versions",
            [v.name for v in spec.versions],
            "must have exactly one version marked as storage version",
        )
    if spec.conversion is not None:
        errs.enum("spec.conversion.strategy", spec.conversion.strategy, ("None", "Webhook"))
    if old is not None:
        old_spec = old.get("spec") or {}
        if old_spec.get("group") and old_spec["group"] != spec.group:
            errs.invalid("spec.group", spec.group, "field is immutable")
