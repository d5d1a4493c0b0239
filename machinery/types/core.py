"""``v1`` (the core group): Pod, Node, Service, Endpoints, ConfigMap, Secret, Namespace, Event,
ServiceAccount and the structs they are built of. Rules live in :mod:`.podspec` and
:mod:`.core_rules`; PersistentVolume and PersistentVolumeClaim are in :mod:`.storage`."""

from __future__ import annotations

from typing import Any, ClassVar

from .meta import (
    IntOrString,
    K8sModel,
    LabelSelector,
    MicroTime,
    ObjectMeta,
    Quantity,
    Time,
    opt,
    req,
)


class CoreModel(K8sModel):
    schema_prefix: ClassVar[str] = "io.k8s.api.core.v1"


class Object(CoreModel):
    """Fields every top-level object has."""

    api_version: str | None = opt("Versioned schema of this representation, such as v1.")
    kind: str | None = opt("Kind of object this is, such as Pod.")
    metadata: ObjectMeta | None = opt("Standard object metadata.")


# --- references --------------------------------------------------------------------------------


class LocalObjectReference(CoreModel):
    """A reference to an object in the same namespace, by name."""

    name: str | None = opt("Name of the referent.")


class ObjectReference(CoreModel):
    """A reference to any object."""

    api_version: str | None = opt("API version of the referent.")
    kind: str | None = opt("Kind of the referent.")
    namespace: str | None = opt("Namespace of the referent.")
    name: str | None = opt("Name of the referent.")
    uid: str | None = opt("UID of the referent.")
    resource_version: str | None = opt("Specific resourceVersion the reference is about.")
    field_path: str | None = opt("A field within the referent, e.g. spec.containers{web}.")


# --- environment -------------------------------------------------------------------------------


class ConfigMapKeySelector(CoreModel):
    """A key of a ConfigMap."""

    name: str | None = opt("Name of the ConfigMap.")
    key: str = req("The key to read.")
    optional: bool | None = opt("Whether the ConfigMap or key may be missing.")


class SecretKeySelector(CoreModel):
    """A key of a Secret."""

    name: str | None = opt("Name of the Secret.")
    key: str = req("The key to read.")
    optional: bool | None = opt("Whether the Secret or key may be missing.")


class ObjectFieldSelector(CoreModel):
    """A field of the pod (metadata.name, status.podIP, ...)."""

    api_version: str | None = opt("Version the fieldPath is written in; defaults to v1.")
    field_path: str = req("Path of the field to select.")


class ResourceFieldSelector(CoreModel):
    """A container's resource request or limit (limits.cpu, requests.memory, ...)."""

    container_name: str | None = opt("Container to read; required for volumes.")
    resource: str = req("The resource to read, such as limits.cpu.")
    divisor: Quantity | None = opt("Unit the value is expressed in; defaults to 1.")


class EnvVarSource(CoreModel):
    """Where an environment variable's value comes from."""

    config_map_key_ref: ConfigMapKeySelector | None = opt("A key of a ConfigMap.")
    secret_key_ref: SecretKeySelector | None = opt("A key of a Secret.")
    field_ref: ObjectFieldSelector | None = opt("A field of the pod.")
    resource_field_ref: ResourceFieldSelector | None = opt("A resource of a container.")


class EnvVar(CoreModel):
    """An environment variable of a container."""

    name: str = req("Name of the variable.")
    value: str | None = opt("Literal value; $(VAR) references to earlier variables expand.")
    value_from: EnvVarSource | None = opt("Source of the value; not with value.")


class ConfigMapEnvSource(CoreModel):
    """All keys of a ConfigMap as variables."""

    name: str | None = opt("Name of the ConfigMap.")
    optional: bool | None = opt("Whether the ConfigMap may be missing.")


class SecretEnvSource(CoreModel):
    """All keys of a Secret as variables."""

    name: str | None = opt("Name of the Secret.")
    optional: bool | None = opt("Whether the Secret may be missing.")


class EnvFromSource(CoreModel):
    """A set of variables taken from a ConfigMap or a Secret."""

    prefix: str | None = opt("Prefix prepended to every key.")
    config_map_ref: ConfigMapEnvSource | None = opt("The ConfigMap to read.")
    secret_ref: SecretEnvSource | None = opt("The Secret to read.")


# --- containers --------------------------------------------------------------------------------


class ContainerPort(CoreModel):
    """A port a container listens on (informational, and the target of named ports)."""

    name: str | None = opt("IANA service name other objects may refer to.")
    container_port: int = req("Port number in the container, 1-65535.")
    host_port: int | None = opt("Port to expose on the host; rarely needed.")
    host_ip: str | None = opt("Host IP the host port binds to.", alias="hostIP")
    protocol: str | None = opt("TCP, UDP or SCTP; defaults to TCP.")


class ResourceRequirements(CoreModel):
    """Compute resources: what the container is guaranteed and what it may not exceed."""

    requests: dict[str, Quantity] | None = opt(
        "Minimum resources, used for scheduling; defaults to limits when only those are set."
    )
    limits: dict[str, Quantity] | None = opt("Maximum resources the container may use.")


