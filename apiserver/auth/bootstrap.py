"""The default RBAC policy: Kubernetes' bootstrap ClusterRoles and ClusterRoleBindings.

Names, labels, annotations, aggregation and rules follow Kubernetes' bootstrap policy, with the
rule lists reduced to the resources tugboat serves. ``admin``, ``edit`` and ``view`` carry no
rules of their own: they aggregate ``system:aggregate-to-*`` (and each other: view → edit →
admin), as in Kubernetes; :class:`apiserver.auth.rbac.Aggregator` writes the union into them.

Tugboat's controller-manager runs every controller under one identity
(``system:kube-controller-manager``), so that role holds what Kubernetes spreads over the
per-controller ``system:controller:*`` roles: the garbage collector and the namespace controller
read and delete every kind (as Kubernetes' do), the workload controllers create what they own.

:func:`ensure` runs at every API server start and reconciles as Kubernetes does: a missing object
is created; an existing one whose ``rbac.authorization.kubernetes.io/autoupdate`` annotation is
not ``"false"`` gets what it lacks (rules its rules do not cover, selectors, subjects, labels and
annotations), and keeps whatever was added to it. ``autoupdate: "false"`` leaves it alone.
"""

from __future__ import annotations

import contextlib
from typing import Any

from apiserver.auth.rbac import rules_of, uncovered
from apiserver.registry import Registry, WriteOptions
from machinery import errors
from machinery.jsoncopy import json_copy
from machinery.kinds import lookup

API_VERSION = "rbac.authorization.k8s.io/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
EVENT_WRITE = ["create", "patch", "update"]


def rule(verbs: list[str], groups: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    """A resource PolicyRule; ``names=[...]`` restricts it to resourceNames."""
    out: dict[str, Any] = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if extra.get("names"):
        out["resourceNames"] = extra["names"]
    return out


def url_rule(verbs: list[str], urls: list[str]) -> dict[str, Any]:
    return {"verbs": verbs, "nonResourceURLs": urls}


def cluster_role(
    name: str,
    rules: list[dict[str, Any]],
    labels: dict[str, str] | None = None,
    aggregate_from: str | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {**BOOTSTRAP_LABEL, **(labels or {})},
            "annotations": {AUTOUPDATE: "true"},
        },
        "rules": rules,
    }
    if aggregate_from:
        obj["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {AGGREGATE + aggregate_from: "true"}}]
        }
    return obj


