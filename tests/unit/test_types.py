"""machinery.types: defaulting, validation, unknown fields, OpenAPI components."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from machinery.errors import Invalid
from machinery.types import admit, model_for, openapi_components, schema_name
from machinery.types.apps import Deployment


def pod(**spec: Any) -> dict[str, Any]:
    base = {"containers": [{"name": "web", "image": "nginx:1.27"}]}
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": {**base, **spec}}


def deployment(**spec: Any) -> dict[str, Any]:
    base = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
        },
    }
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": {**base, **spec}}


def get(obj: Any, path: str) -> Any:
    for part in path.replace("]", "").replace("[", ".").split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


# --- defaults ----------------------------------------------------------------------------------

DEFAULTS = [
    ("v1", "Pod", pod(), "spec.restartPolicy", "Always"),
    ("v1", "Pod", pod(), "spec.dnsPolicy", "ClusterFirst"),
    ("v1", "Pod", pod(), "spec.schedulerName", "default-scheduler"),
    ("v1", "Pod", pod(), "spec.terminationGracePeriodSeconds", 30),
    ("v1", "Pod", pod(), "spec.securityContext", {}),
    ("v1", "Pod", pod(), "spec.enableServiceLinks", True),
    ("v1", "Pod", pod(), "spec.containers[0].imagePullPolicy", "IfNotPresent"),
    (
        "v1",
        "Pod",
        pod(containers=[{"name": "a", "image": "nginx"}]),
        "spec.containers[0].imagePullPolicy",
        "Always",
    ),
    (
        "v1",
        "Pod",
        pod(containers=[{"name": "a", "image": "reg:5000/nginx:latest"}]),
        "spec.containers[0].imagePullPolicy",
        "Always",
    ),
    (
        "v1",
        "Pod",
        pod(containers=[{"name": "a", "image": "reg:5000/nginx"}]),
        "spec.containers[0].imagePullPolicy",
        "Always",
    ),
    ("v1", "Pod", pod(), "spec.containers[0].terminationMessagePath", "/dev/termination-log"),
    ("v1", "Pod", pod(), "spec.containers[0].terminationMessagePolicy", "File"),
    (
        "v1",
        "Pod",
        pod(containers=[{"name": "a", "image": "i:1", "ports": [{"containerPort": 80}]}]),
        "spec.containers[0].ports[0].protocol",
        "TCP",
    ),
    (
        "v1",
        "Pod",
        pod(
            containers=[{"name": "a", "image": "i:1", "livenessProbe": {"tcpSocket": {"port": 80}}}]
        ),
        "spec.containers[0].livenessProbe",
        {
            "tcpSocket": {"port": 80},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
    ),
    (
        "v1",
        "Pod",
        pod(
            containers=[
                {
                    "name": "a",
                    "image": "i:1",
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                }
            ]
        ),
        "spec.containers[0].resources.requests",
        {"cpu": "1", "memory": "1Gi"},
    ),
    (
        "v1",
        "Pod",
        pod(
            containers=[
                {
                    "name": "a",
                    "image": "i:1",
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                }
            ]
        ),
        "status.qosClass",
        "Guaranteed",
    ),
    ("v1", "Pod", pod(), "status.qosClass", "BestEffort"),
    ("v1", "Pod", pod(), "status.phase", "Pending"),
    ("apps/v1", "Deployment", deployment(), "spec.replicas", 1),
    (
        "apps/v1",
        "Deployment",
        deployment(),
        "spec.strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
    ),
    (
        "apps/v1",
        "Deployment",
        deployment(strategy={"type": "Recreate"}),
        "spec.strategy",
        {"type": "Recreate"},
    ),
    ("apps/v1", "Deployment", deployment(), "spec.revisionHistoryLimit", 10),
    ("apps/v1", "Deployment", deployment(), "spec.progressDeadlineSeconds", 600),
    ("apps/v1", "Deployment", deployment(), "spec.template.spec.restartPolicy", "Always"),
    ("apps/v1", "ReplicaSet", deployment(), "spec.replicas", 1),
    (
        "v1",
        "Service",
        {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}},
        "spec.type",
        "ClusterIP",
    ),
    (
        "v1",
        "Service",
        {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}},
        "spec.sessionAffinity",
        "None",
    ),
    (
        "v1",
        "Service",
        {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}},
        "spec.ports[0]",
        {"port": 80, "protocol": "TCP", "targetPort": 80},
    ),
    ("v1", "Namespace", {"metadata": {"name": "n"}}, "spec.finalizers", ["kubernetes"]),
    ("v1", "Namespace", {"metadata": {"name": "n"}}, "status.phase", "Active"),
    ("v1", "Secret", {"metadata": {"name": "s"}}, "type", "Opaque"),
    ("v1", "Secret", {"metadata": {"name": "s"}, "stringData": {"k": "hi"}}, "data", {"k": "aGk="}),
    (
        "v1",
        "Node",
        {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4"}}},
        "status.allocatable",
        {"cpu": "4"},
    ),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        {
            "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5},
        },
        "spec.minReplicas",
        1,
    ),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        {
            "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5},
        },
        "spec.metrics",
        [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ],
    ),
    (
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        {
            "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5},
        },
        "spec.minReplicas",
        1,
    ),
    (
        "scheduling.k8s.io/v1",
        "PriorityClass",
        {"metadata": {"name": "high"}, "value": 1000},
        "preemptionPolicy",
        "PreemptLowerPriority",
    ),
]


@pytest.mark.parametrize(
    ("api_version", "kind", "obj", "path", "expected"),
    DEFAULTS,
    ids=[f"{d[1]}:{d[3]}={d[4]}"[:60] for d in DEFAULTS],
)
def test_defaults(
    api_version: str, kind: str, obj: dict[str, Any], path: str, expected: Any
) -> None:
    out, unknown = admit(copy.deepcopy(obj), api_version=api_version, kind=kind)
    assert get(out, path) == expected
    assert unknown == []


def test_secret_string_data_is_not_kept() -> None:
    out, _ = admit(
        {"metadata": {"name": "s"}, "stringData": {"k": "v"}}, api_version="v1", kind="Secret"
    )
    assert "stringData" not in out


def test_explicit_values_win_over_defaults() -> None:
    obj = deployment(replicas=0, revisionHistoryLimit=2)
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    out, _ = admit(obj, api_version="apps/v1", kind="Deployment")
    assert out["spec"]["replicas"] == 0
    assert out["spec"]["revisionHistoryLimit"] == 2
    assert out["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Never"


# --- validation --------------------------------------------------------------------------------

LONG = "a" * 64
INVALID = [
    (
        "v1",
        "Pod",
        {"metadata": {}, "spec": pod()["spec"]},
        "metadata.name",
        "FieldValueRequired",
        "Required value: name or generateName is required",
    ),
    (
        "v1",
        "Pod",
        {**pod(), "metadata": {"name": "Foo_"}},
        "metadata.name",
        "FieldValueInvalid",
        'Invalid value: "Foo_": a lowercase RFC 1123 subdomain',
    ),
    (
        "v1",
        "Namespace",
        {"metadata": {"name": "a.b"}},
        "metadata.name",
        "FieldValueInvalid",
        'Invalid value: "a.b": a lowercase RFC 1123 label',
    ),
    (
        "v1",
        "Service",
        {"metadata": {"name": "1abc"}, "spec": {"ports": [{"port": 1}]}},
        "metadata.name",
        "FieldValueInvalid",
        'Invalid value: "1abc": a DNS-1035 label',
    ),
    (
        "v1",
        "Pod",
        {**pod(), "metadata": {"name": "p", "labels": {"a/b/c": "x"}}},
        "metadata.labels",
        "FieldValueInvalid",
        'Invalid value: "a/b/c": a qualified name',
    ),
    (
        "v1",
        "Pod",
        {**pod(), "metadata": {"name": "p", "labels": {"k": LONG}}},
        "metadata.labels",
        "FieldValueInvalid",
        "must be no more than 63 characters",
    ),
    (
        "v1",
        "Pod",
        {**pod(), "metadata": {"name": "p", "annotations": {"k": "x" * 262_144}}},
        "metadata.annotations",
        "FieldValueTooLong",
        "Too long: must have at most 262144 bytes",
    ),
    ("v1", "Pod", pod(containers=[]), "spec.containers", "FieldValueRequired", "Required value"),
    (
        "v1",
        "Pod",
        pod(containers=[{"name": "a", "image": "i"}, {"name": "a", "image": "i"}]),
        "spec.containers[1].name",
        "FieldValueDuplicate",
        'Duplicate value: "a"',
    ),
    (
        "v1",
        "Pod",
        pod(containers=[{"name": "A_", "image": "i"}]),
        "spec.containers[0].name",
        "FieldValueInvalid",
        'Invalid value: "A_": a lowercase RFC 1123 label',
    ),
    (
        "v1",
        "Pod",
        pod(containers=[{"image": "i"}]),
        "spec.containers[0].name",
        "FieldValueRequired",
        "Required value",
    ),
    (
        "v1",
        "Pod",
        pod(containers=[{"name": "a"}]),
        "spec.containers[0].image",
        "FieldValueRequired",
        "Required value",
    ),
    (
        "v1",
        "Pod",
        pod(containers=[{"name": "a", "image": "i", "ports": [{"containerPort": 0}]}]),
        "spec.containers[0].ports[0].containerPort",
        "FieldValueInvalid",
        "Invalid value: 0: must be between 1 and 65535, inclusive",
    ),
    (
        "v1",
        "Pod",
        pod(
            containers=[
                {"name": "a", "image": "i", "ports": [{"containerPort": 80, "protocol": "HTTP"}]}
            ]
        ),
        "spec.containers[0].ports[0].protocol",
        "FieldValueNotSupported",
        'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
    ),
    (
        "v1",
        "Pod",
        pod(restartPolicy="Sometimes"),
        "spec.restartPolicy",
        "FieldValueNotSupported",
        'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
    ),
    (
        "v1",
        "Pod",
        pod(containers=[{"name": "a", "image": "i", "resources": {"limits": {"cpu": "lots"}}}]),
        "spec.containers[0].resources.limits[cpu]",
        "FieldValueInvalid",
        'Invalid value: "lots": quantities must match the regular expression',
    ),
    (
        "v1",
        "Pod",
        pod(
            containers=[
                {
                    "name": "a",
                    "image": "i",
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}},
                }
            ]
        ),
        "spec.containers[0].resources.requests",
        "FieldValueInvalid",
        'Invalid value: "1": must be less than or equal to cpu limit of 500m',
    ),
    (
        "v1",
        "Pod",
        pod(
            containers=[
                {"name": "a", "image": "i", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}
            ]
        ),
        "spec.containers[0].volumeMounts[0].name",
        "FieldValueNotFound",
        'Not found: "data"',
    ),
    (
        "v1",
        "Pod",
        pod(volumes=[{"name": "v"}]),
        "spec.volumes[0]",
        "FieldValueRequired",
        "Required value: must specify a volume type",
    ),
    (
        "v1",
        "Pod",
        pod(terminationGracePeriodSeconds="30"),
        "spec.terminationGracePeriodSeconds",
        "FieldValueInvalid",
        'Invalid value: "30": must be of type integer',
    ),
    (
        "v1",
        "Pod",
        pod(containers=[{"name": "a", "image": "i", "tty": "yes"}]),
        "spec.containers[0].tty",
        "FieldValueInvalid",
        'Invalid value: "yes": must be of type boolean',
    ),
    (
        "v1",
        "Pod",
        pod(nodeSelector={"disk": 1}),
        "spec.nodeSelector[disk]",
        "FieldValueInvalid",
        "Invalid value: 1: must be of type string",
    ),
    (
        "apps/v1",
        "Deployment",
        {"metadata": {"name": "d"}, "spec": {"template": {}}},
        "spec.selector",
        "FieldValueRequired",
        "Required value",
    ),
    (
        "apps/v1",
        "Deployment",
        deployment(selector={"matchLabels": {"app": "other"}}),
        "spec.template.metadata.labels",
        "FieldValueInvalid",
        "`selector` does not match template `labels`",
    ),
    (
        "apps/v1",
        "Deployment",
        deployment(replicas=-1),
        "spec.replicas",
        "FieldValueInvalid",
        "Invalid value: -1: must be greater than or equal to 0",
    ),
    (
        "apps/v1",
        "Deployment",
        deployment(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
        "spec.strategy.rollingUpdate.maxUnavailable",
        "FieldValueInvalid",
        "may not be 0 when `maxSurge` is 0",
    ),
    (
        "apps/v1",
        "ReplicaSet",
        deployment(selector={}),
        "spec.selector",
        "FieldValueInvalid",
        "empty selector is invalid for replicaset",
    ),
    (
        "batch/v1",
        "Job",
        {
            "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "i"}]}}},
        },
        "spec.template.spec.restartPolicy",
        "FieldValueNotSupported",
        'Unsupported value: "Always": supported values: "OnFailure", "Never"',
    ),
    (
        "v1",
        "Service",
        {
            "metadata": {"name": "s"},
            "spec": {"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]},
        },
        "spec.ports[1].name",
        "FieldValueDuplicate",
        'Duplicate value: "a"',
    ),
    (
        "v1",
        "Service",
        {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 70000}]}},
        "spec.ports[0].port",
        "FieldValueInvalid",
        "must be between 1 and 65535, inclusive",
    ),
    (
        "v1",
        "Service",
        {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "selector": {"a": "b c"}}},
        "spec.selector",
        "FieldValueInvalid",
        'Invalid value: "b c": a valid label',
    ),
    (
        "v1",
        "Service",
        {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 81}]}},
        "spec.ports[0].name",
        "FieldValueRequired",
        "Required value",
    ),
    (
        "v1",
        "Service",
        {"metadata": {"name": "s"}, "spec": {"type": "Magic", "ports": [{"port": 8}]}},
        "spec.type",
        "FieldValueNotSupported",
        'Unsupported value: "Magic"',
    ),
    (
        "v1",
        "Service",
        {
            "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 8, "nodePort": 70000}], "type": "NodePort"},
        },
        "spec.ports[0].nodePort",
        "FieldValueInvalid",
        "must be between 1 and 65535, inclusive",
    ),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        {
            "metadata": {"name": "h"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "w"},
                "minReplicas": 5,
                "maxReplicas": 2,
            },
        },
        "spec.maxReplicas",
        "FieldValueInvalid",
        "must be greater than or equal to `minReplicas`",
    ),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        {"metadata": {"name": "h"}, "spec": {"maxReplicas": 2}},
        "spec.scaleTargetRef",
        "FieldValueRequired",
        "Required value",
    ),
    (
        "v1",
        "Secret",
        {"metadata": {"name": "s"}, "data": {"k": "not base64!"}},
        "data[k]",
        "FieldValueInvalid",
        "illegal base64 data",
    ),
    (
        "v1",
        "ConfigMap",
        {"metadata": {"name": "c"}, "data": {"bad key": "v"}},
        "data[bad key]",
        "FieldValueInvalid",
        'Invalid value: "bad key": a valid config key',
    ),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        {
            "metadata": {"name": "wrong.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object"}},
                    }
                ],
            },
        },
        "metadata.name",
        "FieldValueInvalid",
        'must be spec.names.plural+"."+spec.group',
    ),
    (
        "stable.example.com/v1",
        "CronTab",
        {"metadata": {"name": "UPPER"}, "spec": {}},
        "metadata.name",
        "FieldValueInvalid",
        "a lowercase RFC 1123 subdomain",
    ),
]


@pytest.mark.parametrize(
    ("api_version", "kind", "obj", "field", "reason", "message"),
    INVALID,
    ids=[f"{i[1]}:{i[3]}:{i[4]}" for i in INVALID],
)
def test_validation(
    api_version: str, kind: str, obj: dict[str, Any], field: str, reason: str, message: str
) -> None:
    with pytest.raises(Invalid) as info:
        admit(copy.deepcopy(obj), api_version=api_version, kind=kind)
    causes = info.value.details["causes"]
    matching = [c for c in causes if c["field"] == field]
    assert matching, f"no cause for {field}: {causes}"
    assert matching[0]["reason"] == reason
    assert message in matching[0]["message"]
    assert info.value.code == 422
    assert info.value.details["kind"] == kind


def test_every_cause_is_reported_at_once() -> None:
    obj = pod(containers=[{"name": "a"}, {"name": "a", "image": "i"}], restartPolicy="No")
    with pytest.raises(Invalid) as info:
        admit(obj, api_version="v1", kind="Pod")
    fields = [c["field"] for c in info.value.details["causes"]]
    assert fields == ["spec.containers[0].image", "spec.containers[1].name", "spec.restartPolicy"]


def test_generate_name_replaces_name() -> None:
    out, _ = admit(
        {"metadata": {"generateName": "web-"}, "spec": pod()["spec"]}, api_version="v1", kind="Pod"
    )
    assert out["metadata"] == {"generateName": "web-"}


# --- update rules ------------------------------------------------------------------------------


def test_deployment_selector_is_immutable() -> None:
    old, _ = admit(deployment(), api_version="apps/v1", kind="Deployment")
    new = deployment(selector={"matchLabels": {"app": "web", "tier": "x"}})
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    with pytest.raises(Invalid) as info:
        admit(new, api_version="apps/v1", kind="Deployment", old=old)
    cause = info.value.details["causes"][0]
    assert (cause["field"], cause["reason"]) == ("spec.selector", "FieldValueInvalid")
    assert cause["message"].endswith("field is immutable")
    same, _ = admit(deployment(replicas=5), api_version="apps/v1", kind="Deployment", old=old)
    assert same["spec"]["replicas"] == 5


def test_service_cluster_ip_kept_and_immutable() -> None:
    old = {
        "metadata": {"name": "s"},
        "spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "ports": [{"port": 80}]},
    }
    out, _ = admit(
        {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 81}]}},
        api_version="v1",
        kind="Service",
        old=old,
    )
    assert out["spec"]["clusterIP"] == "10.96.0.5"
    with pytest.raises(Invalid) as info:
        admit(
            {
                "metadata": {"name": "s"},
                "spec": {"clusterIP": "10.96.0.6", "ports": [{"port": 81}]},
            },
            api_version="v1",
            kind="Service",
            old=old,
        )
    assert info.value.details["causes"][0]["field"] == "spec.clusterIP"


def test_pod_spec_updates_limited_to_image() -> None:
    old, _ = admit(pod(), api_version="v1", kind="Pod")
    bound = copy.deepcopy(old)
    bound["spec"]["nodeName"] = "node-1"
    bound["spec"]["containers"][0]["image"] = "nginx:1.28"
    admit(bound, api_version="v1", kind="Pod", old=old)  # binding and image change: allowed
    changed = copy.deepcopy(old)
    changed["spec"]["restartPolicy"] = "Never"
    with pytest.raises(Invalid) as info:
        admit(changed, api_version="v1", kind="Pod", old=old)
    assert info.value.details["causes"][0]["reason"] == "FieldValueForbidden"


# --- unknown fields ----------------------------------------------------------------------------


def test_unknown_fields_preserved_and_reported() -> None:
    obj = deployment(foo={"bar": 1})
    obj["metadata"]["extraMeta"] = "m"
    containers = obj["spec"]["template"]["spec"]["containers"]
    containers.append(
        {
            "name": "side",
            "image": "busybox:1",
            "imagee": "typo",
            "ports": [{"containerPort": 9, "hostname": "h"}],
        }
    )
    obj["spec"]["template"]["spec"]["node_name"] = "snake"  # wire names only: unknown
    out, unknown = admit(obj, api_version="apps/v1", kind="Deployment")
    assert sorted(unknown) == sorted(
        [
            "metadata.extraMeta",
            "spec.foo",
            "spec.template.spec.node_name",
            "spec.template.spec.containers[1].imagee",
            "spec.template.spec.containers[1].ports[0].hostname",
        ]
    )
    assert out["spec"]["foo"] == {"bar": 1}
    assert out["spec"]["template"]["spec"]["containers"][1]["imagee"] == "typo"
    assert out["spec"]["template"]["spec"]["node_name"] == "snake"
    assert "nodeName" not in out["spec"]["template"]["spec"]


def test_kinds_without_model_pass_through() -> None:
    obj = {
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": {"name": "c"},
        "spec": {"anything": [1, 2]},
    }
    out, unknown = admit(copy.deepcopy(obj), api_version="stable.example.com/v1", kind="CronTab")
    assert out == obj
    assert unknown == []
    assert model_for("stable.example.com/v1", "CronTab") is None
    assert model_for("apps/v1", "Deployment") is Deployment


BIG_DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "shop",
        "namespace": "prod",
        "uid": "0b1c",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2024-05-01T10:00:00Z",
        "labels": {"app": "shop", "app.kubernetes.io/part-of": "store"},
        "annotations": {"deployment.kubernetes.io/revision": "3"},
        "finalizers": ["example.com/keep"],
    },
    "spec": {
        "replicas": 4,
        "minReadySeconds": 5,
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": 120,
        "selector": {
            "matchLabels": {"app": "shop"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}],
        },
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "10%"},
        },
        "template": {
            "metadata": {
                "labels": {"app": "shop", "tier": "web"},
                "annotations": {"prometheus.io/scrape": "true"},
            },
            "spec": {
                "serviceAccountName": "shop",
                "priorityClassName": "high",
                "restartPolicy": "Always",
                "dnsPolicy": "ClusterFirst",
                "schedulerName": "default-scheduler",
                "terminationGracePeriodSeconds": 45,
                "securityContext": {"runAsNonRoot": True, "fsGroup": 2000},
                "enableServiceLinks": False,
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [
                    {
                        "key": "dedicated",
                        "operator": "Equal",
                        "value": "shop",
                        "effect": "NoSchedule",
                    }
                ],
                "affinity": {
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 100,
                                "podAffinityTerm": {
                                    "labelSelector": {"matchLabels": {"app": "shop"}},
                                    "topologyKey": "kubernetes.io/hostname",
                                },
                            }
                        ]
                    }
                },
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {"app": "shop"}},
                    }
                ],
                "initContainers": [
                    {
                        "name": "migrate",
                        "image": "shop/migrate:2.1",
                        "command": ["/migrate"],
                        "imagePullPolicy": "IfNotPresent",
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "resources": {},
                    }
                ],
                "containers": [
                    {
                        "name": "app",
                        "image": "shop/app:2.1",
                        "args": ["--port=8080"],
                        "workingDir": "/srv",
                        "imagePullPolicy": "IfNotPresent",
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "env": [
                            {"name": "MODE", "value": "prod"},
                            {
                                "name": "POD_IP",
                                "valueFrom": {
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}
                                },
                            },
                            {
                                "name": "DB_PASS",
                                "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                            },
                            {
                                "name": "CPU",
                                "valueFrom": {
                                    "resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}
                                },
                            },
                        ],
                        "envFrom": [{"configMapRef": {"name": "shop-config"}, "prefix": "CFG_"}],
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"cpu": "1", "memory": "512Mi"},
                        },
                        "volumeMounts": [
                            {"name": "cache", "mountPath": "/cache"},
                            {"name": "config", "mountPath": "/etc/shop", "readOnly": True},
                        ],
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                            "initialDelaySeconds": 10,
                            "timeoutSeconds": 2,
                            "periodSeconds": 5,
                            "successThreshold": 1,
                            "failureThreshold": 6,
                        },
                        "readinessProbe": {
                            "exec": {"command": ["cat", "/tmp/ready"]},
                            "timeoutSeconds": 1,
                            "periodSeconds": 10,
                            "successThreshold": 1,
                            "failureThreshold": 3,
                        },
                        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "securityContext": {
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
                "volumes": [
                    {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                    {
                        "name": "config",
                        "configMap": {
                            "name": "shop-config",
                            "defaultMode": 420,
                            "items": [{"key": "a", "path": "a.yaml"}],
                        },
                    },
                ],
            },
        },
    },
    "status": {
        "observedGeneration": 3,
        "replicas": 4,
        "updatedReplicas": 4,
        "readyReplicas": 4,
        "availableReplicas": 4,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastTransitionTime": "2024-05-01T10:01:00Z",
                "reason": "MinimumReplicasAvailable",
                "message": "ok",
            }
        ],
    },
}


def test_big_deployment_round_trips_unchanged() -> None:
    out, unknown = admit(copy.deepcopy(BIG_DEPLOYMENT), api_version="apps/v1", kind="Deployment")
    assert unknown == []
    assert out == BIG_DEPLOYMENT
    again, _ = admit(copy.deepcopy(out), api_version="apps/v1", kind="Deployment")
    assert again == out


# --- OpenAPI -----------------------------------------------------------------------------------


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_components_refs_resolve() -> None:
    components = openapi_components()
    refs = _refs(components)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in components, ref
    assert "anyOf" not in str(components["io.k8s.api.core.v1.PodSpec"])


@pytest.mark.parametrize(
    ("api_version", "kind", "name"),
    [
        ("v1", "Pod", "io.k8s.api.core.v1.Pod"),
        ("apps/v1", "Deployment", "io.k8s.api.apps.v1.Deployment"),
        (
            "autoscaling/v1",
            "HorizontalPodAutoscaler",
            "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler",
        ),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
        ),
        ("coordination.k8s.io/v1", "Lease", "io.k8s.api.coordination.v1.Lease"),
        (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
        ),
    ],
)
def test_openapi_gvk_extension(api_version: str, kind: str, name: str) -> None:
    components = openapi_components()
    assert schema_name(api_version, kind) == name
    group, _, version = api_version.rpartition("/")
    assert components[name]["x-kubernetes-group-version-kind"] == [
        {"group": group, "version": version, "kind": kind}
    ]


def test_openapi_explain_walk() -> None:
    """What kubectl explain pod.spec.containers.ports does: follow allOf/items to a leaf."""
    components = openapi_components()

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while True:
            if "allOf" in schema:
                schema = schema["allOf"][0]
            elif "items" in schema:
                schema = schema["items"]
            elif "$ref" in schema:
                schema = components[schema["$ref"].rsplit("/", 1)[1]]
            else:
                return schema

    node = components["io.k8s.api.core.v1.Pod"]
    for field in ("spec", "containers", "ports"):
        prop = node["properties"][field]
        assert prop.get("description")
        node = resolve(prop)
    assert node["properties"]["containerPort"]["type"] == "integer"
    assert "containerPort" in node["required"]
    meta = components["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
    assert meta["properties"]["labels"]["additionalProperties"] == {"type": "string"}


@pytest.mark.parametrize(
    ("api_version", "kind", "name"),
    [
        ("stable.example.com/v1", "CronTab", "com.example.stable.v1.CronTab"),
        ("v1", "ReplicationController", "io.k8s.api.core.v1.ReplicationController"),
        ("events.k8s.io/v1", "Event", "io.k8s.api.events.v1.Event"),
    ],
)
def test_schema_name_of_unmodelled_kinds(api_version: str, kind: str, name: str) -> None:
    assert schema_name(api_version, kind) == name


# --- speed -------------------------------------------------------------------------------------


def test_admit_benchmark_printed() -> None:
    """Micro-benchmark (printed, not asserted: the machine is shared)."""
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0].update(
        ports=[{"containerPort": 80}],
        resources={"limits": {"cpu": "500m", "memory": "128Mi"}},
        readinessProbe={"httpGet": {"port": 80}},
    )
    rounds, best = 300, float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(rounds):
            admit(obj, api_version="apps/v1", kind="Deployment")
        best = min(best, (time.process_time() - start) / rounds)
    print(f"\nadmit(Deployment): {best * 1e6:.0f} µs CPU per call (best of 5 x {rounds})")
