"""``apps/v1``: Deployment, ReplicaSet, StatefulSet, DaemonSet — models, defaults, rules."""

from __future__ import annotations

from typing import Any, ClassVar

from .core import Object, PodTemplateSpec
from .meta import Condition, IntOrString, K8sModel, LabelSelector, Time, opt, req
from .podspec import default_pod_spec, validate_pod_template
from .validation import (
    FieldErrors,
    selector_is_empty,
    selector_matches,
    validate_immutable,
    validate_selector,
)


class AppsModel(K8sModel):
    schema_prefix: ClassVar[str] = "io.k8s.api.apps.v1"


# --- Deployment --------------------------------------------------------------------------------


class RollingUpdateDeployment(AppsModel):
    """How fast a rolling update may go."""

    max_unavailable: IntOrString | None = opt(
        "Pods that may be unavailable during the update, a number or a percentage; defaults to 25%."
    )
    max_surge: IntOrString | None = opt(
        "Pods that may be created above the desired count, a number or a percentage; "
        "defaults to 25%."
    )


class DeploymentStrategy(AppsModel):
    """How old pods are replaced by new ones."""

    type: str | None = opt("RollingUpdate or Recreate; defaults to RollingUpdate.")
    rolling_update: RollingUpdateDeployment | None = opt("Rolling update parameters.")


class DeploymentSpec(AppsModel):
    """The desired state of a deployment."""

    replicas: int | None = opt("Desired number of pods; defaults to 1.")
    selector: LabelSelector = req(
        "Pods this deployment manages; must match the template labels and cannot change."
    )
    template: PodTemplateSpec = req("The pods to create.")
    strategy: DeploymentStrategy | None = opt("How to replace old pods.")
    min_ready_seconds: int | None = opt("Seconds a new pod must be ready to count as available.")
    revision_history_limit: int | None = opt(
        "Old ReplicaSets to keep for rollback; defaults to 10."
    )
    paused: bool | None = opt("Stop rolling out template changes.")
    progress_deadline_seconds: int | None = opt(
        "Seconds without progress before the rollout is reported failed; defaults to 600."
    )


class DeploymentCondition(Condition):
    """A Deployment condition: a standard condition plus when it was last probed."""

    last_update_time: Time | None = opt("The last time this condition was updated.")


class DeploymentStatus(AppsModel):
    """The observed state of a deployment."""

    observed_generation: int | None = opt("Generation the controller last acted on.")
    replicas: int | None = opt("Pods targeted by this deployment.")
    updated_replicas: int | None = opt("Pods running the current template.")
    ready_replicas: int | None = opt("Ready pods.")
    available_replicas: int | None = opt("Pods ready for at least minReadySeconds.")
    unavailable_replicas: int | None = opt("Pods still needed for full availability.")
    terminating_replicas: int | None = opt("Pods being deleted.")
    conditions: list[DeploymentCondition] | None = opt("Available, Progressing, ReplicaFailure.")
    collision_count: int | None = opt("Hash collisions seen when naming ReplicaSets.")


class Deployment(Object):
    """Declarative updates for pods through ReplicaSets."""

    schema_prefix: ClassVar[str] = "io.k8s.api.apps.v1"
    spec: DeploymentSpec | None = opt("Desired state.")
    status: DeploymentStatus | None = opt("Observed state.")


def default_deployment(d: Deployment) -> None:
    spec = d.spec
    if spec is None:
        return
    if spec.replicas is None:
        spec.replicas = 1
    if spec.strategy is None:
        spec.strategy = DeploymentStrategy()
    if spec.strategy.type is None:
        spec.strategy.type = "RollingUpdate"
    if spec.strategy.type == "RollingUpdate":
        if spec.strategy.rolling_update is None:
            spec.strategy.rolling_update = RollingUpdateDeployment()
        ru = spec.strategy.rolling_update
        if ru.max_unavailable is None:
            ru.max_unavailable = "25%"
        if ru.max_surge is None:
            ru.max_surge = "25%"
    if spec.revision_history_limit is None:
        spec.revision_history_limit = 10
    if spec.progress_deadline_seconds is None:
        spec.progress_deadline_seconds = 600
    if spec.template.spec is not None:
        default_pod_spec(spec.template.spec)


