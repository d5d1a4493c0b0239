"""Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``) as JSON dicts.

client-go's typed clients (``kubectl create configmap|secret|service|...``, ``kubectl autoscale``,
helm's release Secrets and their DeleteOptions) send bodies as the 4 bytes ``k8s\\x00`` followed
by a ``runtime.Unknown`` message: 1 typeMeta {1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding,
4 contentType. ``raw`` is the kind's message, numbered as in Kubernetes' ``generated.proto``.

:func:`decode` turns such a body into the dict the JSON path would have produced:

- camelCase JSON names, ``apiVersion`` and ``kind`` from the envelope, Go's inlined structs
  (``Probe`` handlers, ``Volume`` sources, ``LocalObjectReference`` in selectors) flattened;
- Go writes every non-pointer field even when empty; such zero values (``""``, ``0``,
  ``false``, empty messages, the zero ``Time``) are dropped, as ``omitempty`` drops them in JSON.
  Fields that are pointers in Go (``replicas``, ``immutable``, ``gracePeriodSeconds``, ``emptyDir``
  ...) are kept whenever present, zero or not — they are marked ``?`` in :data:`SCHEMA`;
- ``bytes`` become base64 strings (Secret ``data``, ConfigMap ``binaryData``), ``Quantity`` its
  string, ``IntOrString`` an int or a string, ``Time`` RFC 3339 in whole seconds, ``FieldsV1``
  the JSON object it carries.

It never drops information silently: a field number missing from :data:`SCHEMA` whose value is
not a zero value (``status`` of a kind is one: clients send it empty) makes the request fail
with 415 UnsupportedMediaType, as does a kind not in :data:`KINDS`; malformed bytes give 400
BadRequest.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from machinery import errors

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# ---------------------------------------------------------------------------------------------
# Wire format
# ---------------------------------------------------------------------------------------------

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_MAX_DEPTH = 64


def _malformed(what: str) -> errors.BadRequest:
    return errors.BadRequest(f"the protobuf body of the request is malformed: {what}")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` (at most 10 bytes, kept to 64 bits) and the next position."""
    if pos < len(buf) and buf[pos] < 0x80:  # fast path: tags and small values take one byte
        return buf[pos], pos + 1
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, pos
        shift += 7
        if shift >= 70:
            raise _malformed("varint longer than 10 bytes")


def wire_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Each ``(field number, wire type, value)`` of one message, in order.

    Varints and fixed 32/64-bit values are unsigned ints, length-delimited values bytes.
    Groups (wire types 3 and 4) are not used by Kubernetes and are refused.
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise _malformed("field number 0")
        value: int | bytes
        if wire_type == VARINT:
            value, pos = _varint(buf, pos)
        elif wire_type in (I64, I32):
            size = 8 if wire_type == I64 else 4
            if pos + size > end:
                raise _malformed(f"truncated fixed-size field {number}")
            value = int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        elif wire_type == LEN:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise _malformed(f"field {number} runs past the end of its message")
            value = buf[pos : pos + size]
            pos += size
        else:
            raise _malformed(f"unsupported wire type {wire_type} of field {number}")
        yield number, wire_type, value


def _signed(value: int) -> int:
    """A varint read as a two's-complement int64 (int32 negatives are sign-extended on the wire)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _is_zero(wire_type: int, value: int | bytes, depth: int = 0) -> bool:
    """Whether an unknown field carries nothing: 0, empty, or a message of zero fields only."""
    if wire_type != LEN:
        return value == 0
    assert isinstance(value, bytes)
    if not value:
        return True
    if depth >= _MAX_DEPTH:
        return False
    try:
        return all(_is_zero(wt, v, depth + 1) for _, wt, v in wire_fields(value))
    except errors.BadRequest:
        return False  # not a message: a non-empty string or bytes


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------

#: Value types that are not messages of :data:`SCHEMA`.
SCALARS = frozenset({"string", "int", "bool", "bytes", "time", "quantity", "intstr", "fieldsv1"})


@dataclass(frozen=True)
class Field:
    """One field of a message as written in :data:`SCHEMA`: ``NUMBER NAME TYPE``.

    ``TYPE`` is a scalar of :data:`SCALARS` or a message name, prefixed by ``[]`` (repeated) or
    written ``map[VALUE]`` (``map<string, VALUE>``), suffixed by ``?`` when the Go field is a
    pointer (kept when present even if zero). ``NUMBER - ...MESSAGE`` is a Go struct embedded
    inline: its fields land in the parent object.
    """

    number: int
    name: str
    type: str
    repeated: bool = False
    map: bool = False
    pointer: bool = False
    inline: bool = False

    @classmethod
    def parse(cls, text: str) -> Field:
        number, name, type_ = text.split()
        pointer = type_.endswith("?")
        type_ = type_.rstrip("?")
        if name == "-":
            return cls(int(number), "", type_.removeprefix("..."), inline=True)
        if type_.startswith("map[") and type_.endswith("]"):
            return cls(int(number), name, type_[4:-1], map=True)
        repeated = type_.startswith("[]")
        return cls(int(number), name, type_.removeprefix("[]"), repeated, pointer=pointer)


#: Kubernetes messages by name: field numbers and names from k8s.io/api and k8s.io/apimachinery
#: ``generated.proto``; ``?`` marks Go pointers (see :class:`Field`). Every message reachable
#: from :data:`KINDS` is here, except ``status`` (clients send it empty), ephemeral containers
#: and the deprecated in-tree cloud volume sources. The last four are wire forms of scalars.
SCHEMA = """
Namespace
    1 metadata ObjectMeta, 2 spec NamespaceSpec