class VolumeMount(CoreModel):
    """Where a pod volume appears inside a container."""

    name: str = req("Name of a volume of the pod.")
    mount_path: str = req("Absolute path in the container.")
    sub_path: str | None = opt("Path inside the volume to mount instead of its root.")
    read_only: bool | None = opt("Mount read-only.")
    mount_propagation: str | None = opt("None, HostToContainer or Bidirectional.")


class ExecAction(CoreModel):
    """Run a command in the container; exit status 0 is success."""

    command: list[str] | None = opt("Command line, not run in a shell.")


class HTTPHeader(CoreModel):
    """A custom HTTP header."""

    name: str = req("Header name.")
    value: str = req("Header value.")


class HTTPGetAction(CoreModel):
    """An HTTP GET; any status from 200 to 399 is success."""

    path: str | None = opt("Path to request; defaults to /.")
    port: IntOrString = req("Port number or name of a container port.")
    host: str | None = opt("Host to connect to; defaults to the pod IP.")
    scheme: str | None = opt("HTTP or HTTPS; defaults to HTTP.")
    http_headers: list[HTTPHeader] | None = opt("Extra request headers.")


class TCPSocketAction(CoreModel):
    """Open a TCP connection; success when it connects."""

    port: IntOrString = req("Port number or name of a container port.")
    host: str | None = opt("Host to connect to; defaults to the pod IP.")


class GRPCAction(CoreModel):
    """A gRPC health check."""

    port: int = req("Port number of the gRPC service.")
    service: str | None = opt("Service name sent in the health check request.")


class Probe(CoreModel):
    """A periodic health check of a container."""

    exec: ExecAction | None = opt("Run a command.")
    http_get: HTTPGetAction | None = opt("Make an HTTP GET request.")
    tcp_socket: TCPSocketAction | None = opt("Open a TCP connection.")
    grpc: GRPCAction | None = opt("Make a gRPC health check.")
    initial_delay_seconds: int | None = opt("Seconds after start before the first probe.")
    timeout_seconds: int | None = opt("Seconds before a probe times out; defaults to 1.")
    period_seconds: int | None = opt("Seconds between probes; defaults to 10.")
    success_threshold: int | None = opt(
        "Consecutive successes to count as healthy after a failure; defaults to 1."
    )
    failure_threshold: int | None = opt("Consecutive failures to count as failed; defaults to 3.")
    termination_grace_period_seconds: int | None = opt(
        "Grace period when a failed liveness probe kills the container."
    )


class SleepAction(CoreModel):
    """Sleep for a while."""

    seconds: int = req("Seconds to sleep.")


class LifecycleHandler(CoreModel):
    """An action run at a lifecycle event."""

    exec: ExecAction | None = opt("Run a command.")
    http_get: HTTPGetAction | None = opt("Make an HTTP GET request.")
    tcp_socket: TCPSocketAction | None = opt("Deprecated; accepted but not run.")
    sleep: SleepAction | None = opt("Sleep.")


class Lifecycle(CoreModel):
    """Hooks run after a container starts and before it stops."""

    post_start: LifecycleHandler | None = opt("Run right after the container is created.")
    pre_stop: LifecycleHandler | None = opt("Run before the container is sent SIGTERM.")


class Capabilities(CoreModel):
    """Linux capabilities to add or drop."""

    add: list[str] | None = opt("Capabilities to add.")
    drop: list[str] | None = opt("Capabilities to drop.")


class SELinuxOptions(CoreModel):
    """SELinux labels."""

    user: str | None = opt("SELinux user.")
    role: str | None = opt("SELinux role.")
    type: str | None = opt("SELinux type.")
    level: str | None = opt("SELinux level.")


class SeccompProfile(CoreModel):
    """A seccomp profile."""

    type: str = req("RuntimeDefault, Unconfined or Localhost.")
    localhost_profile: str | None = opt("Profile file for type Localhost.")


class SecurityContext(CoreModel):
    """Security settings of one container; override the pod's."""

    privileged: bool | None = opt("Run privileged.")
    run_as_user: int | None = opt("UID of the container process.")
    run_as_group: int | None = opt("GID of the container process.")
    run_as_non_root: bool | None = opt("Refuse to start as UID 0.")
    read_only_root_filesystem: bool | None = opt("Mount the root filesystem read-only.")
    allow_privilege_escalation: bool | None = opt("Allow setuid binaries to gain privileges.")
    capabilities: Capabilities | None = opt("Capabilities to add or drop.")
    se_linux_options: SELinuxOptions | None = opt("SELinux labels.")
    seccomp_profile: SeccompProfile | None = opt("Seccomp profile.")
    proc_mount: str | None = opt("Default or Unmasked.")


