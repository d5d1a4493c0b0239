"""Defaulting and validation of a PodSpec, shared by Pod and every pod template (Deployment,
ReplicaSet, StatefulSet, DaemonSet, Job).

``default_pod_spec`` mutates the model in place, like Kubernetes' ``SetDefaults_*`` functions;
``validate_pod_spec`` only reads and appends causes.
"""

from __future__ import annotations

from collections.abc import Iterable

from .core import (
    VOLUME_SOURCE_FIELDS,
    Container,
    HTTPGetAction,
    NodeSelector,
    PodSecurityContext,
    PodSpec,
    PodTemplateSpec,
    Probe,
    ResourceRequirements,
)
from .validation import (
    FieldErrors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    env_var_name_errors,
    iana_svc_name_errors,
    port_range_errors,
    qualified_name_errors,
    quantity,
    validate_labels,
    validate_selector,
)

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("SCTP", "TCP", "UDP")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
NODE_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
UNSATISFIABLE_ACTIONS = ("DoNotSchedule", "ScheduleAnyway")
_DEFAULT_MODE = 0o644


# --- defaults ----------------------------------------------------------------------------------


def default_pod_spec(spec: PodSpec) -> None:
    """Apply the Kubernetes PodSpec defaults in place."""
    if spec.restart_policy is None:
        spec.restart_policy = "Always"
    if spec.dns_policy is None:
        spec.dns_policy = "ClusterFirst"
    if spec.scheduler_name is None:
        spec.scheduler_name = "default-scheduler"
    if spec.termination_grace_period_seconds is None:
        spec.termination_grace_period_seconds = 30
    if spec.security_context is None:
        spec.security_context = PodSecurityContext()
    if spec.enable_service_links is None:
        spec.enable_service_links = True
    if spec.service_account and not spec.service_account_name:
        spec.service_account_name = spec.service_account
    for container in spec.containers:
        _default_container(container)
    for container in spec.init_containers or ():
        _default_container(container)
    for volume in spec.volumes or ():
        for source in (volume.config_map, volume.secret, volume.projected, volume.downward_api):
            if source is not None and source.default_mode is None:
                source.default_mode = _DEFAULT_MODE
        if volume.host_path is not None and volume.host_path.type is None:
            volume.host_path.type = ""
    for toleration in spec.tolerations or ():
        if toleration.operator is None:
            toleration.operator = "Equal"


def _default_container(c: Container) -> None:
    if c.image_pull_policy is None:
        c.image_pull_policy = default_pull_policy(c.image or "")
    if c.termination_message_path is None:
        c.termination_message_path = "/dev/termination-log"
    if c.termination_message_policy is None:
        c.termination_message_policy = "File"
    for port in c.ports or ():
        if port.protocol is None:
            port.protocol = "TCP"
    if c.resources is None:
        c.resources = ResourceRequirements()
    elif c.resources.limits:
        # A container that only states limits is guaranteed them.
        requests = dict(c.resources.requests or {})
        missing = {k: v for k, v in c.resources.limits.items() if k not in requests}
        if missing:
            requests.update(missing)
            c.resources.requests = requests
    for probe in (c.liveness_probe, c.readiness_probe, c.startup_probe):
        if probe is not None:
            _default_probe(probe)
    if c.lifecycle is not None:
        for handler in (c.lifecycle.post_start, c.lifecycle.pre_stop):
            if handler is not None and handler.http_get is not None:
                _default_http_get(handler.http_get)
    for env in c.env or ():
        field_ref = env.value_from.field_ref if env.value_from is not None else None
        if field_ref is not None and field_ref.api_version is None:
            field_ref.api_version = "v1"


def _default_probe(probe: Probe) -> None:
    if probe.timeout_seconds is None:
        probe.timeout_seconds = 1
    if probe.period_seconds is None:
        probe.period_seconds = 10
    if probe.success_threshold is None:
        probe.success_threshold = 1
    if probe.failure_threshold is None:
        probe.failure_threshold = 3
    if probe.http_get is not None:
        _default_http_get(probe.http_get)


def _default_http_get(action: HTTPGetAction) -> None:
    if action.path is None:
        action.path = "/"
    if action.scheme is None:
        action.scheme = "HTTP"