ObjectMeta
    1 name string, 2 generateName string, 3 namespace string, 4 selfLink string, 5 uid string
    6 resourceVersion string, 7 generation int, 8 creationTimestamp time
    9 deletionTimestamp time?, 10 deletionGracePeriodSeconds int?, 11 labels map[string]
    12 annotations map[string], 13 ownerReferences []OwnerReference, 14 finalizers []string
    17 managedFields []ManagedFieldsEntry
OwnerReference
    5 apiVersion string, 1 kind string, 3 name string, 4 uid string, 6 controller bool?
    7 blockOwnerDeletion bool?
ManagedFieldsEntry
    1 manager string, 2 operation string, 3 apiVersion string, 4 time time?
    6 fieldsType string, 7 fieldsV1 fieldsv1?, 8 subresource string
NamespaceSpec
    1 finalizers []string
ConfigMap
    1 metadata ObjectMeta, 4 immutable bool?, 2 data map[string], 3 binaryData map[bytes]
Secret
    1 metadata ObjectMeta, 5 immutable bool?, 2 data map[bytes], 4 stringData map[string]
    3 type string
Service
    1 metadata ObjectMeta, 2 spec ServiceSpec
ServiceSpec
    1 ports []ServicePort, 2 selector map[string], 3 clusterIP string, 18 clusterIPs []string
    4 type string, 5 externalIPs []string, 7 sessionAffinity string, 8 loadBalancerIP string
    9 loadBalancerSourceRanges []string, 10 externalName string
    11 externalTrafficPolicy string, 12 healthCheckNodePort int
    13 publishNotReadyAddresses bool, 14 sessionAffinityConfig SessionAffinityConfig?
    19 ipFamilies []string, 17 ipFamilyPolicy string?, 20 allocateLoadBalancerNodePorts bool?
    21 loadBalancerClass string?, 22 internalTrafficPolicy string?
    23 trafficDistribution string?
ServicePort
    1 name string, 2 protocol string, 6 appProtocol string?, 3 port int, 4 targetPort intstr
    5 nodePort int
SessionAffinityConfig
    1 clientIP ClientIPConfig?
ClientIPConfig
    1 timeoutSeconds int?
ServiceAccount
    1 metadata ObjectMeta, 2 secrets []ObjectReference
    3 imagePullSecrets []LocalObjectReference, 4 automountServiceAccountToken bool?
ObjectReference
    1 kind string, 2 namespace string, 3 name string, 4 uid string, 5 apiVersion string
    6 resourceVersion string, 7 fieldPath string
LocalObjectReference
    1 name string
Pod
    1 metadata ObjectMeta, 2 spec PodSpec
