"""The typed Kubernetes API: pydantic models, defaulting and validation.

The API server calls exactly these:

* :func:`admit` — validate and default an object on every write;
* :func:`model_for` — the model class of a kind (None when not modelled);
* :func:`openapi_components` / :func:`schema_name` — OpenAPI v3 schemas for discovery and
  ``kubectl explain``.

Other components may build and read objects with the models (``Pod``, ``Deployment``, ...);
``model.to_dict()`` gives the wire shape.
"""

from __future__ import annotations

from pydantic import BaseModel

from .admission import admit
from .apiextensions import CustomResourceDefinition
from .apps import DaemonSet, Deployment, ReplicaSet, StatefulSet
from .autoscaling import HorizontalPodAutoscaler, HorizontalPodAutoscalerV1
from .batch import Job
from .coordination import Lease
from .core import (
    ConfigMap,
    Container,
    Endpoints,
    Event,
    Namespace,
    Node,
    Pod,
    PodSpec,
    PodTemplateSpec,
    Secret,
    Service,
    ServiceAccount,
)
from .discovery import EndpointSlice
from .meta import K8sModel, LabelSelector, ObjectMeta, OwnerReference
from .openapi import openapi_components, schema_name
from .policy import PodDisruptionBudget
from .registry import RULES
from .scheduling import PriorityClass
from .storage import PersistentVolume, PersistentVolumeClaim

__all__ = [
    "ConfigMap",
    "Container",
    "CustomResourceDefinition",
    "DaemonSet",
    "Deployment",
    "EndpointSlice",
    "Endpoints",
    "Event",
    "HorizontalPodAutoscaler",
    "HorizontalPodAutoscalerV1",
    "Job",
    "K8sModel",
    "LabelSelector",
    "Lease",
    "Namespace",
    "Node",
    "ObjectMeta",
    "OwnerReference",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Pod",
    "PodDisruptionBudget",
    "PodSpec",
    "PodTemplateSpec",
    "PriorityClass",
    "ReplicaSet",
    "Secret",
    "Service",
    "ServiceAccount",
    "StatefulSet",
    "admit",
    "model_for",
    "openapi_components",
    "schema_name",
]


def model_for(api_version: str, kind: str) -> type[BaseModel] | None:
    """The model of ``apiVersion``/``kind``, or None for kinds without one (custom resources)."""
    rules = RULES.get((api_version, kind))
    return rules.model if rules is not None else None