def binding(name: str, role: str, subjects: list[tuple[str, str]]) -> dict[str, Any]:
    """A ClusterRoleBinding of ClusterRole ``role`` to (kind, name) subjects."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": dict(BOOTSTRAP_LABEL),
            "annotations": {AUTOUPDATE: "true"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}
            for kind, subject in subjects
        ],
    }


def _view_rules() -> list[dict[str, Any]]:
    return [
        rule(
            READ,
            [""],
            [
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
        ),
        rule(
            READ,
            [""],
            [
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
        ),
        rule(READ, [""], ["namespaces"]),
        rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
        rule(
            READ,
            ["apps"],
            [
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
        ),
        rule(
            READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]
        ),
        rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
        rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    ]


def _edit_rules() -> list[dict[str, Any]]:
    return [
        rule(
            READ,
            [""],
            [
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
        ),
        rule(["impersonate"], [""], ["serviceaccounts"]),
        rule(WRITE, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
        rule(["create"], [""], ["pods/eviction"]),
        rule(
            WRITE,
            [""],
            [
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
        ),
        rule(["create"], [""], ["serviceaccounts/token"]),
        rule(
            WRITE,
            ["apps"],
            [
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
        rule(WRITE, ["batch"], ["cronjobs", "jobs"]),
        rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
        rule(WRITE, ["coordination.k8s.io"], ["leases"]),
    ]


def _admin_rules() -> list[dict[str, Any]]:
    return [
        rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
        rule([*WRITE, *READ], ["rbac.authorization.k8s.io"], ["rolebindings", "roles"]),
    ]


def _controller_manager_rules() -> list[dict[str, Any]]:
    return [
        # the garbage collector and the namespace controller: every kind
        rule([*READ, "update", "patch", "delete", "deletecollection"], ["*"], ["*"]),
        rule(
            ["create"],
            [""],
            [
                "pods",
                "endpoints",
                "events",
                "persistentvolumes",
                "pods/eviction",
                "serviceaccounts",  # a default ServiceAccount in every namespace
                "configmaps",  # kube-root-ca.crt in every namespace
            ],
        ),
        rule(["create"], ["apps"], ["replicasets", "controllerrevisions"]),
        rule(["create"], ["discovery.k8s.io"], ["endpointslices"]),
        rule(["create"], ["storage.k8s.io"], ["storageclasses"]),  # local-path's default class
        rule(["create"], ["events.k8s.io"], ["events"]),
        rule(["create"], ["coordination.k8s.io"], ["leases"]),
        rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
        rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    ]


def _scheduler_rules() -> list[dict[str, Any]]:
    return [
        rule(EVENT_WRITE, ["", "events.k8s.io"], ["events"]),
        rule(["create"], ["coordination.k8s.io"], ["leases"]),
        rule(["get", "update"], ["coordination.k8s.io"], ["leases"], names=["kube-scheduler"]),
        rule(READ, [""], ["nodes"]),
        rule(["delete", *READ], [""], ["pods"]),
        rule(["create"], [""], ["bindings", "pods/binding"]),
        rule(["patch", "update"], [""], ["pods/status"]),
        rule(READ, [""], ["replicationcontrollers", "services"]),
        rule(READ, ["apps"], ["replicasets", "statefulsets"]),
        rule(READ, ["policy"], ["poddisruptionbudgets"]),
        rule(READ, [""], ["persistentvolumeclaims", "persistentvolumes"]),
        rule(["patch", "update"], [""], ["persistentvolumeclaims"]),  # selected-node
        rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
        rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
        rule(READ, ["storage.k8s.io"], ["storageclasses"]),
        rule(READ, ["scheduling.k8s.io"], ["priorityclasses"]),
        rule(READ, [""], ["namespaces"]),
    ]


def _node_proxier_rules() -> list[dict[str, Any]]:
    return [
        rule(["list", "watch"], [""], ["endpoints", "services"]),
        rule(READ, [""], ["nodes"]),
        rule(EVENT_WRITE, ["", "events.k8s.io"], ["events"]),
        rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
    ]


def _dns_rules() -> list[dict[str, Any]]:
    """``tug dns`` (what CoreDNS's ``system:coredns`` role holds)."""
    return [
        rule(["list", "watch"], [""], ["endpoints", "services", "pods", "namespaces"]),
        rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
    ]


def default_objects() -> list[dict[str, Any]]:
    """Every default ClusterRole, then every default ClusterRoleBinding."""
    roles = [
        cluster_role(
            "cluster-admin",
            [rule(["*"], ["*"], ["*"]), url_rule(["*"], ["*"])],
        ),
        cluster_role("admin", [], aggregate_from="admin"),
        cluster_role("edit", [], {AGGREGATE + "admin": "true"}, aggregate_from="edit"),
        cluster_role("view", [], {AGGREGATE + "edit": "true"}, aggregate_from="view"),
        cluster_role("system:aggregate-to-admin", _admin_rules(), {AGGREGATE + "admin": "true"}),
        cluster_role("system:aggregate-to-edit", _edit_rules(), {AGGREGATE + "edit": "true"}),
        cluster_role("system:aggregate-to-view", _view_rules(), {AGGREGATE + "view": "true"}),
        cluster_role(
            "system:discovery",
            [
                url_rule(
                    ["get"],
                    [
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/healthz",
                        "/livez",
                        "/openapi",
                        "/openapi/*",
                        "/readyz",
                        "/version",
                        "/version/",
                    ],
                )
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            [url_rule(["get"], ["/healthz", "/livez", "/readyz", "/version", "/version/"])],
        ),
        cluster_role(
            "system:basic-user",
            [
                rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
                rule(
                    ["create"],
                    ["authorization.k8s.io"],
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
            ],
        ),
        cluster_role("system:kube-controller-manager", _controller_manager_rules()),
        cluster_role("system:kube-scheduler", _scheduler_rules()),
        cluster_role("system:node-proxier", _node_proxier_rules()),
        cluster_role("system:tug-dns", _dns_rules()),
    ]
    authenticated = ("Group", "system:authenticated")
    unauthenticated = ("Group", "system:unauthenticated")
    bindings = [
        binding("cluster-admin", "cluster-admin", [("Group", "system:masters")]),
        binding("system:discovery", "system:discovery", [authenticated]),
        binding("system:basic-user", "system:basic-user", [authenticated]),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            [authenticated, unauthenticated],
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            [("User", "system:kube-controller-manager")],
        ),
        binding(
            "system:kube-scheduler", "system:kube-scheduler", [("User", "system:kube-scheduler")]
        ),
        binding("system:node-proxier", "system:node-proxier", [("User", "system:kube-proxy")]),
        binding("system:tug-dns", "system:tug-dns", [("User", "system:tug-dns")]),
    ]
    return roles + bindings


def reconciled(current: dict[str, Any], default: dict[str, Any]) -> dict[str, Any] | None:
    """``current`` with what ``default`` has and it lacks, or None when nothing is missing or
    its autoupdate annotation is ``"false"``."""
    meta = current.get("metadata") or {}
    if (meta.get("annotations") or {}).get(AUTOUPDATE) == "false":
        return None
    out = json_copy(current)
    m = out.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        m[key] = {**default["metadata"][key], **(m.get(key) or {})}
    if default["kind"] == "ClusterRole":
        agg = default.get("aggregationRule")
        if agg:  # the aggregation controller owns the rules: add missing selectors only
            have = out.setdefault("aggregationRule", {}).setdefault("clusterRoleSelectors", [])
            have += [sel for sel in agg["clusterRoleSelectors"] if sel not in have]
        else:
            missing = uncovered(rules_of(current), rules_of(default))
            out["rules"] = [*(current.get("rules") or []), *(r.to_dict() for r in missing)]
    else:
        subjects = out.setdefault("subjects", [])
        subjects += [sub for sub in default["subjects"] if sub not in subjects]
    return None if out == current else out


async def ensure(registry: Registry) -> None:
    """Create or reconcile the default objects (see the module docstring). Several servers
    may do it at once: a lost create race or a conflicting update is retried by the registry or
    left to the winner."""
    for obj in default_objects():
        rt = lookup(obj["kind"].lower())
        name = obj["metadata"]["name"]
        entry = registry.find(rt, None, name)
        if entry is None:
            with contextlib.suppress(errors.AlreadyExists):
                await registry.create(rt, None, obj, WriteOptions())
        elif reconciled(entry.obj, obj) is not None:

            def change(cur: dict[str, Any], default: dict[str, Any] = obj) -> dict[str, Any]:
                return reconciled(cur, default) or cur

            with contextlib.suppress(errors.NotFound):
                await registry.mutate(rt, None, name, change, WriteOptions())