PodSpec
    1 volumes []Volume, 20 initContainers []Container, 2 containers []Container
    3 restartPolicy string, 4 terminationGracePeriodSeconds int?, 5 activeDeadlineSeconds int?
    6 dnsPolicy string, 7 nodeSelector map[string], 8 serviceAccountName string
    9 serviceAccount string, 21 automountServiceAccountToken bool?, 10 nodeName string
    11 hostNetwork bool, 12 hostPID bool, 13 hostIPC bool, 27 shareProcessNamespace bool?
    14 securityContext PodSecurityContext?, 15 imagePullSecrets []LocalObjectReference
    16 hostname string, 17 subdomain string, 18 affinity Affinity?, 19 schedulerName string
    22 tolerations []Toleration, 23 hostAliases []HostAlias, 24 priorityClassName string
    25 priority int?, 26 dnsConfig PodDNSConfig?, 28 readinessGates []PodReadinessGate
    29 runtimeClassName string?, 30 enableServiceLinks bool?, 31 preemptionPolicy string?
    32 overhead map[quantity], 33 topologySpreadConstraints []TopologySpreadConstraint
    35 setHostnameAsFQDN bool?, 36 os PodOS?, 37 hostUsers bool?
    38 schedulingGates []PodSchedulingGate, 39 resourceClaims []PodResourceClaim
    40 resources ResourceRequirements?, 41 hostnameOverride string?
Volume
    1 name string, 2 - ...VolumeSource
VolumeSource
    1 hostPath HostPathVolumeSource?, 2 emptyDir EmptyDirVolumeSource?
    6 secret SecretVolumeSource?, 7 nfs NFSVolumeSource?
    10 persistentVolumeClaim PersistentVolumeClaimVolumeSource?
    16 downwardAPI DownwardAPIVolumeSource?, 19 configMap ConfigMapVolumeSource?
    26 projected ProjectedVolumeSource?, 28 csi CSIVolumeSource?, 30 image ImageVolumeSource?
HostPathVolumeSource
    1 path string, 2 type string?
EmptyDirVolumeSource
    1 medium string, 2 sizeLimit quantity?, 3 mode int?
SecretVolumeSource
    1 secretName string, 2 items []KeyToPath, 3 defaultMode int?, 4 optional bool?
    5 defaultUser int?
KeyToPath
    1 key string, 2 path string, 3 mode int?, 4 user int?
NFSVolumeSource
    1 server string, 2 path string, 3 readOnly bool
PersistentVolumeClaimVolumeSource
    1 claimName string, 2 readOnly bool
DownwardAPIVolumeSource
    1 items []DownwardAPIVolumeFile, 2 defaultMode int?, 3 defaultUser int?
DownwardAPIVolumeFile
    1 path string, 2 fieldRef ObjectFieldSelector?, 3 resourceFieldRef ResourceFieldSelector?
    4 mode int?, 5 user int?
ObjectFieldSelector
    1 apiVersion string, 2 fieldPath string
ResourceFieldSelector
    1 containerName string, 2 resource string, 3 divisor quantity
ConfigMapVolumeSource
    1 - ...LocalObjectReference, 2 items []KeyToPath, 3 defaultMode int?, 4 optional bool?
    5 defaultUser int?
ProjectedVolumeSource
    1 sources []VolumeProjection, 2 defaultMode int?, 3 defaultUser int?
VolumeProjection
    1 secret SecretProjection?, 2 downwardAPI DownwardAPIProjection?
    3 configMap ConfigMapProjection?, 4 serviceAccountToken ServiceAccountTokenProjection?
SecretProjection
    1 - ...LocalObjectReference, 2 items []KeyToPath, 4 optional bool?
DownwardAPIProjection
    1 items []DownwardAPIVolumeFile
ConfigMapProjection
    1 - ...LocalObjectReference, 2 items []KeyToPath, 4 optional bool?
ServiceAccountTokenProjection
    1 audience string, 2 expirationSeconds int?, 3 path string, 4 user int?
CSIVolumeSource
    1 driver string, 2 readOnly bool?, 3 fsType string?, 4 volumeAttributes map[string]
    5 nodePublishSecretRef LocalObjectReference?
ImageVolumeSource
    1 reference string, 2 pullPolicy string
Container
    1 name string, 2 image string, 3 command []string, 4 args []string, 5 workingDir string
    6 ports []ContainerPort, 19 envFrom []EnvFromSource, 7 env []EnvVar
    8 resources ResourceRequirements, 23 resizePolicy []ContainerResizePolicy
    24 restartPolicy string?, 25 restartPolicyRules []ContainerRestartRule
    9 volumeMounts []VolumeMount, 21 volumeDevices []VolumeDevice, 10 livenessProbe Probe?
    11 readinessProbe Probe?, 22 startupProbe Probe?, 12 lifecycle Lifecycle?
    13 terminationMessagePath string, 20 terminationMessagePolicy string
    14 imagePullPolicy string, 15 securityContext SecurityContext?, 16 stdin bool
    17 stdinOnce bool, 18 tty bool
ContainerPort
    1 name string, 2 hostPort int, 3 containerPort int, 4 protocol string, 5 hostIP string
