"""``rbac.authorization.k8s.io/v1``: Role, ClusterRole, RoleBinding, ClusterRoleBinding."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from .core import Object
from .meta import K8sModel, LabelSelector, opt, req
from .validation import FieldErrors

GROUP = "rbac.authorization.k8s.io"
PREFIX = "io.k8s.api.rbac.v1"


class PolicyRule(K8sModel):
    """Verbs allowed on resources (by API group and optional names) or on non-resource URLs."""

    schema_prefix: ClassVar[str] = PREFIX
    verbs: list[str] = req("Verbs this rule allows; '*' means all.")
    api_groups: list[str] | None = opt("API groups of the resources; '' is the core group.")
    resources: list[str] | None = opt("Resources ('res', 'res/sub', '*', '*/sub').")
    resource_names: list[str] | None = opt("Names the rule is limited to; empty means all.")
    non_resource_urls: list[str] | None = Field(
        None, alias="nonResourceURLs", description="Non-resource URLs; a trailing '*' matches."
    )


class AggregationRule(K8sModel):
    """Which ClusterRoles an aggregated ClusterRole gathers its rules from."""

    schema_prefix: ClassVar[str] = PREFIX
    cluster_role_selectors: list[LabelSelector] | None = opt(
        "Selectors of the ClusterRoles whose rules are unioned into this one."
    )


class Role(Object):
    """Namespaced rules."""

    schema_prefix: ClassVar[str] = PREFIX
    rules: list[PolicyRule] | None = opt("The rules of this Role.")


class ClusterRole(Object):
    """Cluster-wide rules, usable by ClusterRoleBindings and by RoleBindings in a namespace."""

    schema_prefix: ClassVar[str] = PREFIX
    rules: list[PolicyRule] | None = opt("The rules (filled in by aggregation when set).")
    aggregation_rule: AggregationRule | None = opt("Aggregates the rules of other ClusterRoles.")


class Subject(K8sModel):
    """Who a binding grants to: a User, a Group or a ServiceAccount."""

    schema_prefix: ClassVar[str] = PREFIX
    kind: str = req("User, Group or ServiceAccount.")
    api_group: str | None = opt("'' for ServiceAccount, rbac.authorization.k8s.io otherwise.")
    name: str = req("Name of the subject.")
    namespace: str | None = opt("Namespace of a ServiceAccount.")


class RoleRef(K8sModel):
    """The role a binding grants."""

    schema_prefix: ClassVar[str] = PREFIX
    api_group: str = req("rbac.authorization.k8s.io.")
    kind: str = req("Role or ClusterRole.")
    name: str = req("Name of the role.")


class RoleBinding(Object):
    """Grants a Role or ClusterRole to subjects in one namespace."""

    schema_prefix: ClassVar[str] = PREFIX
    subjects: list[Subject] | None = opt("Who is granted the role.")
    role_ref: RoleRef = req("The role granted; cannot change.")


class ClusterRoleBinding(Object):
    """Grants a ClusterRole to subjects cluster-wide."""

    schema_prefix: ClassVar[str] = PREFIX
    subjects: list[Subject] | None = opt("Who is granted the role.")
    role_ref: RoleRef = req("The ClusterRole granted; cannot change.")


def default_binding(binding: RoleBinding | ClusterRoleBinding) -> None:
    """Kubernetes' Subject defaults: the RBAC group for users and groups, '' for accounts."""
    for s in binding.subjects or ():
        if s.api_group is None:
            s.api_group = "" if s.kind == "ServiceAccount" else GROUP


def _validate_rules(
    rules: list[PolicyRule] | None, errs: FieldErrors, namespaced: bool, aggregated: bool = False
) -> None:
    for i, r in enumerate(rules or ()):
        at = f"rules[{i}]"
        if not r.verbs:
            errs.required(f"{at}.verbs", "verbs must contain at least one value")
        if r.non_resource_urls:
            if namespaced:
                errs.invalid(
                    f"{at}.nonResourceURLs",
                    r.non_resource_urls,
                    "namespaced rules cannot apply to non-resource URLs",
                )
            if r.api_groups or r.resources or r.resource_names:
                errs.invalid(
                    f"{at}.nonResourceURLs",
                    r.non_resource_urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            continue
        if not r.api_groups:
            errs.required(f"{at}.apiGroups", "resource rules must supply at least one api group")
        if not r.resources:
            errs.required(f"{at}.resources", "resource rules must supply at least one resource")


def validate_role(role: Role, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    _validate_rules(role.rules, errs, namespaced=True)


def validate_cluster_role(role: ClusterRole, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    _validate_rules(role.rules, errs, namespaced=False)
    agg = role.aggregation_rule
    if agg is not None and not agg.cluster_role_selectors:
        errs.required(
            "aggregationRule.clusterRoleSelectors", "at least one clusterRoleSelector required"
        )


def _validate_binding(
    b: RoleBinding | ClusterRoleBinding,
    old: dict[str, Any] | None,
    errs: FieldErrors,
    kinds: tuple[str, ...],
) -> None:
    ref = b.role_ref
    if ref.api_group != GROUP:
        errs.not_supported("roleRef.apiGroup", ref.api_group, (GROUP,))
    if ref.kind not in kinds:
        errs.not_supported("roleRef.kind", ref.kind, kinds)
    if not ref.name:
        errs.required("roleRef.name")
    if old is not None and old.get("roleRef") != ref.to_dict():
        errs.invalid("roleRef", ref.to_dict(), "cannot change roleRef")
    namespaced = isinstance(b, RoleBinding)
    for i, s in enumerate(b.subjects or ()):
        at = f"subjects[{i}]"
        if not s.name:
            errs.required(f"{at}.name")
        if s.kind == "ServiceAccount":
            if s.api_group:
                errs.not_supported(f"{at}.apiGroup", s.api_group, ("",))
            if not s.namespace and not namespaced:
                errs.required(f"{at}.namespace")
        elif s.kind in ("User", "Group"):
            if s.api_group != GROUP:
                errs.not_supported(f"{at}.apiGroup", s.api_group, (GROUP,))
        else:
            errs.not_supported(f"{at}.kind", s.kind, ("ServiceAccount", "User", "Group"))


def validate_role_binding(b: RoleBinding, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    _validate_binding(b, old, errs, ("Role", "ClusterRole"))


def validate_cluster_role_binding(
    b: ClusterRoleBinding, old: dict[str, Any] | None, errs: FieldErrors
) -> None:
    _validate_binding(b, old, errs, ("ClusterRole",))


def path_segment_errors(name: str) -> list[str]:
    """RBAC names only need to be a valid path segment (``system:node-proxier`` is fine)."""
    if name in (".", ".."):
        return [f'may not be "{name}"']
    return [f'may not contain "{c}"' for c in ("/", "%") if c in name]
