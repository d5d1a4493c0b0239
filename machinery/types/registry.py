"""Which model, defaulting and validation each (apiVersion, kind) has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from machinery import kinds

from . import (
    apiextensions,
    apps,
    autoscaling,
    batch,
    coordination,
    core,
    discovery,
    policy,
    rbac,
    scheduling,
    storage,
)
from . import core_rules as cr
from .meta import K8sModel
from .validation import (
    FieldErrors,
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
)

Defaulter = Callable[[Any, dict[str, Any] | None], None]
Validator = Callable[[Any, dict[str, Any] | None, FieldErrors], None]


@dataclass(frozen=True)
class KindRules:
    """How one kind is admitted."""

    api_version: str
    kind: str
    model: type[K8sModel]
    default: Defaulter | None = None
    validate: Validator | None = None
    name_check: Callable[[str], list[str]] = dns1123_subdomain_errors
    # True when ``default`` and ``validate`` never read ``metadata``: a create then admits the
    # metadata and the rest apart, and remembers the admitted rest (objects stamped from one
    # template, such as a ReplicaSet's pods, share it).
    body_apart: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def namespaced(self) -> bool:
        return is_namespaced(self.api_version, self.kind)


@cache
def is_namespaced(api_version: str, kind: str) -> bool:
    """Scope from the built-in kinds table; unknown kinds count as namespaced."""
    try:
        return kinds.builtin(api_version, kind).namespaced
    except KeyError:
        return True


def _plain(fn: Callable[[Any], None]) -> Defaulter:
    return lambda obj, old: fn(obj)


_ALL = (
    KindRules("v1", "Pod", core.Pod, _plain(cr.default_pod), cr.validate_pod, body_apart=True),
    KindRules("v1", "Node", core.Node, _plain(cr.default_node), cr.validate_node),
    KindRules(
        "v1", "Service", core.Service, cr.default_service, cr.validate_service, dns1035_label_errors
    ),
    KindRules(
        "v1", "Endpoints", core.Endpoints, _plain(cr.default_endpoints), cr.validate_endpoints
    ),
    KindRules("v1", "ConfigMap", core.ConfigMap, None, cr.validate_config_map),
    KindRules("v1", "Secret", core.Secret, _plain(cr.default_secret), cr.validate_secret),
    KindRules(
        "v1",
        "Namespace",
        core.Namespace,
        _plain(cr.default_namespace),
        cr.validate_namespace,
        dns1123_label_errors,
    ),
    KindRules("v1", "Event", core.Event, None, cr.validate_event),
    KindRules("v1", "ServiceAccount", core.ServiceAccount, None, cr.validate_service_account),
    KindRules(
        "v1",
        "PersistentVolumeClaim",
        storage.PersistentVolumeClaim,
        _plain(storage.default_claim),
        storage.validate_claim,
    ),
    KindRules(
        "v1",
        "PersistentVolume",
        storage.PersistentVolume,
        _plain(storage.default_volume),
        storage.validate_volume,
    ),
    KindRules(
        "apps/v1",
        "Deployment",
        apps.Deployment,
        _plain(apps.default_deployment),
        apps.validate_deployment,
    ),
    KindRules(
        "apps/v1",
        "ReplicaSet",
        apps.ReplicaSet,
        _plain(apps.default_replica_set),
        apps.validate_replica_set,
    ),
    KindRules(
        "apps/v1",
        "StatefulSet",
        apps.StatefulSet,
        _plain(apps.default_stateful_set),
        apps.validate_stateful_set,
    ),
    KindRules(
        "apps/v1",
        "DaemonSet",
        apps.DaemonSet,
        _plain(apps.default_daemon_set),
        apps.validate_daemon_set,
    ),
    KindRules("batch/v1", "Job", batch.Job, _plain(batch.default_job), batch.validate_job),
    KindRules(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        autoscaling.HorizontalPodAutoscaler,
        _plain(autoscaling.default_hpa),
        autoscaling.validate_hpa,
    ),
    KindRules(
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        autoscaling.HorizontalPodAutoscalerV1,
        _plain(autoscaling.default_hpa_v1),
        autoscaling.validate_hpa_v1,
    ),
    KindRules(
        "coordination.k8s.io/v1", "Lease", coordination.Lease, None, coordination.validate_lease
    ),
    KindRules(
        "scheduling.k8s.io/v1",
        "PriorityClass",
        scheduling.PriorityClass,
        _plain(scheduling.default_priority_class),
        scheduling.validate_priority_class,
    ),
    KindRules(
        "policy/v1", "PodDisruptionBudget", policy.PodDisruptionBudget, None, policy.validate_pdb
    ),
    KindRules(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        discovery.EndpointSlice,
        _plain(discovery.default_endpoint_slice),
        discovery.validate_endpoint_slice,
    ),
    KindRules(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        apiextensions.CustomResourceDefinition,
        _plain(apiextensions.default_crd),
        apiextensions.validate_crd,
    ),
    *(
        KindRules(
            "rbac.authorization.k8s.io/v1",
            model.__name__,
            model,
            default,
            validate,
            rbac.path_segment_errors,
        )
        for model, default, validate in (
            (rbac.Role, None, rbac.validate_role),
            (rbac.ClusterRole, None, rbac.validate_cluster_role),
            (rbac.RoleBinding, _plain(rbac.default_binding), rbac.validate_role_binding),
            (
                rbac.ClusterRoleBinding,
                _plain(rbac.default_binding),
                rbac.validate_cluster_role_binding,
            ),
        )
    ),
)

RULES: dict[tuple[str, str], KindRules] = {(r.api_version, r.kind): r for r in _ALL}
