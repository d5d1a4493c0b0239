"""``policy/v1``: PodDisruptionBudget."""

from __future__ import annotations

from typing import Any, ClassVar

from .core import Object
from .meta import Condition, IntOrString, K8sModel, LabelSelector, opt, req
from .validation import FieldErrors, validate_selector


class PolicyModel(K8sModel):
    schema_prefix: ClassVar[str] = "io.k8s.api.policy.v1"


class PodDisruptionBudgetSpec(PolicyModel):
    """How many selected pods must stay up during voluntary disruptions."""

    min_available: IntOrString | None = opt("Pods that must remain available (number or %).")
    max_unavailable: IntOrString | None = opt("Pods that may be unavailable (number or %).")
    selector: LabelSelector | None = opt("Pods the budget covers.")
    unhealthy_pod_eviction_policy: str | None = opt("IfHealthyBudget or AlwaysAllow.")


class PodDisruptionBudgetStatus(PolicyModel):
    """The observed state of a budget."""

    observed_generation: int | None = opt("Generation last acted on.")
    disrupted_pods: dict[str, str] | None = opt("Pods being evicted, with the time.")
    disruptions_allowed: int = req("Evictions allowed right now.")
    current_healthy: int = req("Healthy pods.")
    desired_healthy: int = req("Healthy pods needed.")
    expected_pods: int = req("Pods the budget counts.")
    conditions: list[Condition] | None = opt("Current conditions.")


class PodDisruptionBudget(Object):
    """Limits voluntary disruptions (evictions) of a set of pods."""

    schema_prefix: ClassVar[str] = "io.k8s.api.policy.v1"
    spec: PodDisruptionBudgetSpec | None = opt("Desired state.")
    status: PodDisruptionBudgetStatus | None = opt("Observed state.")


def validate_pdb(pdb: PodDisruptionBudget, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    spec = pdb.spec
    if spec is None:
        return
    if spec.min_available is not None and spec.max_unavailable is not None:
        errs.invalid("spec", spec.to_dict(), "minAvailable and maxUnavailable cannot be both set")
    for field, value in (
        ("minAvailable", spec.min_available),
        ("maxUnavailable", spec.max_unavailable),
    ):
        if isinstance(value, int) and value < 0:
            errs.invalid(f"spec.{field}", value, "must be greater than or equal to 0")
        elif isinstance(value, str):
            digits = value[:-1]
            if not value.endswith("%") or not digits.isdigit():
                errs.invalid(
                    f"spec.{field}",
                    value,
                    "a valid percent string must be a numeric "
                    "string followed by an ending '%' (e.g. '1%',  or '93%', regex "
                    "used for validation is '[0-9]+%')",
                )
            elif int(digits) > 100:
                errs.invalid(f"spec.{field}", value, "must not be greater than 100%")
    validate_selector(spec.selector, "spec.selector", errs)
    errs.enum(
        "spec.unhealthyPodEvictionPolicy",
        spec.unhealthy_pod_eviction_policy,
        ("AlwaysAllow", "IfHealthyBudget"),
    )