def validate_deployment(d: Deployment, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    spec = d.spec
    if spec is None:
        errs.required("spec")
        return
    _validate_workload(spec, old, "deployment", errs, restart=("Always",))
    errs.non_negative("spec.minReadySeconds", spec.min_ready_seconds)
    errs.non_negative("spec.revisionHistoryLimit", spec.revision_history_limit)
    if spec.progress_deadline_seconds is not None:
        if spec.progress_deadline_seconds <= 0:
            errs.invalid(
                "spec.progressDeadlineSeconds",
                spec.progress_deadline_seconds,
                "must be greater than 0",
            )
        elif spec.min_ready_seconds and spec.progress_deadline_seconds <= spec.min_ready_seconds:
            errs.invalid(
                "spec.progressDeadlineSeconds",
                spec.progress_deadline_seconds,
                "must be greater than minReadySeconds",
            )
    strategy = spec.strategy
    if strategy is None:
        return
    errs.enum("spec.strategy.type", strategy.type, ("Recreate", "RollingUpdate"))
    ru = strategy.rolling_update
    if strategy.type == "Recreate" and ru is not None:
        errs.forbidden(
            "spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"
        )
    elif ru is not None:
        p = "spec.strategy.rollingUpdate"
        surge = _int_or_percent(ru.max_surge, f"{p}.maxSurge", errs)
        unavailable = _int_or_percent(ru.max_unavailable, f"{p}.maxUnavailable", errs)
        if isinstance(ru.max_unavailable, str) and unavailable is not None and unavailable > 100:
            errs.invalid(f"{p}.maxUnavailable", ru.max_unavailable, "must not be greater than 100%")
        if surge == 0 and unavailable == 0:
            errs.invalid(
                f"{p}.maxUnavailable", ru.max_unavailable, "may not be 0 when `maxSurge` is 0"
            )


def _int_or_percent(value: int | str | None, path: str, errs: FieldErrors) -> int | None:
    """The number in ``5`` or ``"25%"`` (None when unset or invalid, after a cause)."""
    if value is None:
        return None
    if isinstance(value, int):
        number = value
    elif value.endswith("%") and value[:-1].isdigit():
        number = int(value[:-1])
    else:
        errs.invalid(
            path,
            value,
            "a valid percent string must be a numeric string followed "
            "by an ending '%' (e.g. '1%',  or '93%', regex used for validation is "
            "'[0-9]+%')",
        )
        return None
    if number < 0:
        errs.invalid(path, value, "must be greater than or equal to 0")
        return None
    return number


def _validate_workload(
    spec: Any, old: dict[str, Any] | None, what: str, errs: FieldErrors, *, restart: tuple[str, ...]
) -> None:
    """replicas, selector (required, non-empty, matching the template, immutable), template."""
    errs.non_negative("spec.replicas", getattr(spec, "replicas", None))
    selector = spec.selector
    if selector is None:
        errs.required("spec.selector")
    elif selector_is_empty(selector):
        errs.invalid("spec.selector", selector.to_dict(), f"empty selector is invalid for {what}")
    else:
        validate_selector(selector, "spec.selector", errs)
        labels = spec.template.metadata.labels if spec.template and spec.template.metadata else None
        if not selector_matches(selector, labels):
            errs.invalid(
                "spec.template.metadata.labels",
                labels or {},
                "`selector` does not match template `labels`",
            )
    validate_pod_template(spec.template, "spec.template", errs, restart_policies=restart)
    if old is not None and selector is not None:
        old_selector = (old.get("spec") or {}).get("selector")
        if old_selector is not None:
            validate_immutable(selector.to_dict(), old_selector, "spec.selector", errs)


# --- ReplicaSet --------------------------------------------------------------------------------


class ReplicaSetSpec(AppsModel):
    """The desired state of a replica set."""

    replicas: int | None = opt("Desired number of pods; defaults to 1.")
    min_ready_seconds: int | None = opt("Seconds a new pod must be ready to count as available.")
    selector: LabelSelector = req("Pods this set manages; must match the template labels.")
    template: PodTemplateSpec | None = opt("The pods to create.")


class ReplicaSetStatus(AppsModel):
    """The observed state of a replica set."""

    replicas: int = req("Pods that exist.")
    fully_labeled_replicas: int | None = opt("Pods whose labels match the template's.")
    ready_replicas: int | None = opt("Ready pods.")
    available_replicas: int | None = opt("Pods ready for at least minReadySeconds.")
    terminating_replicas: int | None = opt("Pods being deleted.")
    observed_generation: int | None = opt("Generation the controller last acted on.")
    conditions: list[Condition] | None = opt("Current conditions.")


class ReplicaSet(Object):
    """Keeps a number of identical pods running."""

    schema_prefix: ClassVar[str] = "io.k8s.api.apps.v1"
    spec: ReplicaSetSpec | None = opt("Desired state.")
    status: ReplicaSetStatus | None = opt("Observed state.")


def default_replica_set(rs: ReplicaSet) -> None:
    if rs.spec is None:
        return
    if rs.spec.replicas is None:
        rs.spec.replicas = 1
    if rs.spec.template is not None and rs.spec.template.spec is not None:
        default_pod_spec(rs.spec.template.spec)


def validate_replica_set(rs: ReplicaSet, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    if rs.spec is None:
        errs.required("spec")
        return
    _validate_workload(rs.spec, old, "replicaset", errs, restart=("Always",))
    errs.non_negative("spec.minReadySeconds", rs.spec.min_ready_seconds)


# --- StatefulSet -------------------------------------------------------------------------------


class RollingUpdateStatefulSetStrategy(AppsModel):
    """Rolling update parameters of a stateful set."""

    partition: int | None = opt("Only pods with an ordinal at or above this are updated.")
    max_unavailable: IntOrString | None = opt("Pods that may be unavailable during the update.")


class StatefulSetUpdateStrategy(AppsModel):
    """How pods are updated."""

    type: str | None = opt("RollingUpdate or OnDelete; defaults to RollingUpdate.")
    rolling_update: RollingUpdateStatefulSetStrategy | None = opt("Rolling update parameters.")


class StatefulSetPersistentVolumeClaimRetentionPolicy(AppsModel):
    """What happens to claims from volumeClaimTemplates."""

    when_deleted: str | None = opt("Retain or Delete.")
    when_scaled: str | None = opt("Retain or Delete.")


class StatefulSetSpec(AppsModel):
    """The desired state of a stateful set."""

    replicas: int | None = opt("Desired number of pods; defaults to 1.")
    selector: LabelSelector = req("Pods this set manages; must match the template labels.")
    template: PodTemplateSpec = req("The pods to create.")
    service_name: str | None = opt("Headless service that gives the pods their DNS names.")
    volume_claim_templates: list[dict[str, Any]] | None = opt("Claims created per pod.")
    pod_management_policy: str | None = opt("OrderedReady or Parallel; defaults to OrderedReady.")
    update_strategy: StatefulSetUpdateStrategy | None = opt("How pods are updated.")
    revision_history_limit: int | None = opt("Revisions to keep; defaults to 10.")
    min_ready_seconds: int | None = opt("Seconds a new pod must be ready to count as available.")
    persistent_volume_claim_retention_policy: (
        StatefulSetPersistentVolumeClaimRetentionPolicy | None
    ) = opt("What happens to the claims on scale-down and deletion.")


class StatefulSetStatus(AppsModel):
    """The observed state of a stateful set."""

    observed_generation: int | None = opt("Generation the controller last acted on.")
    replicas: int = req("Pods that exist.")
    ready_replicas: int | None = opt("Ready pods.")
    current_replicas: int | None = opt("Pods at currentRevision.")
    updated_replicas: int | None = opt("Pods at updateRevision.")
    available_replicas: int | None = opt("Pods ready for at least minReadySeconds.")
    current_revision: str | None = opt("Revision of the current pods.")
    update_revision: str | None = opt("Revision being rolled out.")
    collision_count: int | None = opt("Hash collisions seen when naming revisions.")
    conditions: list[Condition] | None = opt("Current conditions.")


class StatefulSet(Object):
    """Pods with stable names and storage, created and updated in order."""

    schema_prefix: ClassVar[str] = "io.k8s.api.apps.v1"
    spec: StatefulSetSpec | None = opt("Desired state.")
    status: StatefulSetStatus | None = opt("Observed state.")


def default_stateful_set(sts: StatefulSet) -> None:
    spec = sts.spec
    if spec is None:
        return
    if spec.replicas is None:
        spec.replicas = 1
    if spec.pod_management_policy is None:
        spec.pod_management_policy = "OrderedReady"
    if spec.update_strategy is None:
        spec.update_strategy = StatefulSetUpdateStrategy()
    if spec.update_strategy.type is None:
        spec.update_strategy.type = "RollingUpdate"
    if spec.update_strategy.type == "RollingUpdate":
        if spec.update_strategy.rolling_update is None:
            spec.update_strategy.rolling_update = RollingUpdateStatefulSetStrategy()
        if spec.update_strategy.rolling_update.partition is None:
            spec.update_strategy.rolling_update.partition = 0
    if spec.revision_history_limit is None:
        spec.revision_history_limit = 10
    if spec.persistent_volume_claim_retention_policy is None:
        spec.persistent_volume_claim_retention_policy = (
            StatefulSetPersistentVolumeClaimRetentionPolicy()
        )
    policy = spec.persistent_volume_claim_retention_policy
    if policy.when_deleted is None:
        policy.when_deleted = "Retain"
    if policy.when_scaled is None:
        policy.when_scaled = "Retain"
    if spec.template.spec is not None:
        default_pod_spec(spec.template.spec)


def validate_stateful_set(sts: StatefulSet, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    spec = sts.spec
    if spec is None:
        errs.required("spec")
        return
    _validate_workload(spec, old, "statefulset", errs, restart=("Always",))
    errs.enum("spec.podManagementPolicy", spec.pod_management_policy, ("OrderedReady", "Parallel"))
    if spec.update_strategy is not None:
        errs.enum(
            "spec.updateStrategy.type", spec.update_strategy.type, ("OnDelete", "RollingUpdate")
        )


# --- DaemonSet ---------------------------------------------------------------------------------


class RollingUpdateDaemonSet(AppsModel):
    """Rolling update parameters of a daemon set."""

    max_unavailable: IntOrString | None = opt("Nodes whose pod may be unavailable; defaults to 1.")
    max_surge: IntOrString | None = opt("Nodes that may run an extra pod; defaults to 0.")


class DaemonSetUpdateStrategy(AppsModel):
    """How pods are updated."""

    type: str | None = opt("RollingUpdate or OnDelete; defaults to RollingUpdate.")
    rolling_update: RollingUpdateDaemonSet | None = opt("Rolling update parameters.")


class DaemonSetSpec(AppsModel):
    """The desired state of a daemon set."""

    selector: LabelSelector = req("Pods this set manages; must match the template labels.")
    template: PodTemplateSpec = req("The pod to run on every node.")
    update_strategy: DaemonSetUpdateStrategy | None = opt("How pods are updated.")
    min_ready_seconds: int | None = opt("Seconds a new pod must be ready to count as available.")
    revision_history_limit: int | None = opt("Revisions to keep; defaults to 10.")


class DaemonSetStatus(AppsModel):
    """The observed state of a daemon set."""

    current_number_scheduled: int = req("Nodes running a pod that should.")
    number_misscheduled: int = req("Nodes running a pod that should not.")
    desired_number_scheduled: int = req("Nodes that should run a pod.")
    number_ready: int = req("Nodes with a ready pod.")
    observed_generation: int | None = opt("Generation the controller last acted on.")
    updated_number_scheduled: int | None = opt("Nodes running the current template.")
    number_available: int | None = opt("Nodes with an available pod.")
    number_unavailable: int | None = opt("Nodes without an available pod.")
    collision_count: int | None = opt("Hash collisions seen when naming revisions.")
    conditions: list[Condition] | None = opt("Current conditions.")


class DaemonSet(Object):
    """One pod on every (selected) node."""

    schema_prefix: ClassVar[str] = "io.k8s.api.apps.v1"
    spec: DaemonSetSpec | None = opt("Desired state.")
    status: DaemonSetStatus | None = opt("Observed state.")


def default_daemon_set(ds: DaemonSet) -> None:
    spec = ds.spec
    if spec is None:
        return
    if spec.update_strategy is None:
        spec.update_strategy = DaemonSetUpdateStrategy()
    if spec.update_strategy.type is None:
        spec.update_strategy.type = "RollingUpdate"
    if spec.update_strategy.type == "RollingUpdate":
        if spec.update_strategy.rolling_update is None:
            spec.update_strategy.rolling_update = RollingUpdateDaemonSet()
        ru = spec.update_strategy.rolling_update
        if ru.max_unavailable is None:
            ru.max_unavailable = 1
        if ru.max_surge is None:
            ru.max_surge = 0
    if spec.revision_history_limit is None:
        spec.revision_history_limit = 10
    if spec.template.spec is not None:
        default_pod_spec(spec.template.spec)


def validate_daemon_set(ds: DaemonSet, old: dict[str, Any] | None, errs: FieldErrors) -> None:
    spec = ds.spec
    if spec is None:
        errs.required("spec")
        return
    _validate_workload(spec, old, "daemonset", errs, restart=("Always",))
    if spec.update_strategy is not None:
        errs.enum(
            "spec.updateStrategy.type", spec.update_strategy.type, ("OnDelete", "RollingUpdate")
        )