class Container(CoreModel):
    """A container of a pod."""

    name: str = req("Name, a DNS label unique within the pod.")
    image: str | None = opt("Image reference, such as nginx:1.27.")
    command: list[str] | None = opt("Entrypoint; replaces the image's ENTRYPOINT.")
    args: list[str] | None = opt("Arguments; replace the image's CMD.")
    working_dir: str | None = opt("Working directory; defaults to the image's.")
    ports: list[ContainerPort] | None = opt("Ports the container listens on.")
    env_from: list[EnvFromSource] | None = opt("Sources of many variables at once.")
    env: list[EnvVar] | None = opt("Environment variables.")
    resources: ResourceRequirements | None = opt("Compute resource requests and limits.")
    volume_mounts: list[VolumeMount] | None = opt("Pod volumes to mount.")
    liveness_probe: Probe | None = opt("Restart the container when this probe fails.")
    readiness_probe: Probe | None = opt("Remove the pod from endpoints while this fails.")
    startup_probe: Probe | None = opt("Hold the other probes until this succeeds once.")
    lifecycle: Lifecycle | None = opt("postStart and preStop hooks.")
    termination_message_path: str | None = opt(
        "File the container writes its termination message to; defaults to /dev/termination-log."
    )
    termination_message_policy: str | None = opt("File or FallbackToLogsOnError; defaults to File.")
    image_pull_policy: str | None = opt(
        "Always, Never or IfNotPresent; defaults to Always for :latest or untagged images, "
        "IfNotPresent otherwise."
    )
    security_context: SecurityContext | None = opt("Security settings.")
    restart_policy: str | None = opt("Always for a sidecar init container.")
    stdin: bool | None = opt("Keep a stdin open for attach.")
    stdin_once: bool | None = opt("Close stdin after the first attach ends.")
    tty: bool | None = opt("Allocate a TTY.")


# --- volumes -----------------------------------------------------------------------------------


class KeyToPath(CoreModel):
    """A key projected into a file."""

    key: str = req("The key to project.")
    path: str = req("Relative file path.")
    mode: int | None = opt("File mode bits (0-0777).")


class EmptyDirVolumeSource(CoreModel):
    """A scratch directory that lives as long as the pod."""

    medium: str | None = opt("Empty for node disk, Memory for tmpfs.")
    size_limit: Quantity | None = opt("Maximum size.")


class ConfigMapVolumeSource(CoreModel):
    """A ConfigMap's keys as files."""

    name: str | None = opt("Name of the ConfigMap.")
    items: list[KeyToPath] | None = opt("Keys to project; all keys when empty.")
    default_mode: int | None = opt("Mode bits of the files; defaults to 0644.")
    optional: bool | None = opt("Whether the ConfigMap may be missing.")


class SecretVolumeSource(CoreModel):
    """A Secret's keys as files."""

    secret_name: str | None = opt("Name of the Secret.")
    items: list[KeyToPath] | None = opt("Keys to project; all keys when empty.")
    default_mode: int | None = opt("Mode bits of the files; defaults to 0644.")
    optional: bool | None = opt("Whether the Secret may be missing.")


class HostPathVolumeSource(CoreModel):
    """A file or directory of the node."""

    path: str = req("Path on the node.")
    type: str | None = opt("Check before mounting: DirectoryOrCreate, Directory, File, ...")


class PersistentVolumeClaimVolumeSource(CoreModel):
    """A claim in the pod's namespace."""

    claim_name: str = req("Name of the PersistentVolumeClaim.")
    read_only: bool | None = opt("Mount read-only.")


class DownwardAPIVolumeFile(CoreModel):
    """A pod field written to a file."""

    path: str = req("Relative file path.")
    field_ref: ObjectFieldSelector | None = opt("A field of the pod.")
    resource_field_ref: ResourceFieldSelector | None = opt("A resource of a container.")
    mode: int | None = opt("File mode bits.")


class DownwardAPIVolumeSource(CoreModel):
    """Pod fields as files."""

    items: list[DownwardAPIVolumeFile] | None = opt("Files to write.")
    default_mode: int | None = opt("Mode bits of the files; defaults to 0644.")


class DownwardAPIProjection(CoreModel):
    """Pod fields in a projected volume."""

    items: list[DownwardAPIVolumeFile] | None = opt("Files to write.")


class ConfigMapProjection(CoreModel):
    """A ConfigMap in a projected volume."""

    name: str | None = opt("Name of the ConfigMap.")
    items: list[KeyToPath] | None = opt("Keys to project.")
    optional: bool | None = opt("Whether the ConfigMap may be missing.")


class SecretProjection(CoreModel):
    """A Secret in a projected volume."""

    name: str | None = opt("Name of the Secret.")
    items: list[KeyToPath] | None = opt("Keys to project.")
    optional: bool | None = opt("Whether the Secret may be missing.")


class ServiceAccountTokenProjection(CoreModel):
    """A service account token in a projected volume."""

    audience: str | None = opt("Intended audience of the token.")
    expiration_seconds: int | None = opt("Requested lifetime; defaults to 1 hour.")
    path: str = req("Relative file path.")


