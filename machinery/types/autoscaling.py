"""``autoscaling/v2`` and ``autoscaling/v1``: HorizontalPodAutoscaler — models, defaults, rules.

Both versions share one storage; converting between them is the API server's business.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .core import Object
from .meta import Condition, K8sModel, LabelSelector, Quantity, Time, opt, req
from .validation import FieldErrors

METRIC_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
TARGET_TYPES = ("AverageValue", "Utilization", "Value")
SCALING_POLICY_TYPES = ("Percent", "Pods")
SELECT_POLICIES = ("Disabled", "Max", "Min")


class V2Model(K8sModel):
    schema_prefix: ClassVar[str] = "io.k8s.api.autoscaling.v2"


class CrossVersionObjectReference(V2Model):
    """The object to scale."""

    api_version: str | None = opt("API version of the target, such as apps/v1.")
    kind: str = req("Kind of the target, such as Deployment.")
    name: str = req("Name of the target.")


class MetricTarget(V2Model):
    """The value a metric should have."""

    type: str = req("Utilization, Value or AverageValue.")
    value: Quantity | None = opt("Target total value.")
    average_value: Quantity | None = opt("Target value per pod.")
    average_utilization: int | None = opt("Target percentage of the pods' requests.")


class MetricIdentifier(V2Model):
    """A metric by name and labels."""

    name: str = req("Metric name.")
    selector: LabelSelector | None = opt("Label selector of the metric series.")


class ResourceMetricSource(V2Model):
    """CPU or memory of the pods, as known to the metrics API."""

    name: str = req("Resource name, such as cpu.")
    target: MetricTarget = req("Target value.")


class ContainerResourceMetricSource(V2Model):
    """CPU or memory of one container of the pods."""

    name: str = req("Resource name.")
    target: MetricTarget = req("Target value.")
    container: str = req("Container name.")


class PodsMetricSource(V2Model):
    """A custom metric averaged over the pods."""

    metric: MetricIdentifier = req("The metric.")
    target: MetricTarget = req("Target value.")


class ObjectMetricSource(V2Model):
    """A metric of another object."""

    described_object: CrossVersionObjectReference = req("The object.")
    target: MetricTarget = req("Target value.")
    metric: MetricIdentifier = req("The metric.")


class ExternalMetricSource(V2Model):
    """A metric from outside the cluster."""

    metric: MetricIdentifier = req("The metric.")
    target: MetricTarget = req("Target value.")


class MetricSpec(V2Model):
    """One metric to scale on; the field matching type is set."""

    type: str = req("Resource, ContainerResource, Pods, Object or External.")
    resource: ResourceMetricSource | None = opt("For type Resource.")
    container_resource: ContainerResourceMetricSource | None = opt("For type ContainerResource.")
    pods: PodsMetricSource | None = opt("For type Pods.")
    object: ObjectMetricSource | None = opt("For type Object.")
    external: ExternalMetricSource | None = opt("For type External.")


class HPAScalingPolicy(V2Model):
    """At most value pods (or percent) per periodSeconds."""

    type: str = req("Pods or Percent.")
    value: int = req("Amount of change allowed.")
    period_seconds: int = req("Window the policy applies to.")


class HPAScalingRules(V2Model):
    """Rate limits for one direction."""

    stabilization_window_seconds: int | None = opt("Look-back window for recommendations.")
    select_policy: str | None = opt("Max, Min or Disabled; defaults to Max.")
    policies: list[HPAScalingPolicy] | None = opt("The allowed rates.")
    tolerance: Quantity | None = opt("Ratio change below which no scaling happens.")


class HorizontalPodAutoscalerBehavior(V2Model):
    """Scale-up and scale-down rate limits."""

    scale_up: HPAScalingRules | None = opt("Rules for scaling up.")
    scale_down: HPAScalingRules | None = opt("Rules for scaling down.")


class HorizontalPodAutoscalerSpec(V2Model):
    """The desired state of an autoscaler."""

    scale_target_ref: CrossVersionObjectReference = req("The object to scale.")
    min_replicas: int | None = opt("Lower bound; defaults to 1.")
    max_replicas: int = req("Upper bound.")
    metrics: list[MetricSpec] | None = opt("Metrics to scale on; defaults to 80% CPU.")
    behavior: HorizontalPodAutoscalerBehavior | None = opt("Rate limits.")


class MetricStatus(V2Model):
    """The current value of one metric."""

    type: str = req("Metric type.")
    resource: dict[str, Any] | None = opt("For type Resource.")
    container_resource: dict[str, Any] | None = opt("For type ContainerResource.")
    pods: dict[str, Any] | None = opt("For type Pods.")
    object: dict[str, Any] | None = opt("For type Object.")
    external: dict[str, Any] | None = opt("For type External.")


class HorizontalPodAutoscalerStatus(V2Model):
    """The observed state of an autoscaler."""

    observed_generation: int | None = opt("Generation last acted on.")
    last_scale_time: Time | None = opt("When the target was last resized.")
    current_replicas: int | None = opt("Replicas seen last.")
    desired_replicas: int = req("Replicas computed last.")
    current_metrics: list[MetricStatus] | None = opt("Last read metric values.")
    conditions: list[Condition] | None = opt("AbleToScale, ScalingActive, ScalingLimited.")


class HorizontalPodAutoscaler(Object):
    """Resizes a scalable object from observed metrics (autoscaling/v2)."""

    schema_prefix: ClassVar[str] = "io.k8s.api.autoscaling.v2"
    spec: HorizontalPodAutoscalerSpec | None = opt("Desired state.")
    status: HorizontalPodAutoscalerStatus | None = opt("Observed state.")


def default_hpa(hpa: HorizontalPodAutoscaler) -> None:
    spec = hpa.spec
    if spec is None:
        return
    if spec.min_replicas is None:
        spec.min_replicas = 1
    if not spec.metrics:
        spec.metrics = [
            MetricSpec(
                type="Resource",
                resource=ResourceMetricSource(
                    name="cpu", target=MetricTarget(type="Utilization", average_utilization=80)
                ),
            )
        ]
    if spec.behavior is not None:
        spec.behavior.scale_up = _rules(spec.behavior.scale_up, up=True)
        spec.behavior.scale_down = _rules(spec.behavior.scale_down, up=False)


def _rules(rules: HPAScalingRules | None, *, up: bool) -> HPAScalingRules:
    """Kubernetes' default scaling rules, filling only what ``rules`` leaves unset."""
    rules = rules or HPAScalingRules()
    if rules.stabilization_window_seconds is None and up:
        rules.stabilization_window_seconds = 0
    if rules.select_policy is None:
        rules.select_policy = "Max"
    if rules.policies is None:
        rules.policies = (
            [
                HPAScalingPolicy(type="Pods", value=4, period_seconds=15),
                HPAScalingPolicy(type="Percent", value=100, period_seconds=15),
            ]
            if up
            else [HPAScalingPolicy(type="Percent", value=100, period_seconds=15)]
        )
    return rules