EnvFromSource
    1 prefix string, 2 configMapRef ConfigMapEnvSource?, 3 secretRef SecretEnvSource?
ConfigMapEnvSource
    1 - ...LocalObjectReference, 2 optional bool?
SecretEnvSource
    1 - ...LocalObjectReference, 2 optional bool?
EnvVar
    1 name string, 2 value string, 3 valueFrom EnvVarSource?
EnvVarSource
    1 fieldRef ObjectFieldSelector?, 2 resourceFieldRef ResourceFieldSelector?
    3 configMapKeyRef ConfigMapKeySelector?, 4 secretKeyRef SecretKeySelector?
    5 fileKeyRef FileKeySelector?
ConfigMapKeySelector
    1 - ...LocalObjectReference, 2 key string, 3 optional bool?
SecretKeySelector
    1 - ...LocalObjectReference, 2 key string, 3 optional bool?
FileKeySelector
    1 volumeName string, 2 path string, 3 key string, 4 optional bool?
ResourceRequirements
    1 limits map[quantity], 2 requests map[quantity], 3 claims []ResourceClaim
ResourceClaim
    1 name string, 2 request string
ContainerResizePolicy
    1 resourceName string, 2 restartPolicy string
ContainerRestartRule
    1 action string, 2 exitCodes ContainerRestartRuleOnExitCodes?
ContainerRestartRuleOnExitCodes
    1 operator string, 2 values []int
VolumeMount
    1 name string, 2 readOnly bool, 7 recursiveReadOnly string?, 3 mountPath string
    4 subPath string, 5 mountPropagation string?, 6 subPathExpr string
    8 bindMountOptions []string
VolumeDevice
    1 name string, 2 devicePath string
Probe
    1 - ...ProbeHandler, 2 initialDelaySeconds int, 3 timeoutSeconds int, 4 periodSeconds int
    5 successThreshold int, 6 failureThreshold int, 7 terminationGracePeriodSeconds int?
ProbeHandler
    1 exec ExecAction?, 2 httpGet HTTPGetAction?, 3 tcpSocket TCPSocketAction?
    4 grpc GRPCAction?
ExecAction
    1 command []string
HTTPGetAction
    1 path string, 2 port intstr, 3 host string, 4 scheme string, 5 httpHeaders []HTTPHeader
    6 protocol string?
HTTPHeader
    1 name string, 2 value string
TCPSocketAction
    1 port intstr, 2 host string
GRPCAction
    1 port int, 2 service string?, 3 mode string?
Lifecycle
    1 postStart LifecycleHandler?, 2 preStop LifecycleHandler?, 3 stopSignal string?
LifecycleHandler
    1 exec ExecAction?, 2 httpGet HTTPGetAction?, 3 tcpSocket TCPSocketAction?
    4 sleep SleepAction?
SleepAction
    1 seconds int
SecurityContext
    1 capabilities Capabilities?, 2 privileged bool?, 3 seLinuxOptions SELinuxOptions?
    10 windowsOptions WindowsSecurityContextOptions?, 4 runAsUser int?, 8 runAsGroup int?
    5 runAsNonRoot bool?, 6 readOnlyRootFilesystem bool?, 7 allowPrivilegeEscalation bool?
    9 procMount string?, 11 seccompProfile SeccompProfile?, 12 appArmorProfile AppArmorProfile?
Capabilities
    1 add []string, 2 drop []string
SELinuxOptions
    1 user string, 2 role string, 3 type string, 4 level string
WindowsSecurityContextOptions
    1 gmsaCredentialSpecName string?, 2 gmsaCredentialSpec string?, 3 runAsUserName string?
    4 hostProcess bool?
SeccompProfile
    1 type string, 2 localhostProfile string?
AppArmorProfile
    1 type string, 2 localhostProfile string?
PodSecurityContext
    1 seLinuxOptions SELinuxOptions?, 8 windowsOptions WindowsSecurityContextOptions?
    2 runAsUser int?, 6 runAsGroup int?, 3 runAsNonRoot bool?, 4 supplementalGroups []int
    12 supplementalGroupsPolicy string?, 5 fsGroup int?, 7 sysctls []Sysctl
    9 fsGroupChangePolicy string?, 10 seccompProfile SeccompProfile?
    11 appArmorProfile AppArmorProfile?, 13 seLinuxChangePolicy string?
Sysctl
    1 name string, 2 value string
Affinity
    1 nodeAffinity NodeAffinity?, 2 podAffinity PodAffinity?
    3 podAntiAffinity PodAntiAffinity?