class VolumeProjection(CoreModel):
    """One source of a projected volume."""

    config_map: ConfigMapProjection | None = opt("A ConfigMap.")
    secret: SecretProjection | None = opt("A Secret.")
    downward_api: DownwardAPIProjection | None = opt("Pod fields.", alias="downwardAPI")
    service_account_token: ServiceAccountTokenProjection | None = opt("A token.")


class ProjectedVolumeSource(CoreModel):
    """Several sources merged into one directory."""

    sources: list[VolumeProjection] | None = opt("The sources.")
    default_mode: int | None = opt("Mode bits of the files; defaults to 0644.")


class Volume(CoreModel):
    """A named volume of a pod; exactly one source is set."""

    name: str = req("Name, a DNS label unique within the pod.")
    empty_dir: EmptyDirVolumeSource | None = opt("A scratch directory.")
    config_map: ConfigMapVolumeSource | None = opt("A ConfigMap's keys as files.")
    secret: SecretVolumeSource | None = opt("A Secret's keys as files.")
    host_path: HostPathVolumeSource | None = opt("A path on the node.")
    persistent_volume_claim: PersistentVolumeClaimVolumeSource | None = opt("A volume claim.")
    projected: ProjectedVolumeSource | None = opt("Several sources in one directory.")
    downward_api: DownwardAPIVolumeSource | None = opt("Pod fields as files.", alias="downwardAPI")


#: Volume source fields (by alias) that count towards "exactly one volume type".
VOLUME_SOURCE_FIELDS: tuple[str, ...] = (
    "emptyDir",
    "configMap",
    "secret",
    "hostPath",
    "persistentVolumeClaim",
    "projected",
    "downwardAPI",
    "nfs",
    "csi",
    "ephemeral",
    "iscsi",
    "gitRepo",
    "image",
    "awsElasticBlockStore",
    "gcePersistentDisk",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "fc",
    "flexVolume",
    "flocker",
    "glusterfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
)


# --- scheduling --------------------------------------------------------------------------------


class NodeSelectorRequirement(CoreModel):
    """A requirement on a node label or field."""

    key: str = req("Label key.")
    operator: str = req("In, NotIn, Exists, DoesNotExist, Gt or Lt.")
    values: list[str] | None = opt("Values; one integer for Gt and Lt.")


class NodeSelectorTerm(CoreModel):
    """Requirements ANDed together."""

    match_expressions: list[NodeSelectorRequirement] | None = opt("On node labels.")
    match_fields: list[NodeSelectorRequirement] | None = opt("On node fields.")


class NodeSelector(CoreModel):
    """Terms ORed together."""

    node_selector_terms: list[NodeSelectorTerm] = req("The terms; one must match.")


class PreferredSchedulingTerm(CoreModel):
    """A weighted node preference."""

    weight: int = req("Weight 1-100.")
    preference: NodeSelectorTerm = req("The preferred term.")


class NodeAffinity(CoreModel):
    """Constraints and preferences on the node."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = opt(
        "Nodes the pod may run on."
    )
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = (
        opt("Nodes the pod prefers.")
    )


class PodAffinityTerm(CoreModel):
    """Pods matching the selector within a topology domain."""

    label_selector: LabelSelector | None = opt("Pods to consider.")
    namespaces: list[str] | None = opt("Namespaces to look in; the pod's own when empty.")
    namespace_selector: LabelSelector | None = opt("Namespaces to look in, by label.")
    topology_key: str = req("Node label that defines the domain, such as kubernetes.io/hostname.")
    match_label_keys: list[str] | None = opt("Pod label keys added to the selector.")
    mismatch_label_keys: list[str] | None = opt("Pod label keys added as NotIn.")


class WeightedPodAffinityTerm(CoreModel):
    """A weighted pod (anti-)affinity preference."""

    weight: int = req("Weight 1-100.")
    pod_affinity_term: PodAffinityTerm = req("The term.")


class PodAffinity(CoreModel):
    """Run near pods matching the terms."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = opt(
        "Terms that must hold."
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = (
        opt("Terms the pod prefers.")
    )


