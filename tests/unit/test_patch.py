"""machinery.patch: merge patch, JSON patch, strategic merge patch and three-way apply patches."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machinery.errors import BadRequest, Invalid, UnsupportedMediaType
from machinery.patch import (
    STRATEGIES,
    FieldStrategy,
    json_patch,
    merge_patch,
    strategic_merge_patch,
    strategy_for,
    supports_strategic,
    three_way_merge_patch,
)

# --- RFC 7386 merge patch (the RFC's appendix A vectors, plus nesting) -----------------------

MERGE = {
    "replace-value": ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    "add-key": ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    "null-deletes": ({"a": "b"}, {"a": None}, {}),
    "null-deletes-one": ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    "value-replaces-list": ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    "list-replaces-value": ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    "nested-merge": ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    "list-replaced-whole": ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    "list-patch-replaces": (["a", "b"], ["c", "d"], ["c", "d"]),
    "list-patch-replaces-object": ({"a": "b"}, ["c"], ["c"]),
    "null-patch": ({"a": "foo"}, None, None),
    "string-patch": ({"a": "foo"}, "bar", "bar"),
    "keeps-target-nulls": ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    "object-over-list": ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    "nulls-in-new-object-dropped": ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    "labels": (
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"b": None, "c": "3"}}},
        {"metadata": {"labels": {"a": "1", "c": "3"}}},
    ),
}


@pytest.mark.parametrize(("target", "patch", "expected"), MERGE.values(), ids=MERGE.keys())
def test_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy((target, patch))
    assert merge_patch(target, patch) == expected
    assert (target, patch) == before


def test_merge_patch_result_shares_nothing_with_inputs() -> None:
    target = {"a": {"b": [1]}, "keep": {"x": 1}}
    patch = {"c": {"d": [2]}, "e": [{"f": 1}]}
    result = merge_patch(target, patch)
    result["a"]["b"].append(9)
    result["keep"]["x"] = 2
    result["c"]["d"].append(9)
    result["e"][0]["f"] = 2
    assert target == {"a": {"b": [1]}, "keep": {"x": 1}}
    assert patch == {"c": {"d": [2]}, "e": [{"f": 1}]}


# --- RFC 6902 JSON patch ---------------------------------------------------------------------

DOC = {"metadata": {"finalizers": ["a"], "name": "x"}, "spec": {"replicas": 1}}
JSON_OK = {
    "add": (
        [{"op": "add", "path": "/spec/paused", "value": True}],
        {**DOC, "spec": {"replicas": 1, "paused": True}},
    ),
    "add-append": (
        [{"op": "add", "path": "/metadata/finalizers/-", "value": "b"}],
        {**DOC, "metadata": {"finalizers": ["a", "b"], "name": "x"}},
    ),
    "remove": (
        [{"op": "remove", "path": "/metadata/finalizers/0"}],
        {**DOC, "metadata": {"finalizers": [], "name": "x"}},
    ),
    "replace": (
        [{"op": "replace", "path": "/spec/replicas", "value": 3}],
        {**DOC, "spec": {"replicas": 3}},
    ),
    "move": (
        [{"op": "move", "from": "/spec/replicas", "path": "/spec/count"}],
        {**DOC, "spec": {"count": 1}},
    ),
    "copy": (
        [{"op": "copy", "from": "/metadata/name", "path": "/spec/name"}],
        {**DOC, "spec": {"replicas": 1, "name": "x"}},
    ),
    "test-then-remove": (
        [
            {"op": "test", "path": "/metadata/finalizers", "value": ["a"]},
            {"op": "remove", "path": "/metadata/finalizers"},
        ],
        {**DOC, "metadata": {"name": "x"}},
    ),
    "empty": ([], DOC),
}


@pytest.mark.parametrize(("ops", "expected"), JSON_OK.values(), ids=JSON_OK.keys())
def test_json_patch(ops: list, expected: dict) -> None:
    doc, before_ops = copy.deepcopy(DOC), copy.deepcopy(ops)
    assert json_patch(doc, ops) == expected
    assert doc == DOC and ops == before_ops


def test_json_patch_does_not_alias_op_values() -> None:
    ops = [
        {"op": "add", "path": "/spec/x", "value": {"k": [1]}},
        {"op": "add", "path": "/spec/x/k/-", "value": 2},
    ]
    result = json_patch(DOC, ops)
    assert result["spec"]["x"] == {"k": [1, 2]}
    assert ops[0]["value"] == {"k": [1]}


JSON_ERRORS = {
    "failed-test": (
        [{"op": "test", "path": "/spec/replicas", "value": 2}],
        Invalid,
        "test operation failed",
    ),
    "test-missing-path": ([{"op": "test", "path": "/nope", "value": 1}], Invalid, ""),
    "remove-missing": ([{"op": "remove", "path": "/spec/nope"}], Invalid, "could not be applied"),
    "replace-missing": ([{"op": "replace", "path": "/nope/x", "value": 1}], Invalid, ""),
    "bad-index": ([{"op": "remove", "path": "/metadata/finalizers/5"}], Invalid, ""),
    "unknown-op": ([{"op": "frobnicate", "path": "/a"}], Invalid, "frobnicate"),
    "no-op-member": ([{"path": "/a", "value": 1}], Invalid, "op"),
    "pointer-without-slash": ([{"op": "add", "path": "spec", "value": 1}], Invalid, ""),
    "move-missing-from": ([{"op": "move", "path": "/a"}], Invalid, ""),
    "not-a-list": ({"op": "add", "path": "/a", "value": 1}, BadRequest, "must be a list"),
    "op-not-object": (["add"], BadRequest, "must be an object"),
    "atomic": (
        [
            {"op": "add", "path": "/spec/x", "value": 1},
            {"op": "test", "path": "/spec/x", "value": 2},
        ],
        Invalid,
        "",
    ),
}


@pytest.mark.parametrize(("ops", "error", "message"), JSON_ERRORS.values(), ids=JSON_ERRORS.keys())
def test_json_patch_errors(ops: Any, error: type[Exception], message: str) -> None:
    doc = copy.deepcopy(DOC)
    with pytest.raises(error, match=message or None) as info:
        json_patch(doc, ops)
    assert doc == DOC
    assert info.value.code == (422 if error is Invalid else 400)  # type: ignore[attr-defined]


# --- strategic merge patch -------------------------------------------------------------------


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def deployment(**pod_spec: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"a": "1"}}, "spec": pod_spec}},
    }


C1 = {
    "name": "app",
    "image": "nginx:1",
    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
}
C2 = {"name": "side", "image": "busybox"}

SMP = {
    "container-image-by-name": (
        "Pod",
        pod(containers=[C1, C2]),
        {"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}},
        pod(containers=[C1, {"name": "side", "image": "busybox:2"}]),
    ),
    "new-container-appended": (
        "Pod",
        pod(containers=[C1]),
        {"spec": {"containers": [C2]}},
        pod(containers=[C1, C2]),
    ),
    "env-merge-and-delete": (
        "Pod",
        pod(containers=[C1]),
        {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "env": [
                            {"name": "A", "$patch": "delete"},
                            {"name": "B", "value": "b"},
                            {"name": "C", "value": "3"},
                        ],
                    }
                ]
            }
        },
        pod(containers=[{**C1, "env": [{"name": "B", "value": "b"}, {"name": "C", "value": "3"}]}]),
    ),
    "delete-container": (
        "Pod",
        pod(containers=[C1, C2]),
        {"spec": {"containers": [{"name": "app", "$patch": "delete"}]}},
        pod(containers=[C2]),
    ),
    "null-deletes-field-in-item": (
        "Pod",
        pod(containers=[C1]),
        {"spec": {"containers": [{"name": "app", "env": None}]}},
        pod(containers=[{"name": "app", "image": "nginx:1"}]),
    ),
    "ports-by-containerPort": (
        "Pod",
        pod(
            containers=[
                {
                    "name": "c",
                    "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
                }
            ]
        ),
        {
            "spec": {
                "containers": [{"name": "c", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]
            }
        },
        pod(
            containers=[
                {
                    "name": "c",
                    "ports": [
                        {"containerPort": 80, "name": "http", "protocol": "TCP"},
                        {"containerPort": 443},
                    ],
                }
            ]
        ),
    ),
    "volumeMounts-by-mountPath": (
        "Pod",
        pod(containers=[{"name": "c", "volumeMounts": [{"mountPath": "/a", "name": "x"}]}]),
        {
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "volumeMounts": [
                            {"mountPath": "/a", "readOnly": True},
                            {"mountPath": "/b", "name": "y"},
                        ],
                    }
                ]
            }
        },
        pod(
            containers=[
                {
                    "name": "c",
                    "volumeMounts": [
                        {"mountPath": "/a", "name": "x", "readOnly": True},
                        {"mountPath": "/b", "name": "y"},
                    ],
                }
            ]
        ),
    ),
    "envFrom-replaced": (
        "Pod",
        pod(containers=[{"name": "c", "envFrom": [{"configMapRef": {"name": "a"}}]}]),
        {"spec": {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "b"}}]}]}},
        pod(containers=[{"name": "c", "envFrom": [{"secretRef": {"name": "b"}}]}]),
    ),
    "tolerations-replaced": (
        "Pod",
        pod(tolerations=[{"key": "a", "operator": "Exists"}]),
        {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}},
        pod(tolerations=[{"key": "b", "operator": "Exists"}]),
    ),
    "volumes-and-pull-secrets-by-name": (
        "Pod",
        pod(volumes=[{"name": "v", "emptyDir": {}}], imagePullSecrets=[{"name": "s1"}]),
        {
            "spec": {
                "volumes": [{"name": "w", "emptyDir": {}}],
                "imagePullSecrets": [{"name": "s2"}],
            }
        },
        pod(
            volumes=[{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}],
            imagePullSecrets=[{"name": "s1"}, {"name": "s2"}],
        ),
    ),
    "init-and-ephemeral-containers": (
        "Pod",
        pod(
            initContainers=[{"name": "i", "image": "a"}],
            ephemeralContainers=[{"name": "e", "image": "a"}],
        ),
        {
            "spec": {
                "initContainers": [{"name": "i", "image": "b"}],
                "ephemeralContainers": [{"name": "f"}],
            }
        },
        pod(
            initContainers=[{"name": "i", "image": "b"}],
            ephemeralContainers=[{"name": "e", "image": "a"}, {"name": "f"}],
        ),
    ),
    "deployment-template-containers": (
        "Deployment",
        deployment(containers=[C1, C2]),
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}},
        deployment(containers=[{**C1, "image": "nginx:2"}, C2]),
    ),
    "unknown-list-replaced": (
        "Deployment",
        deployment(containers=[C1], readinessGates=[{"conditionType": "a"}]),
        {"spec": {"template": {"spec": {"readinessGates": [{"conditionType": "b"}]}}}},
        deployment(containers=[C1], readinessGates=[{"conditionType": "b"}]),
    ),
    "containers-list-at-pod-path-only": (
        "ConfigMap",
        {"data": {"a": "1"}, "spec": {"containers": [C1]}},
        {"spec": {"containers": [C2]}},
        {"data": {"a": "1"}, "spec": {"containers": [C2]}},
    ),
    "status-conditions-by-type": (
        "Deployment",
        {
            "status": {
                "conditions": [
                    {"type": "Available", "status": "False"},
                    {"type": "Progressing", "status": "True"},
                ]
            }
        },
        {"status": {"conditions": [{"type": "Available", "status": "True"}]}},
        {
            "status": {
                "conditions": [
                    {"type": "Available", "status": "True"},
                    {"type": "Progressing", "status": "True"},
                ]
            }
        },
    ),
    "service-ports-by-port": (
        "Service",
        {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}},
    ),
    "owner-references-by-uid": (
        "ReplicaSet",
        {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}},
        {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}},
        {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}},
    ),
    "finalizers-set-merge": (
        "ConfigMap",
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"finalizers": ["b", "c"]}},
        {"metadata": {"finalizers": ["a", "b", "c"]}},
    ),
    "delete-from-primitive-list": (
        "ConfigMap",
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "c", "zz"]}},
        {"metadata": {"finalizers": ["b"]}},
    ),
    "node-taints-by-key": (
        "Node",
        {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}},
        {
            "spec": {
                "taints": [
                    {"key": "a", "effect": "NoExecute"},
                    {"key": "b", "effect": "NoSchedule"},
                ]
            }
        },
        {
            "spec": {
                "taints": [
                    {"key": "a", "effect": "NoExecute"},
                    {"key": "b", "effect": "NoSchedule"},
                ]
            }
        },
    ),
    "cordon": (
        "Node",
        {"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.1.0/24"}},
        {"spec": {"unschedulable": True}},
        {"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.1.0/24", "unschedulable": True}},
    ),
    "null-deletes-key": (
        "Deployment",
        deployment(containers=[C1]),
        {"spec": {"template": {"metadata": {"labels": {"a": None}}}}},
        {
            **deployment(containers=[C1]),
            "spec": {
                "replicas": 1,
                "template": {"metadata": {"labels": {}}, "spec": {"containers": [C1]}},
            },
        },
    ),
    "map-patch-replace": (
        "Pod",
        pod(nodeSelector={"a": "1", "b": "2"}),
        {"spec": {"nodeSelector": {"c": "3", "$patch": "replace"}}},
        pod(nodeSelector={"c": "3"}),
    ),
    "map-patch-delete": (
        "Pod",
        pod(nodeSelector={"a": "1"}, hostname="h"),
        {"spec": {"nodeSelector": {"$patch": "delete"}}},
        pod(hostname="h"),
    ),
    "map-patch-merge-explicit": (
        "Pod",
        pod(nodeSelector={"a": "1"}),
        {"spec": {"nodeSelector": {"b": "2", "$patch": "merge"}}},
        pod(nodeSelector={"a": "1", "b": "2"}),
    ),
    "list-patch-replace": (
        "Pod",
        pod(containers=[C1, C2]),
        {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}},
        pod(containers=[{"name": "only", "image": "x"}]),
    ),
    "item-patch-replace": (
        "Pod",
        pod(containers=[C1]),
        {"spec": {"containers": [{"name": "app", "image": "y", "$patch": "replace"}]}},
        pod(containers=[{"name": "app", "image": "y"}]),
    ),
    "set-element-order-reorders": (
        "Pod",
        pod(containers=[C1, C2]),
        {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "app"}]}},
        pod(containers=[C2, C1]),
    ),
    "set-element-order-with-new-item": (
        "Pod",
        pod(containers=[C1, C2]),
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "new"}, {"name": "app"}, {"name": "side"}],
                "containers": [{"name": "new", "image": "n"}],
            }
        },
        pod(containers=[{"name": "new", "image": "n"}, C1, C2]),
    ),
    "set-element-order-keeps-server-only-in-place": (
        "Pod",
        pod(containers=[{"name": "a"}, {"name": "server"}, {"name": "b"}]),
        {"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]}},
        pod(containers=[{"name": "a"}, {"name": "server"}, {"name": "b"}]),
    ),
    # Kubernetes' rule: a server-only item goes before the first listed item that followed
    # it in the live list.
    "set-element-order-interleaves-server-only": (
        "Pod",
        pod(containers=[{"name": "a"}, {"name": "server"}, {"name": "b"}]),
        {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}},
        pod(containers=[{"name": "server"}, {"name": "b"}, {"name": "a"}]),
    ),
    "set-element-order-primitive": (
        "ConfigMap",
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"], "finalizers": ["c"]}},
        {"metadata": {"finalizers": ["c", "b", "a"]}},
    ),
    "retain-keys": (
        "Deployment",
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        {"spec": {"strategy": {"type": "Recreate"}}},
    ),
    "retain-keys-allows-nulls": (
        "Pod",
        pod(volumes=[{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]),
        {
            "spec": {
                "volumes": [
                    {
                        "name": "v",
                        "$retainKeys": ["name", "configMap"],
                        "configMap": {"name": "c"},
                        "emptyDir": None,
                    }
                ]
            }
        },
        pod(volumes=[{"name": "v", "configMap": {"name": "c"}}]),
    ),
    "type-change-replaces": (
        "ConfigMap",
        {"data": "text"},
        {"data": {"a": "1", "b": None}},
        {"data": {"a": "1"}},
    ),
    "top-level-delete": ("ConfigMap", {"data": {"a": "1"}}, {"$patch": "delete"}, {}),
}


@pytest.mark.parametrize(("kind", "target", "patch", "expected"), SMP.values(), ids=SMP.keys())
def test_strategic_merge_patch(kind: str, target: dict, patch: dict, expected: dict) -> None:
    before = copy.deepcopy((target, patch))
    assert strategic_merge_patch(target, patch, kind) == expected
    assert (target, patch) == before


def test_strategic_merge_patch_result_shares_nothing_with_inputs() -> None:
    target = pod(containers=[copy.deepcopy(C1)], nodeSelector={"a": "1"})
    patch = {"spec": {"containers": [{"name": "new", "env": [{"name": "X", "value": "1"}]}]}}
    before = copy.deepcopy((target, patch))
    result = strategic_merge_patch(target, patch, "Pod")
    for container in result["spec"]["containers"]:
        container["env"].append({"name": "MUTATED"})
    result["spec"]["nodeSelector"]["b"] = "2"
    assert (target, patch) == before


SMP_ERRORS = {
    "custom-resource": ("Widget", {}, {"spec": {}}, UnsupportedMediaType),
    "patch-not-object": ("Pod", {}, [{"op": "add"}], BadRequest),
    "bad-map-directive": ("Pod", {}, {"spec": {"$patch": "explode"}}, BadRequest),
    "bad-list-directive": (
        "Pod",
        pod(containers=[C1]),
        {"spec": {"containers": [{"$patch": "explode"}]}},
        BadRequest,
    ),
    "unknown-directive": ("Pod", {}, {"$frobnicate": 1}, BadRequest),
    "missing-merge-key": (
        "Pod",
        pod(containers=[C1]),
        {"spec": {"containers": [{"image": "x"}]}},
        Invalid,
    ),
    "scalar-in-keyed-list": ("Pod", pod(containers=[C1]), {"spec": {"containers": ["x"]}}, Invalid),
    "retain-keys-violated": (
        "Deployment",
        {},
        {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
        BadRequest,
    ),
    "retain-keys-not-list": (
        "Deployment",
        {},
        {"spec": {"strategy": {"$retainKeys": "type"}}},
        BadRequest,
    ),
    "order-not-list": (
        "Pod",
        pod(containers=[C1]),
        {"spec": {"$setElementOrder/containers": "app"}},
        BadRequest,
    ),
    "order-item-without-key": (
        "Pod",
        pod(containers=[C1]),
        {"spec": {"$setElementOrder/containers": [{"image": "x"}]}},
        BadRequest,
    ),
    "delete-from-primitive-not-list": (
        "Pod",
        {},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
        BadRequest,
    ),
}


@pytest.mark.parametrize(
    ("kind", "target", "patch", "error"), SMP_ERRORS.values(), ids=SMP_ERRORS.keys()
)
def test_strategic_merge_patch_errors(
    kind: str, target: dict, patch: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        strategic_merge_patch(target, patch, kind)


@pytest.mark.parametrize(
    ("kind", "api_version", "expected"),
    [
        ("Pod", None, True),
        ("Deployment", "apps/v1", True),
        ("ConfigMap", "v1", True),
        ("CronJob", None, True),
        ("Widget", None, False),
        ("Deployment", "example.com/v1", False),
    ],
    ids=["pod", "deployment-gv", "configmap", "cronjob", "crd", "crd-reusing-kind-name"],
)
def test_supports_strategic(kind: str, api_version: str | None, expected: bool) -> None:
    assert supports_strategic(kind, api_version) is expected


@pytest.mark.parametrize(
    ("kind", "path", "strategy"),
    [
        ("Pod", "spec.containers", FieldStrategy(merge_key="name")),
        ("Pod", "spec.containers.env", FieldStrategy(merge_key="name")),
        ("Pod", "spec.initContainers.ports", FieldStrategy(merge_key="containerPort")),
        ("Pod", "spec.volumes", FieldStrategy(merge_key="name", retain_keys=True)),
        ("Pod", "spec.tolerations", FieldStrategy()),
        ("Job", "spec.template.spec.containers.volumeMounts", FieldStrategy(merge_key="mountPath")),
        (
            "CronJob",
            "spec.jobTemplate.spec.template.spec.imagePullSecrets",
            FieldStrategy(merge_key="name"),
        ),
        ("StatefulSet", "metadata.finalizers", FieldStrategy(set_merge=True)),
        ("Node", "spec.taints", FieldStrategy(merge_key="key")),
        ("Service", "spec.ports", FieldStrategy(merge_key="port")),
        ("Deployment", "spec.containers", FieldStrategy()),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_strategy_table(kind: str, path: str, strategy: FieldStrategy) -> None:
    assert strategy_for(kind, path) == strategy


def test_strategy_table_covers_every_workload() -> None:
    for kind in ("Pod", "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job"):
        assert any(p.endswith("containers.env") for p in STRATEGIES[kind]), kind


# --- three-way merge patch (client-side apply) -----------------------------------------------


def last_applied_pod(
    image: str, env: list[dict[str, str]], labels: dict[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": image, "env": env}]},
    }


def live(config: dict[str, Any]) -> dict[str, Any]:
    """What the server holds after applying ``config``: defaults and status added."""
    obj = copy.deepcopy(config)
    obj["metadata"].update(uid="u1", resourceVersion="7")
    obj["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    obj["spec"]["nodeName"] = "node-a"
    obj["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    return obj


ENV_AB = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
ORIGINAL = last_applied_pod("nginx:1", ENV_AB, {"app": "web", "tier": "front"})

THREE_WAY = {
    "remove-env-var": (
        last_applied_pod("nginx:1", ENV_AB[:1], {"app": "web", "tier": "front"}),
        {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "env": [{"name": "B", "$patch": "delete"}],
                        "$setElementOrder/env": [{"name": "A"}],
                    }
                ],
                "$setElementOrder/containers": [{"name": "app"}],
            }
        },
    ),
    "change-image": (
        last_applied_pod("nginx:2", ENV_AB, {"app": "web", "tier": "front"}),
        {
            "spec": {
                "containers": [{"name": "app", "image": "nginx:2"}],
                "$setElementOrder/containers": [{"name": "app"}],
            }
        },
    ),
    "drop-label": (
        last_applied_pod("nginx:1", ENV_AB, {"app": "web"}),
        {"metadata": {"labels": {"tier": None}}},
    ),
    "reorder-env": (
        last_applied_pod("nginx:1", ENV_AB[::-1], {"app": "web", "tier": "front"}),
        {
            "spec": {
                "containers": [
                    {"name": "app", "$setElementOrder/env": [{"name": "B"}, {"name": "A"}]}
                ],
                "$setElementOrder/containers": [{"name": "app"}],
            }
        },
    ),
    "unchanged": (ORIGINAL, {}),
}


@pytest.mark.parametrize(("modified", "expected_patch"), THREE_WAY.values(), ids=THREE_WAY.keys())
def test_three_way_strategic(modified: dict, expected_patch: dict) -> None:
    current = live(ORIGINAL)
    inputs = copy.deepcopy((ORIGINAL, modified, current))
    patch = three_way_merge_patch(ORIGINAL, modified, current, "Pod")
    assert patch == expected_patch
    assert (ORIGINAL, modified, current) == inputs
    assert strategic_merge_patch(current, patch, "Pod") == live(modified)


def test_three_way_keeps_what_others_added() -> None:
    current = live(ORIGINAL)
    current["metadata"]["labels"]["added-by-controller"] = "x"
    current["spec"]["containers"].insert(0, {"name": "injected", "image": "proxy"})
    current["spec"]["containers"][1]["env"].append({"name": "INJECTED", "value": "1"})
    modified = last_applied_pod(
        "nginx:2", [*ENV_AB[:1], {"name": "C", "value": "3"}], {"app": "web"}
    )
    result = strategic_merge_patch(
        current, three_way_merge_patch(ORIGINAL, modified, current, "Pod"), "Pod"
    )
    assert result["metadata"]["labels"] == {"app": "web", "added-by-controller": "x"}
    assert [c["name"] for c in result["spec"]["containers"]] == ["injected", "app"]
    app = result["spec"]["containers"][1]
    assert app["image"] == "nginx:2" and app["imagePullPolicy"] == "IfNotPresent"
    assert [e["name"] for e in app["env"]] == ["A", "C", "INJECTED"]


def test_three_way_first_apply_without_original() -> None:
    current = live(ORIGINAL)
    modified = last_applied_pod("nginx:1", ENV_AB, {"app": "web"})
    patch = three_way_merge_patch(None, modified, current, "Pod")
    assert patch == {}  # nothing recorded as applied, so nothing is deleted


def test_three_way_primitive_set_list() -> None:
    original = {"metadata": {"name": "c", "finalizers": ["a", "b"]}}
    modified = {"metadata": {"name": "c", "finalizers": ["b", "c"]}}
    current = {"metadata": {"name": "c", "finalizers": ["a", "b", "server"]}}
    patch = three_way_merge_patch(original, modified, current, "ConfigMap")
    assert patch == {
        "metadata": {
            "finalizers": ["c"],
            "$deleteFromPrimitiveList/finalizers": ["a"],
            "$setElementOrder/finalizers": ["b", "c"],
        }
    }
    assert strategic_merge_patch(current, patch, "ConfigMap")["metadata"]["finalizers"] == [
        "b",
        "c",
        "server",
    ]


def test_three_way_retain_keys_on_strategy_change() -> None:
    original = {"spec": {"replicas": 1}}
    modified = {"spec": {"replicas": 1, "strategy": {"type": "Recreate"}}}
    current = {
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
        }
    }
    patch = three_way_merge_patch(original, modified, current, "Deployment")
    assert patch == {"spec": {"strategy": {"type": "Recreate", "$retainKeys": ["type"]}}}
    assert strategic_merge_patch(current, patch, "Deployment") == modified


def test_three_way_list_without_usable_keys_is_replaced() -> None:
    modified = pod(containers=[{"image": "a"}, {"image": "b"}])
    current = pod(containers=[{"name": "x", "image": "c"}])
    patch = three_way_merge_patch(None, modified, current, "Pod")
    assert patch == {
        "spec": {"containers": [{"$patch": "replace"}, {"image": "a"}, {"image": "b"}]}
    }
    assert strategic_merge_patch(current, patch, "Pod") == modified


def test_three_way_merge_patch_for_custom_resources() -> None:
    original = {"spec": {"items": [1, 2], "size": 1, "old": True}}
    modified = {"spec": {"items": [1], "size": 2}}
    current = {
        "spec": {"items": [1, 2], "size": 1, "old": True, "extra": "x"},
        "status": {"ok": True},
    }
    patch = three_way_merge_patch(original, modified, current, None)
    assert patch == {"spec": {"items": [1], "size": 2, "old": None}}
    assert merge_patch(current, patch) == {
        "spec": {"items": [1], "size": 2, "extra": "x"},
        "status": {"ok": True},
    }


def test_three_way_rejects_strategic_for_custom_kinds() -> None:
    with pytest.raises(UnsupportedMediaType):
        three_way_merge_patch({}, {}, {}, "Widget")


# --- properties ------------------------------------------------------------------------------

_keys = st.sampled_from(["a", "b", "c", "d"])
_scalars = st.one_of(st.integers(-3, 3), st.sampled_from(["x", "y", ""]), st.booleans())
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=8,
)
_docs = st.dictionaries(_keys, _values, max_size=4)


def canon(value: Any) -> str:
    """JSON text, so that ``true`` and ``1`` compare unequal."""
    return json.dumps(value, sort_keys=True)


def expected_apply(original: Any, modified: Any, current: Any) -> Any:
    """The declarative meaning of apply: ``current`` minus what the user dropped, with
    ``modified`` laid over it."""
    if not (isinstance(modified, dict) and isinstance(current, dict)):
        return copy.deepcopy(modified)
    original = original if isinstance(original, dict) else {}
    result = {k: copy.deepcopy(v) for k, v in current.items() if k in modified or k not in original}
    for key, value in modified.items():
        result[key] = expected_apply(original.get(key), value, current.get(key))
    return result


@settings(max_examples=300, deadline=None)
@given(_docs, _docs, _docs)
def test_three_way_merge_patch_property(original: dict, modified: dict, current: dict) -> None:
    patch = three_way_merge_patch(original, modified, current, None)
    expected = expected_apply(original, modified, current)
    assert canon(merge_patch(current, patch)) == canon(expected)
    # kubectl sends nothing when nothing would change ("unchanged")
    assert (patch == {}) == (canon(expected) == canon(current))


@settings(max_examples=300, deadline=None)
@given(_docs, _docs, _docs)
def test_three_way_strategic_matches_merge_for_plain_fields(
    original: dict, modified: dict, current: dict
) -> None:
    patch = three_way_merge_patch(original, modified, current, "ConfigMap")
    expected = expected_apply(original, modified, current)
    assert canon(strategic_merge_patch(current, patch, "ConfigMap")) == canon(expected)


_names = st.sampled_from(["a", "b", "c", "d"])
_env = st.lists(
    st.fixed_dictionaries({"name": _names, "value": st.sampled_from(["1", "2"])}),
    max_size=3,
    unique_by=lambda e: e["name"],
)
_container = st.fixed_dictionaries(
    {"name": _names}, optional={"image": st.sampled_from(["i1", "i2"]), "env": _env}
)
_pod = st.builds(
    lambda cs: {"spec": {"containers": cs}},
    st.lists(_container, max_size=3, unique_by=lambda c: c["name"]),
)


def expected_keyed(original: list, modified: list, current: list) -> dict[str, Any]:
    """Containers (and their env) by name after apply: items the user dropped are gone,
    server-only items stay, the others are merged."""
    was = {c["name"]: c for c in original}
    want = {c["name"]: c for c in modified}
    out: dict[str, Any] = {}
    for c in current:
        if c["name"] in want:
            o, m = was.get(c["name"], {}), want[c["name"]]
            merged = {k: v for k, v in c.items() if k in m or k not in o}
            merged.update({k: v for k, v in m.items() if k != "env"})
            if "env" in m:
                merged["env"] = expected_keyed(o.get("env", []), m["env"], c.get("env", []))
            out[c["name"]] = merged
        elif c["name"] not in was:
            out[c["name"]] = c
    for name, c in want.items():
        out.setdefault(name, c)
    return {name: _env_by_name(c) for name, c in out.items()}


def _env_by_name(container: dict[str, Any]) -> dict[str, Any]:
    if isinstance(container.get("env"), list):
        return {**container, "env": {e["name"]: e for e in container["env"]}}
    return container


def by_name(containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {c["name"]: _env_by_name(c) for c in containers}


@settings(max_examples=300, deadline=None)
@given(_pod, _pod, _pod)
def test_three_way_strategic_keyed_lists_property(
    original: dict, modified: dict, current: dict
) -> None:
    patch = three_way_merge_patch(original, modified, current, "Pod")
    result = strategic_merge_patch(current, patch, "Pod")["spec"]["containers"]
    expected = expected_keyed(
        original["spec"]["containers"],
        modified["spec"]["containers"],
        current["spec"]["containers"],
    )
    assert canon(by_name(result)) == canon(expected)
    # the user's containers come out in the user's order
    wanted = [c["name"] for c in modified["spec"]["containers"]]
    assert [c["name"] for c in result if c["name"] in wanted] == wanted