NodeAffinity
    1 requiredDuringSchedulingIgnoredDuringExecution NodeSelector?
    2 preferredDuringSchedulingIgnoredDuringExecution []PreferredSchedulingTerm
NodeSelector
    1 nodeSelectorTerms []NodeSelectorTerm
NodeSelectorTerm
    1 matchExpressions []NodeSelectorRequirement, 2 matchFields []NodeSelectorRequirement
NodeSelectorRequirement
    1 key string, 2 operator string, 3 values []string
PreferredSchedulingTerm
    1 weight int, 2 preference NodeSelectorTerm
PodAffinity
    1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm
    2 preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm
PodAffinityTerm
    1 labelSelector LabelSelector?, 2 namespaces []string, 3 topologyKey string
    4 namespaceSelector LabelSelector?, 5 matchLabelKeys []string, 6 mismatchLabelKeys []string
LabelSelector
    1 matchLabels map[string], 2 matchExpressions []LabelSelectorRequirement
LabelSelectorRequirement
    1 key string, 2 operator string, 3 values []string
WeightedPodAffinityTerm
    1 weight int, 2 podAffinityTerm PodAffinityTerm
PodAntiAffinity
    1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm
    2 preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm
Toleration
    1 key string, 2 operator string, 3 value string, 4 effect string, 5 tolerationSeconds int?
HostAlias
    1 ip string, 2 hostnames []string
PodDNSConfig
    1 nameservers []string, 2 searches []string, 3 options []PodDNSConfigOption
PodDNSConfigOption
    1 name string, 2 value string?
PodReadinessGate
    1 conditionType string
TopologySpreadConstraint
    1 maxSkew int, 2 topologyKey string, 3 whenUnsatisfiable string
    4 labelSelector LabelSelector?, 5 minDomains int?, 6 nodeAffinityPolicy string?
    7 nodeTaintsPolicy string?, 8 matchLabelKeys []string
PodOS
    1 name string
PodSchedulingGate
    1 name string
PodResourceClaim
    1 name string, 3 resourceClaimName string?, 4 resourceClaimTemplateName string?
Deployment
    1 metadata ObjectMeta, 2 spec DeploymentSpec
DeploymentSpec
    1 replicas int?, 2 selector LabelSelector?, 3 template PodTemplateSpec
    4 strategy DeploymentStrategy, 5 minReadySeconds int, 6 revisionHistoryLimit int?
    7 paused bool, 9 progressDeadlineSeconds int?
PodTemplateSpec
    1 metadata ObjectMeta, 2 spec PodSpec
DeploymentStrategy
    1 type string, 2 rollingUpdate RollingUpdateDeployment?
RollingUpdateDeployment
    1 maxUnavailable intstr?, 2 maxSurge intstr?
ReplicaSet
    1 metadata ObjectMeta, 2 spec ReplicaSetSpec
ReplicaSetSpec
    1 replicas int?, 4 minReadySeconds int, 2 selector LabelSelector?
    3 template PodTemplateSpec
Job
    1 metadata ObjectMeta, 2 spec JobSpec
JobSpec
    1 parallelism int?, 2 completions int?, 3 activeDeadlineSeconds int?
    11 podFailurePolicy PodFailurePolicy?, 16 successPolicy SuccessPolicy?, 7 backoffLimit int?
    12 backoffLimitPerIndex int?, 13 maxFailedIndexes int?, 4 selector LabelSelector?
    5 manualSelector bool?, 6 template PodTemplateSpec, 8 ttlSecondsAfterFinished int?
    9 completionMode string?, 10 suspend bool?, 14 podReplacementPolicy string?
    15 managedBy string?
PodFailurePolicy
    1 rules []PodFailurePolicyRule
PodFailurePolicyRule
    1 action string, 2 onExitCodes PodFailurePolicyOnExitCodesRequirement?
    3 onPodConditions []PodFailurePolicyOnPodConditionsPattern
PodFailurePolicyOnExitCodesRequirement
    1 containerName string?, 2 operator string, 3 values []int
PodFailurePolicyOnPodConditionsPattern
    1 type string, 2 status string
SuccessPolicy
    1 rules []SuccessPolicyRule
SuccessPolicyRule
    1 succeededIndexes string?, 2 succeededCount int?
CronJob
    1 metadata ObjectMeta, 2 spec CronJobSpec