class PodAntiAffinity(CoreModel):
    """Run away from pods matching the terms."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = opt(
        "Terms that must hold."
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = (
        opt("Terms the pod prefers.")
    )


class Affinity(CoreModel):
    """Scheduling constraints."""

    node_affinity: NodeAffinity | None = opt("Constraints on the node.")
    pod_affinity: PodAffinity | None = opt("Co-location with other pods.")
    pod_anti_affinity: PodAntiAffinity | None = opt("Separation from other pods.")


class Toleration(CoreModel):
    """Lets the pod schedule onto (or stay on) nodes with a matching taint."""

    key: str | None = opt("Taint key; empty with Exists matches every taint.")
    operator: str | None = opt("Exists or Equal; defaults to Equal.")
    value: str | None = opt("Taint value for Equal.")
    effect: str | None = opt("NoSchedule, PreferNoSchedule or NoExecute; empty matches all.")
    toleration_seconds: int | None = opt("How long a NoExecute taint is tolerated.")


class TopologySpreadConstraint(CoreModel):
    """Spread matching pods evenly across topology domains."""

    max_skew: int = req("Largest allowed difference in matching pods between domains.")
    topology_key: str = req("Node label that defines the domains.")
    when_unsatisfiable: str = req("DoNotSchedule or ScheduleAnyway.")
    label_selector: LabelSelector | None = opt("Pods to count.")
    min_domains: int | None = opt("Minimum number of eligible domains.")
    node_affinity_policy: str | None = opt("Honor or Ignore.")
    node_taints_policy: str | None = opt("Honor or Ignore.")
    match_label_keys: list[str] | None = opt("Pod label keys added to the selector.")


class PodDNSConfigOption(CoreModel):
    """A resolver option."""

    name: str | None = opt("Option name.")
    value: str | None = opt("Option value.")


class PodDNSConfig(CoreModel):
    """Resolver settings merged with those dnsPolicy gives."""

    nameservers: list[str] | None = opt("Name server IPs.")
    searches: list[str] | None = opt("Search domains.")
    options: list[PodDNSConfigOption] | None = opt("Resolver options.")


class HostAlias(CoreModel):
    """An /etc/hosts entry."""

    ip: str = req("IP address.")
    hostnames: list[str] | None = opt("Host names for the IP.")


class PodSecurityContext(CoreModel):
    """Security settings applied to every container of the pod."""

    run_as_user: int | None = opt("UID of the container processes.")
    run_as_group: int | None = opt("GID of the container processes.")
    run_as_non_root: bool | None = opt("Refuse to start as UID 0.")
    fs_group: int | None = opt("Group owning the volumes.")
    supplemental_groups: list[int] | None = opt("Extra groups of the processes.")
    se_linux_options: SELinuxOptions | None = opt("SELinux labels.")
    seccomp_profile: SeccompProfile | None = opt("Seccomp profile.")
    sysctls: list[dict[str, Any]] | None = opt("Namespaced sysctls.")


class PodReadinessGate(CoreModel):
    """An extra condition that must be True for the pod to be ready."""

    condition_type: str = req("The condition type in status.conditions.")


class PodSpec(CoreModel):
    """The desired state of a pod."""

    containers: list[Container] = req("The containers; at least one.")
    init_containers: list[Container] | None = opt(
        "Containers run to completion, in order, before the others start."
    )
    ephemeral_containers: list[dict[str, Any]] | None = opt("Debug containers.")
    volumes: list[Volume] | None = opt("Volumes the containers may mount.")
    restart_policy: str | None = opt("Always, OnFailure or Never; defaults to Always.")
    termination_grace_period_seconds: int | None = opt(
        "Seconds between SIGTERM and SIGKILL on deletion; defaults to 30."
    )
    active_deadline_seconds: int | None = opt("Seconds the pod may run before it is failed.")
    dns_policy: str | None = opt(
        "ClusterFirst, ClusterFirstWithHostNet, Default or None; defaults to ClusterFirst."
    )
    dns_config: PodDNSConfig | None = opt("Resolver settings.")
    node_selector: dict[str, str] | None = opt("Node labels the node must have.")
    service_account_name: str | None = opt("Service account the pod runs as.")
    service_account: str | None = opt("Deprecated alias of serviceAccountName.")
    automount_service_account_token: bool | None = opt("Mount the service account token.")
    node_name: str | None = opt("Node the pod is bound to; set by the scheduler.")
    host_network: bool | None = opt("Use the node's network namespace.")
    host_pid: bool | None = opt("Use the node's PID namespace.", alias="hostPID")
    host_ipc: bool | None = opt("Use the node's IPC namespace.", alias="hostIPC")
    share_process_namespace: bool | None = opt("Share one PID namespace between containers.")
    security_context: PodSecurityContext | None = opt("Pod-level security settings.")
    image_pull_secrets: list[LocalObjectReference] | None = opt("Secrets for private registries.")
    hostname: str | None = opt("Host name of the pod; defaults to the pod name.")
    subdomain: str | None = opt("Gives the pod the FQDN hostname.subdomain.ns.svc.")
    affinity: Affinity | None = opt("Scheduling constraints.")
    scheduler_name: str | None = opt(
        "Scheduler that places the pod; defaults to default-scheduler."
    )
    tolerations: list[Toleration] | None = opt("Taints the pod tolerates.")
    host_aliases: list[HostAlias] | None = opt("Extra /etc/hosts entries.")
    priority_class_name: str | None = opt("PriorityClass that gives the pod its priority.")
    priority: int | None = opt("Priority, filled in from priorityClassName.")
    preemption_policy: str | None = opt("PreemptLowerPriority or Never.")
    readiness_gates: list[PodReadinessGate] | None = opt("Extra readiness conditions.")
    runtime_class_name: str | None = opt("RuntimeClass to run the pod with.")
    enable_service_links: bool | None = opt(
        "Inject service environment variables; defaults to true."
    )
    topology_spread_constraints: list[TopologySpreadConstraint] | None = opt(
        "How to spread matching pods across domains."
    )
    overhead: dict[str, Quantity] | None = opt("Resources the runtime uses per pod.")
    set_hostname_as_fqdn: bool | None = opt(
        "Use the FQDN as the hostname.", alias="setHostnameAsFQDN"
    )


# --- pod status --------------------------------------------------------------------------------


class PodCondition(CoreModel):
    """A condition of a pod: PodScheduled, Initialized, ContainersReady, Ready, ..."""

    type: str = req("Condition type.")
    status: str = req("True, False or Unknown.")
    last_probe_time: Time | None = opt("When the condition was last probed.")
    last_transition_time: Time | None = opt("When status last changed.")
    reason: str | None = opt("CamelCase reason of the last transition.")
    message: str | None = opt("Human-readable detail.")


class ContainerStateWaiting(CoreModel):
    """Not running yet."""

    reason: str | None = opt("Why, such as ContainerCreating or CrashLoopBackOff.")
    message: str | None = opt("Detail.")


class ContainerStateRunning(CoreModel):
    """Running."""

    started_at: Time | None = opt("When the container started.")


class ContainerStateTerminated(CoreModel):
    """Exited."""

    exit_code: int = req("Exit status.")
    signal: int | None = opt("Signal that killed it.")
    reason: str | None = opt("Why, such as Completed, Error or OOMKilled.")
    message: str | None = opt("Detail.")
    started_at: Time | None = opt("When it started.")
    finished_at: Time | None = opt("When it exited.")
    container_id: str | None = opt("Runtime id.", alias="containerID")


class ContainerState(CoreModel):
    """Exactly one of waiting, running, terminated."""

    waiting: ContainerStateWaiting | None = opt("Not running yet.")
    running: ContainerStateRunning | None = opt("Running.")
    terminated: ContainerStateTerminated | None = opt("Exited.")


class ContainerStatus(CoreModel):
    """What the kubelet knows about one container."""

    name: str = req("Container name.")
    state: ContainerState | None = opt("Current state.")
    last_state: ContainerState | None = opt("State of the previous run.")
    ready: bool = req("Whether the readiness probe passes.")
    restart_count: int = req("Times the container was restarted.")
    image: str = req("Image the container runs.")
    image_id: str = req("Image id (digest) the container runs.", alias="imageID")
    container_id: str | None = opt("Runtime id, such as containerd://abc.", alias="containerID")
    started: bool | None = opt("Whether the startup probe has passed.")


class PodIP(CoreModel):
    """One IP of a pod."""

    ip: str = req("The address.")


class PodStatus(CoreModel):
    """The observed state of a pod."""

    phase: str | None = opt("Pending, Running, Succeeded, Failed or Unknown.")
    conditions: list[PodCondition] | None = opt("Current conditions.")
    message: str | None = opt("Why the pod is in this phase.")
    reason: str | None = opt("CamelCase reason, such as Evicted.")
    nominated_node_name: str | None = opt("Node a preemption made room on.")
    host_ip: str | None = opt("IP of the node.", alias="hostIP")
    host_ips: list[PodIP] | None = opt("IPs of the node.", alias="hostIPs")
    pod_ip: str | None = opt("IP of the pod.", alias="podIP")
    pod_ips: list[PodIP] | None = opt("IPs of the pod.", alias="podIPs")
    start_time: Time | None = opt("When the kubelet accepted the pod.")
    init_container_statuses: list[ContainerStatus] | None = opt("Init containers.")
    container_statuses: list[ContainerStatus] | None = opt("Containers.")
    qos_class: str | None = opt("Guaranteed, Burstable or BestEffort.")


class Pod(Object):
    """A group of containers scheduled onto one node."""

    spec: PodSpec | None = opt("Desired state.")
    status: PodStatus | None = opt("Observed state.")


class PodTemplateSpec(CoreModel):
    """The pod a controller creates."""

    metadata: ObjectMeta | None = opt("Metadata of the created pods.")
    spec: PodSpec | None = opt("Spec of the created pods.")


# --- node --------------------------------------------------------------------------------------


class Taint(CoreModel):
    """Repels pods that do not tolerate it."""

    key: str = req("Taint key.")
    value: str | None = opt("Taint value.")
    effect: str = req("NoSchedule, PreferNoSchedule or NoExecute.")
    time_added: Time | None = opt("When a NoExecute taint was added.")


class NodeSpec(CoreModel):
    """The desired state of a node."""

    pod_cidr: str | None = opt("Pod IP range of this node.", alias="podCIDR")
    pod_cidrs: list[str] | None = opt("Pod IP ranges (one per family).", alias="podCIDRs")
    provider_id: str | None = opt("Cloud provider id.", alias="providerID")
    unschedulable: bool | None = opt("Keep new pods off (cordon).")
    taints: list[Taint] | None = opt("Taints of the node.")


class NodeCondition(CoreModel):
    """A condition of a node: Ready, MemoryPressure, DiskPressure, ..."""

    type: str = req("Condition type.")
    status: str = req("True, False or Unknown.")
    last_heartbeat_time: Time | None = opt("When last reported.")
    last_transition_time: Time | None = opt("When status last changed.")
    reason: str | None = opt("CamelCase reason.")
    message: str | None = opt("Detail.")


class NodeAddress(CoreModel):
    """An address of a node."""

    type: str = req("Hostname, InternalIP, ExternalIP, InternalDNS or ExternalDNS.")
    address: str = req("The address.")


class NodeSystemInfo(CoreModel):
    """Versions and ids reported by the node."""

    machine_id: str | None = opt("Machine id.", alias="machineID")
    system_uuid: str | None = opt("System UUID.", alias="systemUUID")
    boot_id: str | None = opt("Boot id.", alias="bootID")
    kernel_version: str | None = opt("Kernel version.")
    os_image: str | None = opt("OS image.")
    container_runtime_version: str | None = opt("Runtime, such as containerd://1.7.")
    kubelet_version: str | None = opt("Kubelet version.")
    kube_proxy_version: str | None = opt("Proxy version.")
    operating_system: str | None = opt("linux.")
    architecture: str | None = opt("amd64, arm64, ...")


class DaemonEndpoint(CoreModel):
    """A port."""

    port: int = req("Port number.", alias="Port")


class NodeDaemonEndpoints(CoreModel):
    """Ports of the node's daemons."""

    kubelet_endpoint: DaemonEndpoint | None = opt("The kubelet's port.")


