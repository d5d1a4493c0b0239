"""The base model and the ``meta/v1`` types every kind shares (ObjectMeta, LabelSelector, ...).

Contract for every model in :mod:`machinery.types`:

* field names are snake_case, the wire names (aliases) are the Kubernetes lowerCamel ones;
  input is read by alias (``admit`` refuses snake_case keys as unknown), Python code may build
  models by field name;
* ``None`` means unset and is never serialised (dump with ``exclude_none``);
* fields we do not model are kept in ``model_extra`` and written back unchanged;
* scalars are strict like Kubernetes' JSON decoding: ``"3"`` is not an integer, ``1`` is not
  a boolean.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic.alias_generators import to_camel

from machinery.quantity import parse_quantity

__all__ = [
    "Condition",
    "IntOrString",
    "K8sModel",
    "LabelSelector",
    "LabelSelectorRequirement",
    "ManagedFieldsEntry",
    "MicroTime",
    "ObjectMeta",
    "OwnerReference",
    "Quantity",
    "Time",
    "opt",
    "req",
]

#: Prefix of the OpenAPI component names of the meta/v1 types.
META_PREFIX = "io.k8s.apimachinery.pkg.apis.meta.v1"


class K8sModel(BaseModel):
    """Base of every Kubernetes model (see the module docstring for the contract)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
        strict=True,
    )

    #: OpenAPI component name prefix (``io.k8s.api.core.v1``); set per module.
    schema_prefix: ClassVar[str] = META_PREFIX
    #: The Go type name when the Python class name differs (v1/v2 twins).
    schema_type: ClassVar[str | None] = None

    def to_dict(self) -> dict[str, Any]:
        """The Kubernetes JSON shape: aliases, unset fields left out, unknown fields kept."""
        return self.model_dump(by_alias=True, exclude_none=True)


def opt(description: str, **kwargs: Any) -> Any:
    """An optional field (``None`` when unset) with its ``kubectl explain`` text."""
    return Field(None, description=description, **kwargs)


def req(description: str, **kwargs: Any) -> Any:
    """A field Kubernetes' schema lists as required."""
    return Field(description=description, **kwargs)


def _int_or_string(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an integer or a string")
    return value


def _quantity(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a quantity string or a number")
    text = value if isinstance(value, str) else str(value)
    _check_quantity(text)
    return text


@lru_cache(maxsize=4096)
def _check_quantity(text: str) -> None:
    parse_quantity(text)  # raises ValueError with the Kubernetes wording (not cached)


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be of type string")
    return value


#: An integer or a string (``targetPort: 8080`` or ``targetPort: http``, ``maxSurge: 25%``).
IntOrString = Annotated[
    int | str, PlainValidator(_int_or_string), WithJsonSchema({"x-tug-ref": "IntOrString"})
]
#: A resource amount (``"100m"``, ``"128Mi"``); JSON numbers are accepted and kept as strings.
Quantity = Annotated[str, PlainValidator(_quantity), WithJsonSchema({"x-tug-ref": "Quantity"})]
#: An RFC 3339 timestamp in seconds (``2024-01-02T03:04:05Z``), kept as the string sent.
Time = Annotated[str, PlainValidator(_string), WithJsonSchema({"x-tug-ref": "Time"})]
#: An RFC 3339 timestamp with microseconds.
MicroTime = Annotated[str, PlainValidator(_string), WithJsonSchema({"x-tug-ref": "MicroTime"})]


class OwnerReference(K8sModel):
    """Points at the object that owns this one; the garbage collector follows it."""

    api_version: str = req("API version of the owner.")
    kind: str = req("Kind of the owner.")
    name: str = req("Name of the owner.")
    uid: str = req("UID of the owner; a reference to a different object of the same name is stale.")
    controller: bool | None = opt("True for the one owner that manages this object.")
    block_owner_deletion: bool | None = opt(
        "When true, a foreground deletion of the owner waits for this object to go first."
    )


class ManagedFieldsEntry(K8sModel):
    """Which manager owns which fields, recorded by server-side apply."""

    manager: str | None = opt("Name of the field manager.")
    operation: str | None = opt("Apply or Update.")
    api_version: str | None = opt("API version the fieldsV1 set refers to.")
    time: Time | None = opt("When the manager last changed these fields.")
    fields_type: str | None = opt("Format of the field set; always FieldsV1.")
    fields_v1: dict[str, Any] | None = opt("The set of owned fields.", alias="fieldsV1")
    subresource: str | None = opt("Subresource the change was made through, if any.")


class ObjectMeta(K8sModel):
    """Metadata every persisted object carries."""

    name: str | None = opt("Unique name within the namespace; a DNS subdomain for most kinds.")
    generate_name: str | None = opt(
        "Prefix the server completes with a random suffix when name is empty."
    )
    namespace: str | None = opt("Namespace the object lives in; empty for cluster-scoped kinds.")
    self_link: str | None = opt("Deprecated; not set by the server.")
    uid: str | None = opt("Server-assigned unique id, never reused. Read-only.")
    resource_version: str | None = opt(
        "Opaque revision used for optimistic concurrency and watches. Read-only."
    )
    generation: int | None = opt("Bumped by the server on every change of the desired state.")
    creation_timestamp: Time | None = opt("When the object was created. Read-only.")
    deletion_timestamp: Time | None = opt("When a graceful deletion was requested. Read-only.")
    deletion_grace_period_seconds: int | None = opt(
        "Seconds allowed for a graceful termination before the object is removed."
    )
    labels: dict[str, str] | None = opt("Key/value pairs used by selectors to group objects.")
    annotations: dict[str, str] | None = opt("Non-identifying key/value pairs for tools.")
    owner_references: list[OwnerReference] | None = opt("Objects this object depends on.")
    finalizers: list[str] | None = opt("Keys that must be removed before the object is deleted.")
    managed_fields: list[ManagedFieldsEntry] | None = opt(
        "Field ownership recorded by server-side apply."
    )


class LabelSelectorRequirement(K8sModel):
    """One set-based requirement: ``key In (a, b)``, ``key Exists``, ..."""

    key: str = req("Label key the requirement applies to.")
    operator: str = req("One of In, NotIn, Exists, DoesNotExist.")
    values: list[str] | None = opt("Values for In and NotIn; must be empty otherwise.")


class LabelSelector(K8sModel):
    """Selects objects by labels; the requirements are ANDed. Empty selects everything."""

    match_labels: dict[str, str] | None = opt("Labels that must be present with these values.")
    match_expressions: list[LabelSelectorRequirement] | None = opt("Set-based requirements.")


class Condition(K8sModel):
    """A standard status condition (meta/v1 Condition)."""

    type: str = req("Condition type in CamelCase, such as Available.")
    status: str = req("True, False or Unknown.")
    observed_generation: int | None = opt("Generation the condition was computed from.")
    last_transition_time: Time | None = opt("When status last changed.")
    reason: str | None = opt("Machine-readable CamelCase reason for the last transition.")
    message: str | None = opt("Human-readable detail.")