def _validate_bounds(spec: Any, errs: FieldErrors) -> None:
    if spec.min_replicas is not None and spec.min_replicas < 1:
        errs.invalid("spec.minReplicas", spec.min_replicas, "must be greater than or equal to 1")
    if spec.max_replicas < 1:
        errs.invalid("spec.maxReplicas", spec.max_replicas, "must be greater than or equal to 1")
    if spec.min_replicas is not None and spec.max_replicas < spec.min_replicas:
        errs.invalid(
            "spec.maxReplicas", spec.max_replicas, "must be greater than or equal to `minReplicas`"
        )
    ref = spec.scale_target_ref
    if not ref.kind:
        errs.required("spec.scaleTargetRef.kind")
    if not ref.name:
        errs.required("spec.scaleTargetRef.name")


def validate_hpa(
    hpa: HorizontalPodAutoscaler, old: dict[str, Any] | None, errs: FieldErrors
) -> None:
    spec = hpa.spec
    if spec is None:
        errs.required("spec")
        return
    _validate_bounds(spec, errs)
    for i, metric in enumerate(spec.metrics or ()):
        p = f"spec.metrics[{i}]"
        if metric.type not in METRIC_TYPES:
            errs.not_supported(f"{p}.type", metric.type, METRIC_TYPES)
            continue
        field = metric.type[0].lower() + metric.type[1:]
        attr = "container_resource" if metric.type == "ContainerResource" else field
        source = getattr(metric, attr)
        if source is None:
            errs.required(f"{p}.{field}", "must populate information for the given metric source")
            continue
        target = source.target
        errs.enum(f"{p}.{field}.target.type", target.type, TARGET_TYPES)
        if target.type == "Utilization" and target.average_utilization is None:
            errs.required(
                f"{p}.{field}.target.averageUtilization",
                "must set either a target value or averageUtilization",
            )
        if target.average_utilization is not None and target.average_utilization < 1:
            errs.invalid(
                f"{p}.{field}.target.averageUtilization",
                target.average_utilization,
                "must be greater than 0",
            )
    behavior = spec.behavior
    for field, rules in (
        ("scaleUp", behavior.scale_up if behavior else None),
        ("scaleDown", behavior.scale_down if behavior else None),
    ):
        if rules is None:
            continue
        p = f"spec.behavior.{field}"
        errs.enum(f"{p}.selectPolicy", rules.select_policy, SELECT_POLICIES)
        window = rules.stabilization_window_seconds
        if window is not None and not 0 <= window <= 3600:
            errs.invalid(
                f"{p}.stabilizationWindowSeconds", window, "must be less than or equal to 3600"
            )
        for j, policy in enumerate(rules.policies or ()):
            pp = f"{p}.policies[{j}]"
            errs.enum(f"{pp}.type", policy.type, SCALING_POLICY_TYPES)
            if policy.value <= 0:
                errs.invalid(f"{pp}.value", policy.value, "must be greater than zero")
            if not 0 < policy.period_seconds <= 1800:
                errs.invalid(
                    f"{pp}.periodSeconds",
                    policy.period_seconds,
                    "must be greater than zero and less than or equal to 1800",
                )