class ContainerImage(CoreModel):
    """An image present on the node."""

    names: list[str] | None = opt("Names and digests of the image.")
    size_bytes: int | None = opt("Size in bytes.")


class NodeStatus(CoreModel):
    """The observed state of a node."""

    capacity: dict[str, Quantity] | None = opt("Total resources.")
    allocatable: dict[str, Quantity] | None = opt(
        "Resources available to pods; defaults to capacity."
    )
    phase: str | None = opt("Deprecated.")
    conditions: list[NodeCondition] | None = opt("Current conditions.")
    addresses: list[NodeAddress] | None = opt("Addresses of the node.")
    daemon_endpoints: NodeDaemonEndpoints | None = opt("Ports of the node's daemons.")
    node_info: NodeSystemInfo | None = opt("Versions and ids.")
    images: list[ContainerImage] | None = opt("Images on the node.")
    volumes_in_use: list[str] | None = opt("Volumes in use.")


class Node(Object):
    """A machine pods run on."""

    spec: NodeSpec | None = opt("Desired state.")
    status: NodeStatus | None = opt("Observed state.")


# --- service, endpoints ------------------------------------------------------------------------


class ServicePort(CoreModel):
    """A port the service exposes."""

    name: str | None = opt("Name, required when there are several ports.")
    protocol: str | None = opt("TCP, UDP or SCTP; defaults to TCP.")
    app_protocol: str | None = opt("Application protocol hint.")
    port: int = req("Port the service listens on.")
    target_port: IntOrString | None = opt(
        "Port number or container port name on the pods; defaults to port."
    )
    node_port: int | None = opt("Port on every node for NodePort and LoadBalancer services.")


