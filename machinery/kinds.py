"""The built-in resource kinds: how a kind maps to its REST path and discovery entry.

This table is the one place that says which group/version/plural/scope each built-in kind has.
The API server serves from it; clients build URLs from it. Custom resources (CRDs) add
:class:`ResourceType` entries at run time through :class:`Registry`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: ``/api[s]/{group}/{version}[/namespaces/{ns}]/{plural}``."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    storage: str = ""  # the storage resource key; empty means "{group}/{plural}"
    list_kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        """Storage prefix shared by every version of the same resource."""
        return self.storage or f"{self.group}/{self.plural}"

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path for a collection, an object or an object's subresource."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


_ALL = ("all",)

BUILTIN: tuple[ResourceType, ...] = (
    ResourceType(
        "", "v1", "Namespace", "namespaces", "namespace", False, ("ns",), ("status", "finalize")
    ),
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        True,
        ("po",),
        ("status", "binding", "eviction", "log", "exec", "attach", "portforward"),
        _ALL,
    ),
    ResourceType("", "v1", "Node", "nodes", "node", False, ("no",), ("status", "proxy")),
    ResourceType(
        "", "v1", "Service", "services", "service", True, ("svc",), ("status", "proxy"), _ALL
    ),
    ResourceType(
        "", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",), list_kind="EndpointsList"
    ),
    ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    ResourceType("", "v1", "Secret", "secrets", "secret", True),
    ResourceType("", "v1", "Event", "events", "event", True, ("ev",)),
    ResourceType(
        "", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",), ("token",)
    ),
    ResourceType(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        True,
        ("pvc",),
        ("status",),
    ),
    ResourceType(
        "", "v1", "ResourceQuota", "resourcequotas", "resourcequota", True, ("quota",), ("status",)
    ),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        True,
        ("deploy",),
        ("status", "scale"),
        _ALL,
    ),
    ResourceType(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        True,
        ("rs",),
        ("status", "scale"),
        _ALL,
    ),
    ResourceType(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        True,
        ("sts",),
        ("status", "scale"),
        _ALL,
    ),
    ResourceType(
        "apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ("ds",), ("status",), _ALL
    ),
    ResourceType(
        "apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", True
    ),
    ResourceType("batch", "v1", "Job", "jobs", "job", True, (), ("status",), _ALL),
    ResourceType(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        True,
        ("hpa",),
        ("status",),
        _ALL,
        storage="autoscaling/horizontalpodautoscalers",
    ),
    ResourceType(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        True,
        ("hpa",),
        ("status",),
        _ALL,
        storage="autoscaling/horizontalpodautoscalers",
    ),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    ResourceType(
        "discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True
    ),
    ResourceType(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        True,
        ("pdb",),
        ("status",),
    ),
    ResourceType(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        False,
        ("pc",),
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        False,
        ("crd", "crds"),
        ("status",),
    ),
    ResourceType(
        "events.k8s.io", "v1", "Event", "events", "event", True, ("ev",), storage="/events"
    ),
    ResourceType(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        False,
        ("pv",),
        ("status",),
    ),
    ResourceType("", "v1", "LimitRange", "limitranges", "limitrange", True, ("limits",)),
    ResourceType(
        "storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", False, ("sc",)
    ),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", False
    ),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", True
    ),
    ResourceType(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        False,
    ),
    # Create-only reviews, answered without storage (apiserver/auth/reviews.py).
    *(
        ResourceType(group, "v1", kind, kind.lower() + "s", kind.lower(), ns, verbs=("create",))
        for group, kind, ns in (
            ("authorization.k8s.io", "SelfSubjectAccessReview", False),
            ("authorization.k8s.io", "SelfSubjectRulesReview", False),
            ("authorization.k8s.io", "SubjectAccessReview", False),
            ("authorization.k8s.io", "LocalSubjectAccessReview", True),
            ("authentication.k8s.io", "SelfSubjectReview", False),
        )
    ),
)


@dataclass
class Registry:
    """Resource types by (group, version, plural) and by kind; mutable for CRDs."""

    types: list[ResourceType] = field(default_factory=lambda: list(BUILTIN))

    def add(self, rt: ResourceType) -> None:
        self.remove(rt.group, rt.version, rt.plural)
        self.types.append(rt)

    def remove(self, group: str, version: str, plural: str) -> None:
        self.types = [
            t
            for t in self.types
            if not (t.group == group and t.version == version and t.plural == plural)
        ]

    def by_path(self, group: str, version: str, plural: str) -> ResourceType | None:
        for t in self.types:
            if t.group == group and t.version == version and t.plural == plural:
                return t
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for t in self.types:
            if t.api_version == api_version and t.kind == kind:
                return t
        return None

    def resolve(self, name: str) -> ResourceType | None:
        """Find a type by plural, singular, short name or kind (``deploy``, ``pods``,
        ``Deployment``, ``deployments.apps``), preferring the first registered version."""
        name_l = name.lower()
        base, _, group = name_l.partition(".")
        for t in self.types:
            if group and t.group != group and not t.group.startswith(group):
                continue
            if base in (t.plural, t.singular, t.kind.lower()) or base in t.short_names:
                return t
        return None


_DEFAULT = Registry()


def builtin(api_version: str, kind: str) -> ResourceType:
    """The built-in type for ``apiVersion``/``kind``; raises KeyError when there is none."""
    rt = _DEFAULT.by_kind(api_version, kind)
    if rt is None:
        raise KeyError(f"no built-in kind {kind} in {api_version}")
    return rt


@functools.lru_cache(maxsize=256)
def lookup(name: str) -> ResourceType:
    """A built-in type by any of its names (see :meth:`Registry.resolve`); remembered, since
    the built-in table never changes."""
    rt = _DEFAULT.resolve(name)
    if rt is None:
        raise KeyError(f"unknown resource type {name!r}")
    return rt


def parse_resource_list(doc: dict[str, Any]) -> list[ResourceType]:
    """Pure: the top-level resources of an ``APIResourceList`` (subresources folded in)."""
    group, _, version = (doc.get("groupVersion") or "v1").rpartition("/")
    subresources: dict[str, list[str]] = {}
    top = []
    for r in doc.get("resources") or []:
        base, _, sub = (r.get("name") or "").partition("/")
        if sub:
            subresources.setdefault(base, []).append(sub)
        elif base:
            top.append(r)
    return [
        ResourceType(
            group,
            version,
            r.get("kind", ""),
            r["name"],
            r.get("singularName") or r.get("kind", "").lower(),
            bool(r.get("namespaced")),
            tuple(r.get("shortNames") or ()),
            tuple(subresources.get(r["name"], ())),
            tuple(r.get("categories") or ()),
            tuple(r.get("verbs") or ()),
        )
        for r in top
    ]