def default_pull_policy(image: str) -> str:
    """Always for ``:latest`` or untagged images, IfNotPresent for a tag or a digest."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


# --- validation --------------------------------------------------------------------------------


def validate_pod_template(
    template: PodTemplateSpec | None,
    path: str,
    errs: FieldErrors,
    *,
    restart_policies: tuple[str, ...] | None = None,
) -> None:
    """A pod template: labels, a pod spec, and the restart policies the owner allows."""
    if template is None:
        errs.required(path)
        return
    if template.metadata is not None:
        validate_labels(template.metadata.labels, f"{path}.metadata.labels", errs)
    if template.spec is None:
        errs.required(f"{path}.spec")
        return
    validate_pod_spec(template.spec, f"{path}.spec", errs)
    policy = template.spec.restart_policy
    if (
        restart_policies is not None
        and policy in RESTART_POLICIES
        and policy not in (restart_policies)
    ):
        errs.not_supported(f"{path}.spec.restartPolicy", policy, restart_policies)


def validate_pod_spec(spec: PodSpec, path: str, errs: FieldErrors) -> None:
    """Every rule Kubernetes applies to a PodSpec that tugboat acts on."""
    volumes = _validate_volumes(spec, path, errs)
    if not spec.containers:
        errs.required(f"{path}.containers")
    names: set[str] = set()
    for field, containers in (
        ("initContainers", spec.init_containers or ()),
        ("containers", spec.containers),
    ):
        for i, c in enumerate(containers):
            _validate_container(c, f"{path}.{field}[{i}]", names, volumes, errs)
    errs.enum(f"{path}.restartPolicy", spec.restart_policy, RESTART_POLICIES)
    errs.enum(f"{path}.dnsPolicy", spec.dns_policy, DNS_POLICIES)
    if spec.dns_policy == "None" and (spec.dns_config is None or not spec.dns_config.nameservers):
        errs.required(
            f"{path}.dnsConfig.nameservers",
            "must provide at least one DNS nameserver when `dnsPolicy` is None",
        )
    errs.non_negative(
        f"{path}.terminationGracePeriodSeconds", spec.termination_grace_period_seconds
    )
    errs.at_least(f"{path}.activeDeadlineSeconds", spec.active_deadline_seconds, 1)
    validate_labels(spec.node_selector, f"{path}.nodeSelector", errs)
    if spec.service_account_name:
        errs.check(
            f"{path}.serviceAccountName",
            spec.service_account_name,
            dns1123_subdomain_errors(spec.service_account_name),
        )
    if spec.node_name:
        errs.check(f"{path}.nodeName", spec.node_name, dns1123_subdomain_errors(spec.node_name))
    if spec.hostname:
        errs.check(f"{path}.hostname", spec.hostname, dns1123_label_errors(spec.hostname))
    if spec.subdomain:
        errs.check(f"{path}.subdomain", spec.subdomain, dns1123_label_errors(spec.subdomain))
    if spec.priority_class_name:
        errs.check(
            f"{path}.priorityClassName",
            spec.priority_class_name,
            dns1123_subdomain_errors(spec.priority_class_name),
        )
    errs.enum(f"{path}.preemptionPolicy", spec.preemption_policy, ("Never", "PreemptLowerPriority"))
    _validate_tolerations(spec, path, errs)
    _validate_affinity(spec, path, errs)
    for i, tsc in enumerate(spec.topology_spread_constraints or ()):
        p = f"{path}.topologySpreadConstraints[{i}]"
        if tsc.max_skew <= 0:
            errs.invalid(f"{p}.maxSkew", tsc.max_skew, "must be greater than zero")
        if not tsc.topology_key:
            errs.required(f"{p}.topologyKey", "can not be empty")
        errs.enum(f"{p}.whenUnsatisfiable", tsc.when_unsatisfiable, UNSATISFIABLE_ACTIONS)
        validate_selector(tsc.label_selector, f"{p}.labelSelector", errs)
    for i, gate in enumerate(spec.readiness_gates or ()):
        errs.check(
            f"{path}.readinessGates[{i}].conditionType",
            gate.condition_type,
            qualified_name_errors(gate.condition_type),
        )


def _validate_volumes(spec: PodSpec, path: str, errs: FieldErrors) -> set[str]:
    names: set[str] = set()
    for i, volume in enumerate(spec.volumes or ()):
        p = f"{path}.volumes[{i}]"
        if not volume.name:
            errs.required(f"{p}.name")
        else:
            errs.check(f"{p}.name", volume.name, dns1123_label_errors(volume.name))
            if volume.name in names:
                errs.duplicate(f"{p}.name", volume.name)
            names.add(volume.name)
        data = volume.__dict__
        extra = volume.__pydantic_extra__ or {}
        sources = [
            f
            for f in VOLUME_SOURCE_FIELDS
            if _get_alias(data, f) is not None or extra.get(f) is not None
        ]
        if not sources:
            errs.required(p, "must specify a volume type")
        elif len(sources) > 1:
            errs.forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type")
        if volume.host_path is not None and not volume.host_path.path:
            errs.required(f"{p}.hostPath.path")
        if volume.persistent_volume_claim is not None and not (
            volume.persistent_volume_claim.claim_name
        ):
            errs.required(f"{p}.persistentVolumeClaim.claimName")
        for source, field in (
            (volume.config_map, "configMap"),
            (volume.secret, "secret"),
            (volume.projected, "projected"),
            (volume.downward_api, "downwardAPI"),
        ):
            mode = source.default_mode if source is not None else None
            if mode is not None and not 0 <= mode <= 0o777:
                errs.invalid(
                    f"{p}.{field}.defaultMode",
                    mode,
                    "must be a number between 0 and 0777 (octal), both inclusive",
                )
    return names


_VOLUME_ATTRS = {
    "emptyDir": "empty_dir",
    "configMap": "config_map",
    "secret": "secret",
    "hostPath": "host_path",
    "persistentVolumeClaim": "persistent_volume_claim",
    "projected": "projected",
    "downwardAPI": "downward_api",
}


def _get_alias(data: dict[str, object], alias: str) -> object:
    attr = _VOLUME_ATTRS.get(alias)
    return data.get(attr) if attr else None


def _validate_container(
    c: Container, path: str, names: set[str], volumes: set[str], errs: FieldErrors
) -> None:
    if not c.name:
        errs.required(f"{path}.name")
    else:
        errs.check(f"{path}.name", c.name, dns1123_label_errors(c.name))
        if c.name in names:
            errs.duplicate(f"{path}.name", c.name)
        names.add(c.name)
    if not c.image:
        errs.required(f"{path}.image")
    errs.enum(f"{path}.imagePullPolicy", c.image_pull_policy, PULL_POLICIES)
    errs.enum(
        f"{path}.terminationMessagePolicy",
        c.termination_message_policy,
        TERMINATION_MESSAGE_POLICIES,
    )
    port_names: set[str] = set()
    for i, port in enumerate(c.ports or ()):
        p = f"{path}.ports[{i}]"
        if port.name:
            errs.check(f"{p}.name", port.name, iana_svc_name_errors(port.name))
            if port.name in port_names:
                errs.duplicate(f"{p}.name", port.name)
            port_names.add(port.name)
        errs.check(
            f"{p}.containerPort", port.container_port, port_range_errors(port.container_port)
        )
        if port.host_port:
            errs.check(f"{p}.hostPort", port.host_port, port_range_errors(port.host_port))
        errs.enum(f"{p}.protocol", port.protocol, PROTOCOLS)
    for i, env in enumerate(c.env or ()):
        p = f"{path}.env[{i}]"
        if not env.name:
            errs.required(f"{p}.name")
        else:
            errs.check(f"{p}.name", env.name, env_var_name_errors(env.name))
        _validate_env_source(env, p, errs)
    for i, source in enumerate(c.env_from or ()):
        p = f"{path}.envFrom[{i}]"
        if source.prefix:
            errs.check(f"{p}.prefix", source.prefix, env_var_name_errors(source.prefix))
        if (source.config_map_ref is None) == (source.secret_ref is None):
            errs.invalid(p, "", "must specify one of: `configMapRef` or `secretRef`")
    mount_paths: set[str] = set()
    for i, mount in enumerate(c.volume_mounts or ()):
        p = f"{path}.volumeMounts[{i}]"
        if not mount.name:
            errs.required(f"{p}.name")
        elif mount.name not in volumes:
            errs.not_found(f"{p}.name", mount.name)
        if not mount.mount_path:
            errs.required(f"{p}.mountPath")
        elif mount.mount_path in mount_paths:
            errs.invalid(f"{p}.mountPath", mount.mount_path, "must be unique")
        mount_paths.add(mount.mount_path)
        if mount.sub_path and (mount.sub_path.startswith("/") or ".." in mount.sub_path.split("/")):
            errs.invalid(f"{p}.subPath", mount.sub_path, "must be a relative path without '..'")
    _validate_resources(c, f"{path}.resources", errs)
    for field, probe in (
        ("livenessProbe", c.liveness_probe),
        ("readinessProbe", c.readiness_probe),
        ("startupProbe", c.startup_probe),
    ):
        if probe is not None:
            _validate_probe(probe, f"{path}.{field}", errs)
    if c.lifecycle is not None:
        for field, handler in (
            ("postStart", c.lifecycle.post_start),
            ("preStop", c.lifecycle.pre_stop),
        ):
            if handler is None:
                continue
            count = _handlers(handler, ("exec", "http_get", "tcp_socket", "sleep"))
            if count == 0:
                errs.required(f"{path}.lifecycle.{field}", "must specify a handler type")
            elif count > 1:
                errs.forbidden(
                    f"{path}.lifecycle.{field}", "may not specify more than 1 handler type"
                )


def _validate_env_source(env: object, path: str, errs: FieldErrors) -> None:
    source = getattr(env, "value_from", None)
    if source is None:
        return
    if getattr(env, "value", None):
        errs.invalid(f"{path}.valueFrom", "", "may not be specified when `value` is not empty")
    count = _handlers(
        source, ("config_map_key_ref", "secret_key_ref", "field_ref", "resource_field_ref")
    )
    if count == 0:
        errs.invalid(
            f"{path}.valueFrom",
            "",
            "must specify one of: `fieldRef`, "
            "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        )
    elif count > 1:
        errs.invalid(
            f"{path}.valueFrom", "", "may not have more than one field specified at a time"
        )
    for field, ref in (
        ("configMapKeyRef", source.config_map_key_ref),
        ("secretKeyRef", source.secret_key_ref),
    ):
        if ref is not None and not ref.key:
            errs.required(f"{path}.valueFrom.{field}.key")
        if ref is not None and not ref.name:
            errs.required(f"{path}.valueFrom.{field}.name")
    if source.field_ref is not None and not source.field_ref.field_path:
        errs.required(f"{path}.valueFrom.fieldRef.fieldPath")
    if source.resource_field_ref is not None and not source.resource_field_ref.resource:
        errs.required(f"{path}.valueFrom.resourceFieldRef.resource")


def _handlers(obj: object, attrs: Iterable[str]) -> int:
    return sum(1 for a in attrs if getattr(obj, a) is not None)


def _validate_probe(probe: Probe, path: str, errs: FieldErrors) -> None:
    count = _handlers(probe, ("exec", "http_get", "tcp_socket", "grpc"))
    if count == 0:
        errs.required(path, "must specify a handler type")
    elif count > 1:
        errs.forbidden(path, "may not specify more than 1 handler type")
    errs.non_negative(f"{path}.initialDelaySeconds", probe.initial_delay_seconds)
    errs.at_least(f"{path}.timeoutSeconds", probe.timeout_seconds, 1)
    errs.at_least(f"{path}.periodSeconds", probe.period_seconds, 1)
    errs.at_least(f"{path}.successThreshold", probe.success_threshold, 1)
    errs.at_least(f"{path}.failureThreshold", probe.failure_threshold, 1)
    if probe.http_get is not None:
        _validate_named_port(probe.http_get.port, f"{path}.httpGet.port", errs)
        errs.enum(f"{path}.httpGet.scheme", probe.http_get.scheme, ("HTTP", "HTTPS"))
    if probe.tcp_socket is not None:
        _validate_named_port(probe.tcp_socket.port, f"{path}.tcpSocket.port", errs)


def _validate_named_port(port: int | str, path: str, errs: FieldErrors) -> None:
    if isinstance(port, int):
        errs.check(path, port, port_range_errors(port))
    else:
        errs.check(path, port, iana_svc_name_errors(port))


def _validate_resources(c: Container, path: str, errs: FieldErrors) -> None:
    resources = c.resources
    if resources is None:
        return
    limits = {}
    for name, value in (resources.limits or {}).items():
        amount = quantity(value)
        if amount is not None and amount < 0:
            errs.invalid(f"{path}.limits[{name}]", value, "must be greater than or equal to 0")
        limits[name] = amount
    for name, value in (resources.requests or {}).items():
        amount = quantity(value)
        if amount is None:
            continue
        if amount < 0:
            errs.invalid(f"{path}.requests[{name}]", value, "must be greater than or equal to 0")
        limit = limits.get(name)
        if limit is not None and amount > limit:
            errs.invalid(
                f"{path}.requests",
                value,
                f"must be less than or equal to {name} limit of {resources.limits[name]}",
            )  # type: ignore[index]


def _validate_tolerations(spec: PodSpec, path: str, errs: FieldErrors) -> None:
    for i, t in enumerate(spec.tolerations or ()):
        p = f"{path}.tolerations[{i}]"
        if t.key:
            errs.check(f"{p}.key", t.key, qualified_name_errors(t.key))
        elif t.operator != "Exists":
            errs.invalid(
                f"{p}.operator",
                t.operator or "",
                'operator must be Exists when `key` is empty, which means "match '
                'all values and all keys"',
            )
        errs.enum(f"{p}.operator", t.operator, TOLERATION_OPERATORS)
        if t.operator == "Exists" and t.value:
            errs.invalid(
                f"{p}.operator", t.value, "value must be empty when `operator` is 'Exists'"
            )
        if t.effect:
            errs.enum(f"{p}.effect", t.effect, TAINT_EFFECTS)
        if t.toleration_seconds is not None and t.effect != "NoExecute":
            errs.invalid(
                f"{p}.effect",
                t.effect or "",
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            )


def _validate_affinity(spec: PodSpec, path: str, errs: FieldErrors) -> None:
    affinity = spec.affinity
    if affinity is None:
        return
    p = f"{path}.affinity"
    node = affinity.node_affinity
    if node is not None:
        required = node.required_during_scheduling_ignored_during_execution
        if required is not None:
            rp = f"{p}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            validate_node_selector(required, rp, errs)
        preferred = node.preferred_during_scheduling_ignored_during_execution or ()
        for i, pref in enumerate(preferred):
            pp = f"{p}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            _validate_weight(pref.weight, f"{pp}.weight", errs)
            _validate_node_term(pref.preference, f"{pp}.preference", errs)
    for field, pod_affinity in (
        ("podAffinity", affinity.pod_affinity),
        ("podAntiAffinity", affinity.pod_anti_affinity),
    ):
        if pod_affinity is None:
            continue
        fp = f"{p}.{field}"
        for i, term in enumerate(
            pod_affinity.required_during_scheduling_ignored_during_execution or ()
        ):
            tp = f"{fp}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"
            _validate_pod_affinity_term(term, tp, errs)
        for i, weighted in enumerate(
            pod_affinity.preferred_during_scheduling_ignored_during_execution or ()
        ):
            wp = f"{fp}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            _validate_weight(weighted.weight, f"{wp}.weight", errs)
            _validate_pod_affinity_term(weighted.pod_affinity_term, f"{wp}.podAffinityTerm", errs)


def _validate_weight(weight: int, path: str, errs: FieldErrors) -> None:
    if not 1 <= weight <= 100:
        errs.invalid(path, weight, "must be in the range 1-100")


def _validate_pod_affinity_term(term: object, path: str, errs: FieldErrors) -> None:
    key = getattr(term, "topology_key", "")
    if not key:
        errs.required(f"{path}.topologyKey", "can not be empty")
    else:
        errs.check(f"{path}.topologyKey", key, qualified_name_errors(key))
    validate_selector(getattr(term, "label_selector", None), f"{path}.labelSelector", errs)
    validate_selector(getattr(term, "namespace_selector", None), f"{path}.namespaceSelector", errs)


def validate_node_selector(selector: NodeSelector, path: str, errs: FieldErrors) -> None:
    """A required node selector (pod or PersistentVolume node affinity): at least one term,
    each well formed."""
    if not selector.node_selector_terms:
        errs.required(f"{path}.nodeSelectorTerms", "must have at least one node selector term")
    for i, term in enumerate(selector.node_selector_terms):
        _validate_node_term(term, f"{path}.nodeSelectorTerms[{i}]", errs)


def _validate_node_term(term: object, path: str, errs: FieldErrors) -> None:
    for field, attr in (("matchExpressions", "match_expressions"), ("matchFields", "match_fields")):
        for i, req in enumerate(getattr(term, attr) or ()):
            p = f"{path}.{field}[{i}]"
            if req.operator not in NODE_SELECTOR_OPERATORS:
                errs.not_supported(f"{p}.operator", req.operator, NODE_SELECTOR_OPERATORS)
            elif req.operator in ("In", "NotIn") and not req.values:
                errs.required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'")
            elif req.operator in ("Exists", "DoesNotExist") and req.values:
                errs.forbidden(
                    f"{p}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            elif req.operator in ("Gt", "Lt"):
                values = req.values or []
                if len(values) != 1 or not values[0].lstrip("-").isdigit():
                    errs.required(
                        f"{p}.values",
                        "must be specified single value when `operator` is 'Lt' or 'Gt'",
                    )
            if field == "matchExpressions":
                errs.check(f"{p}.key", req.key, qualified_name_errors(req.key))