class ClientIPConfig(CoreModel):
    """ClientIP affinity settings."""

    timeout_seconds: int | None = opt("Stickiness timeout; defaults to 10800.")


class SessionAffinityConfig(CoreModel):
    """Session affinity settings."""

    client_ip: ClientIPConfig | None = opt("ClientIP settings.", alias="clientIP")


class ServiceSpec(CoreModel):
    """The desired state of a service."""

    type: str | None = opt(
        "ClusterIP, NodePort, LoadBalancer or ExternalName; defaults to ClusterIP."
    )
    selector: dict[str, str] | None = opt("Pods that back the service, by label.")
    ports: list[ServicePort] | None = opt("Ports the service exposes.")
    cluster_ip: str | None = opt(
        "Virtual IP, allocated when empty; None for headless.", alias="clusterIP"
    )
    cluster_ips: list[str] | None = opt("Virtual IPs, one per family.", alias="clusterIPs")
    ip_families: list[str] | None = opt("IPv4 and/or IPv6.")
    ip_family_policy: str | None = opt("SingleStack, PreferDualStack or RequireDualStack.")
    external_ips: list[str] | None = opt(
        "Extra IPs the service accepts traffic on.", alias="externalIPs"
    )
    external_name: str | None = opt("DNS name an ExternalName service aliases.")
    session_affinity: str | None = opt("None or ClientIP; defaults to None.")
    session_affinity_config: SessionAffinityConfig | None = opt("Affinity settings.")
    load_balancer_ip: str | None = opt("Deprecated.", alias="loadBalancerIP")
    load_balancer_source_ranges: list[str] | None = opt("Client CIDRs allowed.")
    load_balancer_class: str | None = opt("Load balancer implementation.")
    allocate_load_balancer_node_ports: bool | None = opt("Allocate node ports for a LoadBalancer.")
    external_traffic_policy: str | None = opt("Cluster or Local.")
    internal_traffic_policy: str | None = opt("Cluster or Local.")
    health_check_node_port: int | None = opt("Health check port for Local traffic policy.")
    publish_not_ready_addresses: bool | None = opt("Include not-ready pods in DNS and endpoints.")