CronJobSpec
    1 schedule string, 8 timeZone string?, 2 startingDeadlineSeconds int?
    3 concurrencyPolicy string, 4 suspend bool?, 5 jobTemplate JobTemplateSpec
    6 successfulJobsHistoryLimit int?, 7 failedJobsHistoryLimit int?
JobTemplateSpec
    1 metadata ObjectMeta, 2 spec JobSpec
autoscaling/v1.HorizontalPodAutoscaler
    1 metadata ObjectMeta, 2 spec autoscaling/v1.HorizontalPodAutoscalerSpec
autoscaling/v1.HorizontalPodAutoscalerSpec
    1 scaleTargetRef CrossVersionObjectReference, 2 minReplicas int?, 3 maxReplicas int
    4 targetCPUUtilizationPercentage int?
CrossVersionObjectReference
    1 kind string, 2 name string, 3 apiVersion string
autoscaling/v2.HorizontalPodAutoscaler
    1 metadata ObjectMeta, 2 spec autoscaling/v2.HorizontalPodAutoscalerSpec
autoscaling/v2.HorizontalPodAutoscalerSpec
    1 scaleTargetRef CrossVersionObjectReference, 2 minReplicas int?, 3 maxReplicas int
    4 metrics []MetricSpec, 5 behavior HorizontalPodAutoscalerBehavior?
MetricSpec
    1 type string, 2 object ObjectMetricSource?, 3 pods PodsMetricSource?
    4 resource ResourceMetricSource?, 7 containerResource ContainerResourceMetricSource?
    5 external ExternalMetricSource?
ObjectMetricSource
    1 describedObject CrossVersionObjectReference, 2 target MetricTarget
    3 metric MetricIdentifier
MetricTarget
    1 type string, 2 value quantity?, 3 averageValue quantity?, 4 averageUtilization int?
MetricIdentifier
    1 name string, 2 selector LabelSelector?
PodsMetricSource
    1 metric MetricIdentifier, 2 target MetricTarget
ResourceMetricSource
    1 name string, 2 target MetricTarget
ContainerResourceMetricSource
    1 name string, 2 target MetricTarget, 3 container string
ExternalMetricSource
    1 metric MetricIdentifier, 2 target MetricTarget
HorizontalPodAutoscalerBehavior
    1 scaleUp HPAScalingRules?, 2 scaleDown HPAScalingRules?
HPAScalingRules
    3 stabilizationWindowSeconds int?, 1 selectPolicy string?, 2 policies []HPAScalingPolicy
    4 tolerance quantity?
HPAScalingPolicy
    1 type string, 2 value int, 3 periodSeconds int
Scale
    1 metadata ObjectMeta, 2 spec ScaleSpec
ScaleSpec
    1 replicas int
TokenRequest
    1 metadata ObjectMeta, 2 spec TokenRequestSpec
TokenRequestSpec
    1 audiences []string, 4 expirationSeconds int?, 3 boundObjectRef BoundObjectReference?
BoundObjectReference
    1 kind string, 2 apiVersion string, 3 name string, 4 uid string
Eviction
    1 metadata ObjectMeta, 2 deleteOptions DeleteOptions?
SelfSubjectAccessReview
    1 metadata ObjectMeta, 2 spec SelfSubjectAccessReviewSpec
SelfSubjectAccessReviewSpec
    1 resourceAttributes ResourceAttributes?, 2 nonResourceAttributes NonResourceAttributes?
ResourceAttributes
    1 namespace string, 2 verb string, 3 group string, 4 version string, 5 resource string
    6 subresource string, 7 name string
NonResourceAttributes
    1 path string, 2 verb string
SelfSubjectRulesReview
    1 metadata ObjectMeta, 2 spec SelfSubjectRulesReviewSpec
SelfSubjectRulesReviewSpec
    1 namespace string
SelfSubjectReview
    1 metadata ObjectMeta
Role
    1 metadata ObjectMeta, 2 rules []PolicyRule
ClusterRole
    1 metadata ObjectMeta, 2 rules []PolicyRule, 3 aggregationRule AggregationRule?
PolicyRule
    1 verbs []string, 2 apiGroups []string, 3 resources []string, 4 resourceNames []string
    5 nonResourceURLs []string
AggregationRule
    1 clusterRoleSelectors []LabelSelector
RoleBinding
    1 metadata ObjectMeta, 2 subjects []Subject, 3 roleRef RoleRef
ClusterRoleBinding
    1 metadata ObjectMeta, 2 subjects []Subject, 3 roleRef RoleRef