# --- autoscaling/v1 ----------------------------------------------------------------------------


class V1Model(K8sModel):
    schema_prefix: ClassVar[str] = "io.k8s.api.autoscaling.v1"


class CrossVersionObjectReferenceV1(V1Model):
    """The object to scale."""

    schema_type: ClassVar[str | None] = "CrossVersionObjectReference"
    api_version: str | None = opt("API version of the target.")
    kind: str = req("Kind of the target.")
    name: str = req("Name of the target.")


class HorizontalPodAutoscalerSpecV1(V1Model):
    """The desired state of an autoscaler (v1: CPU only)."""

    schema_type: ClassVar[str | None] = "HorizontalPodAutoscalerSpec"
    scale_target_ref: CrossVersionObjectReferenceV1 = req("The object to scale.")
    min_replicas: int | None = opt("Lower bound; defaults to 1.")
    max_replicas: int = req("Upper bound.")
    target_cpu_utilization_percentage: int | None = opt(
        "Target average CPU as a percentage of requests.",
        alias="targetCPUUtilizationPercentage",
    )


class HorizontalPodAutoscalerStatusV1(V1Model):
    """The observed state of an autoscaler (v1)."""

    schema_type: ClassVar[str | None] = "HorizontalPodAutoscalerStatus"
    observed_generation: int | None = opt("Generation last acted on.")
    last_scale_time: Time | None = opt("When the target was last resized.")
    current_replicas: int = req("Replicas seen last.")
    desired_replicas: int = req("Replicas computed last.")
    current_cpu_utilization_percentage: int | None = opt(
        "Current average CPU as a percentage of requests.",
        alias="currentCPUUtilizationPercentage",
    )


class HorizontalPodAutoscalerV1(Object):
    """Resizes a scalable object from its CPU use (autoscaling/v1)."""

    schema_prefix: ClassVar[str] = "io.k8s.api.autoscaling.v1"
    schema_type: ClassVar[str | None] = "HorizontalPodAutoscaler"
    spec: HorizontalPodAutoscalerSpecV1 | None = opt("Desired state.")
    status: HorizontalPodAutoscalerStatusV1 | None = opt("Observed state.")


def default_hpa_v1(hpa: HorizontalPodAutoscalerV1) -> None:
    if hpa.spec is not None and hpa.spec.min_replicas is None:
        hpa.spec.min_replicas = 1


def validate_hpa_v1(
    hpa: HorizontalPodAutoscalerV1, old: dict[str, Any] | None, errs: FieldErrors
) -> None:
    if hpa.spec is None:
        errs.required("spec")
        return
    _validate_bounds(hpa.spec, errs)
    target = hpa.spec.target_cpu_utilization_percentage
    if target is not None and target < 1:
        errs.invalid("spec.targetCPUUtilizationPercentage", target, "must be greater than 0")