class LoadBalancerIngress(CoreModel):
    """An address of a load balancer."""

    ip: str | None = opt("IP address.")
    hostname: str | None = opt("Host name.")


class LoadBalancerStatus(CoreModel):
    """Addresses of a load balancer."""

    ingress: list[LoadBalancerIngress] | None = opt("The addresses.")


class ServiceStatus(CoreModel):
    """The observed state of a service."""

    load_balancer: LoadBalancerStatus | None = opt("Load balancer addresses.")
    conditions: list[dict[str, Any]] | None = opt("Current conditions.")


class Service(Object):
    """A stable virtual IP and DNS name in front of a set of pods."""

    spec: ServiceSpec | None = opt("Desired state.")
    status: ServiceStatus | None = opt("Observed state.")


class EndpointAddress(CoreModel):
    """One backend address."""

    ip: str = req("IP address.")
    hostname: str | None = opt("Host name.")
    node_name: str | None = opt("Node the backend runs on.")
    target_ref: ObjectReference | None = opt("The backing pod.")


class EndpointPort(CoreModel):
    """A backend port."""

    name: str | None = opt("Name, matching the service port's.")
    port: int = req("Port number.")
    protocol: str | None = opt("TCP, UDP or SCTP; defaults to TCP.")
    app_protocol: str | None = opt("Application protocol hint.")


class EndpointSubset(CoreModel):
    """Addresses that share the same ports."""

    addresses: list[EndpointAddress] | None = opt("Ready addresses.")
    not_ready_addresses: list[EndpointAddress] | None = opt("Addresses not ready yet.")
    ports: list[EndpointPort] | None = opt("The ports.")


class Endpoints(Object):
    """The addresses backing a service (legacy API; see EndpointSlice)."""

    subsets: list[EndpointSubset] | None = opt("Address and port sets.")


# --- config, identity, namespaces, events ------------------------------------------------------


class ConfigMap(Object):
    """Non-secret configuration as key/value pairs."""

    data: dict[str, str] | None = opt("UTF-8 values.")
    binary_data: dict[str, str] | None = opt("Base64-encoded binary values.")
    immutable: bool | None = opt("When true, data can no longer change.")


class Secret(Object):
    """Sensitive data as key/value pairs."""

    data: dict[str, str] | None = opt("Base64-encoded values.")
    string_data: dict[str, str] | None = opt(
        "Plain values merged into data on write; never read back."
    )
    type: str | None = opt("How the data is used; defaults to Opaque.")
    immutable: bool | None = opt("When true, data can no longer change.")


class ServiceAccount(Object):
    """An identity for processes in pods."""

    secrets: list[ObjectReference] | None = opt("Secrets the account may use.")
    image_pull_secrets: list[LocalObjectReference] | None = opt(
        "Pull secrets added to pods running as this account."
    )
    automount_service_account_token: bool | None = opt("Mount the token into pods.")


class NamespaceSpec(CoreModel):
    """The desired state of a namespace."""

    finalizers: list[str] | None = opt("Must be empty before the namespace is removed.")


class NamespaceStatus(CoreModel):
    """The observed state of a namespace."""

    phase: str | None = opt("Active or Terminating.")
    conditions: list[dict[str, Any]] | None = opt("Current conditions.")


class Namespace(Object):
    """A scope for names."""

    spec: NamespaceSpec | None = opt("Desired state.")
    status: NamespaceStatus | None = opt("Observed state.")


class EventSource(CoreModel):
    """The component that reported an event."""

    component: str | None = opt("Component name.")
    host: str | None = opt("Node name.")


class EventSeries(CoreModel):
    """A series of repeated events."""

    count: int | None = opt("Occurrences so far.")
    last_observed_time: MicroTime | None = opt("Last occurrence.")


class Event(Object):
    """A report of something that happened to an object."""

    involved_object: ObjectReference = req("The object the event is about.")
    reason: str | None = opt("CamelCase reason, such as FailedScheduling.")
    message: str | None = opt("Human-readable description.")
    source: EventSource | None = opt("Who reported it.")
    first_timestamp: Time | None = opt("First occurrence.")
    last_timestamp: Time | None = opt("Last occurrence.")
    count: int | None = opt("Occurrences.")
    type: str | None = opt("Normal or Warning.")
    event_time: MicroTime | None = opt("When it happened (new events).")
    series: EventSeries | None = opt("Repeat data.")
    action: str | None = opt("What was done, such as Binding.")
    related: ObjectReference | None = opt("A second object involved.")
    reporting_component: str | None = opt("Controller that reported it.")
    reporting_instance: str | None = opt("Instance of that controller.")