Subject
    1 kind string, 2 apiGroup string, 3 name string, 4 namespace string
RoleRef
    1 apiGroup string, 2 kind string, 3 name string
DeleteOptions
    1 gracePeriodSeconds int?, 2 preconditions Preconditions?, 3 orphanDependents bool?
    4 propagationPolicy string?, 5 dryRun []string
    6 ignoreStoreReadErrorWithClusterBreakingPotential bool?
Preconditions
    1 uid string?, 2 resourceVersion string?
Quantity
    1 string string
IntOrString
    1 type int, 2 intVal int, 3 strVal string
FieldsV1
    1 Raw bytes
Timestamp
    1 seconds int, 2 nanos int
"""

#: Top-level kinds this module decodes: (apiVersion, kind) → message of :data:`SCHEMA`.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Service"): "Service",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Pod"): "Pod",
    ("apps/v1", "Deployment"): "Deployment",
    ("apps/v1", "ReplicaSet"): "ReplicaSet",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("autoscaling/v1", "HorizontalPodAutoscaler"): "autoscaling/v1.HorizontalPodAutoscaler",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "autoscaling/v2.HorizontalPodAutoscaler",
    ("autoscaling/v1", "Scale"): "Scale",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("policy/v1", "Eviction"): "Eviction",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "ClusterRoleBinding",
}

#: Kinds decoded whatever their apiVersion: client-go labels DeleteOptions with the group version
#: of the resource being deleted (``v1`` for Secrets, ``apps/v1`` for Deployments ...).
ANY_VERSION_KINDS: dict[str, str] = {"DeleteOptions": "DeleteOptions"}


def _parse_schema(text: str) -> dict[str, dict[int, Field]]:
    messages: dict[str, dict[int, Field]] = {}
    fields: dict[int, Field] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            if line in messages:
                raise ValueError(f"message {line} defined twice")
            fields = messages[line] = {}
            continue
        for item in line.split(","):
            field = Field.parse(item)
            if field.number in fields:
                raise ValueError(f"field {field.number} defined twice in {line!r}")
            fields[field.number] = field
    for name, table in messages.items():
        for field in table.values():
            if field.type not in SCALARS and field.type not in messages:
                raise ValueError(f"{name}.{field.name or field.type}: unknown type {field.type}")
    return messages


MESSAGES = _parse_schema(SCHEMA)


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def decode(body: bytes) -> dict[str, Any]:
    """The object in a ``k8s\\x00``-prefixed ``runtime.Unknown`` body, in Kubernetes JSON shape.

    Raises :class:`~machinery.errors.BadRequest` for malformed bytes and
    :class:`~machinery.errors.UnsupportedMediaType` for a kind or field not decoded here.
    """
    if not body.startswith(MAGIC):
        raise _malformed("it does not start with the k8s\\x00 prefix")
    type_meta, raw, encoding, content_type = b"", b"", "", ""
    for number, wire_type, value in wire_fields(body[len(MAGIC) :]):
        if number == 1:
            type_meta = _length_delimited(value, wire_type, "Unknown.typeMeta")
        elif number == 2:
            raw = _length_delimited(value, wire_type, "Unknown.raw")
        elif number == 3:
            encoding = _string(value, wire_type, "Unknown.contentEncoding")
        elif number == 4:
            content_type = _string(value, wire_type, "Unknown.contentType")
    api_version, kind = "", ""
    for number, wire_type, value in wire_fields(type_meta):
        if number == 1:
            api_version = _string(value, wire_type, "TypeMeta.apiVersion")
        elif number == 2:
            kind = _string(value, wire_type, "TypeMeta.kind")
    if encoding or content_type not in ("", MEDIA_TYPE):
        raise errors.UnsupportedMediaType(
            f"protobuf bodies with contentEncoding {encoding!r} and contentType "
            f"{content_type!r} are not supported"
        )
    message = KINDS.get((api_version, kind)) or ANY_VERSION_KINDS.get(kind)
    if message is None:
        raise errors.UnsupportedMediaType(
            f"protobuf bodies of kind {kind!r} in {api_version!r} are not supported by this "
            f"server; send {kind or 'it'} as application/json"
        )
    return {"apiVersion": api_version, "kind": kind, **_message(raw, message, 0)}


def _message(buf: bytes, name: str, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise _malformed("messages nested too deeply")
    table = MESSAGES[name]
    found: dict[int, list[tuple[int, int | bytes]]] = {}
    for number, wire_type, value in wire_fields(buf):
        if number in table:
            found.setdefault(number, []).append((wire_type, value))
        elif not _is_zero(wire_type, value):
            raise errors.UnsupportedMediaType(
                f"field {number} of {name} is not supported in protobuf bodies by this server; "
                "send the object as application/json"
            )
    out: dict[str, Any] = {}
    for number, occurrences in found.items():
        field = table[number]
        _place(out, field, occurrences, f"{name}.{field.name or field.type}", depth)
    return out


def _place(
    out: dict[str, Any],
    field: Field,
    occurrences: list[tuple[int, int | bytes]],
    where: str,
    depth: int,
) -> None:
    """Set ``field`` in ``out`` from its occurrences on the wire, dropping non-pointer zeros."""
    if field.map:
        entries = (_length_delimited(v, wt, where) for wt, v in occurrences)
        out[field.name] = dict(_map_entry(entry, field.type, where, depth) for entry in entries)
    elif field.repeated:
        items: list[Any] = []
        for wire_type, value in occurrences:
            if wire_type == LEN and field.type in ("int", "bool"):  # packed encoding
                items.extend(_scalar(field.type, VARINT, v, where) for v in _packed(value))
            else:
                items.append(_value(field.type, wire_type, value, where, depth))
        out[field.name] = items
    else:
        if field.type in ("int", "bool"):
            result: Any = _scalar(field.type, *occurrences[-1], where)
        elif field.type in ("string", "bytes"):
            result = _value(field.type, *occurrences[-1], where, depth)
        else:  # a message: repeated occurrences merge, as parsing their concatenation does
            joined = b"".join(_length_delimited(v, wt, where) for wt, v in occurrences)
            result = _value(field.type, LEN, joined, where, depth)
        if field.inline:
            out.update(result)
        elif result is not None and (field.pointer or result):
            out[field.name] = result


def _value(type_: str, wire_type: int, value: int | bytes, where: str, depth: int) -> Any:
    if type_ in ("int", "bool"):
        return _scalar(type_, wire_type, value, where)
    if type_ == "string":
        return _string(value, wire_type, where)
    data = _length_delimited(value, wire_type, where)
    if type_ == "bytes":
        return base64.b64encode(data).decode("ascii")
    if type_ == "time":
        return _time(data, where, depth)
    if type_ == "quantity":
        return _message(data, "Quantity", depth + 1).get("string", "0")
    if type_ == "intstr":
        parts = _message(data, "IntOrString", depth + 1)
        return parts.get("strVal", "") if parts.get("type") == 1 else parts.get("intVal", 0)
    if type_ == "fieldsv1":
        raw = base64.b64decode(_message(data, "FieldsV1", depth + 1).get("Raw", ""))
        try:
            return orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as exc:
            raise _malformed(f"{where} is not JSON: {exc}")
    return _message(data, type_, depth + 1)


def _scalar(type_: str, wire_type: int, value: int | bytes, where: str) -> int | bool:
    if wire_type != VARINT:
        raise _malformed(f"{where} has wire type {wire_type}, expected a varint")
    assert isinstance(value, int)
    return bool(value) if type_ == "bool" else _signed(value)


def _length_delimited(value: int | bytes, wire_type: int, where: str) -> bytes:
    if wire_type != LEN:
        raise _malformed(f"{where} has wire type {wire_type}, expected length-delimited")
    assert isinstance(value, bytes)
    return value


def _string(value: int | bytes, wire_type: int, where: str) -> str:
    try:
        return _length_delimited(value, wire_type, where).decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(f"{where} is not valid UTF-8")


def _packed(data: int | bytes) -> Iterator[int]:
    assert isinstance(data, bytes)
    pos = 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        yield value


def _map_entry(entry: bytes, type_: str, where: str, depth: int) -> tuple[str, Any]:
    key, value = "", _value(type_, LEN, b"", where, depth)  # a missing value is the zero value
    for number, wire_type, item in wire_fields(entry):
        if number == 1:
            key = _string(item, wire_type, where)
        elif number == 2:
            value = _value(type_, wire_type, item, where, depth)
    return key, value


def _time(data: bytes, where: str, depth: int) -> str | None:
    """RFC 3339 seconds in UTC (metav1.Time ignores nanos); ``None`` for the zero time."""
    if not data:  # Go writes the zero time as an empty message
        return None
    seconds = _message(data, "Timestamp", depth + 1).get("seconds", 0)
    try:
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise _malformed(f"{where} is out of range")
    return moment.isoformat().replace("+00:00", "Z")
