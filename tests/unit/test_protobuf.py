"""apiserver.protobuf: bodies recorded from kubectl and helm, hand-built edge cases, fuzzing."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apiserver import protobuf
from machinery import errors

FIXTURES = Path(__file__).parent / "protobuf_fixtures"


# --- a tiny encoder for hand-built bodies --------------------------------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative ints go on the wire as 64-bit two's complement
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def num(field: int, n: int) -> bytes:
    return varint(field << 3) + varint(n)


def raw(field: int, data: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(data)) + data


def text(field: int, value: str) -> bytes:
    return raw(field, value.encode())


def msg(field: int, *parts: bytes) -> bytes:
    return raw(field, b"".join(parts))


def entry(field: int, key: str, value: bytes) -> bytes:
    """One ``map<string, V>`` entry; ``value`` is the already-encoded value field 2."""
    return msg(field, text(1, key), value)


def envelope(api_version: str, kind: str, *parts: bytes, extra: bytes = b"") -> bytes:
    type_meta = msg(1, text(1, api_version), text(2, kind))
    return protobuf.MAGIC + type_meta + raw(2, b"".join(parts)) + extra


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.pb").read_bytes()


def meta(name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, **more}


# --- bodies recorded from the real clients -------------------------------------------------------


def container(name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.35", **more}


RECORDED = [
    ("namespace", {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("x")}),
    (
        "configmap",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("c"), "data": {"a": "b"}},
    ),
    (
        "secret",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta("s"),
            "data": {"k": base64.b64encode(b"v").decode()},
        },
    ),
    (
        "service-clusterip",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta("s", labels={"app": "s"}),
            "spec": {
                "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                "selector": {"app": "s"},
                "type": "ClusterIP",
            },
        },
    ),
    (
        "service-nodeport",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta("np", labels={"app": "np"}),
            "spec": {
                "ports": [
                    {
                        "name": "80-8080",
                        "protocol": "TCP",
                        "port": 80,
                        "targetPort": 8080,
                        "nodePort": 30080,
                    }
                ],
                "selector": {"app": "np"},
                "type": "NodePort",
            },
        },
    ),
    ("serviceaccount", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("sa")}),
    (
        "deployment",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta("d", labels={"app": "d"}),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [container("busybox")]},
                },
            },
        },
    ),
    (
        "job",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta("j"),
            "spec": {
                "template": {"spec": {"containers": [container("j")], "restartPolicy": "Never"}}
            },
        },
    ),
    (
        "cronjob",
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta("cj"),
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {
                    "metadata": meta("cj"),
                    "spec": {
                        "template": {
                            "spec": {"containers": [container("cj")], "restartPolicy": "OnFailure"}
                        }
                    },
                },
            },
        },
    ),
    (
        "autoscale",
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta("d"),
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "d", "apiVersion": "apps/v1"},
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50},
                        },
                    }
                ],
            },
        },
    ),
    (
        "token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600},
        },
    ),
    ("helm-uninstall-2", {"apiVersion": "v1", "kind": "DeleteOptions"}),
]


@pytest.mark.parametrize(("name", "expected"), RECORDED, ids=[r[0] for r in RECORDED])
def test_recorded_kubectl_bodies(name: str, expected: dict[str, Any]) -> None:
    assert protobuf.decode(fixture(name)) == expected


@pytest.mark.parametrize(
    ("name", "status"),
    [("helm-install", "pending-install"), ("helm-install-2", "deployed")],
    ids=["create", "update"],
)
def test_recorded_helm_release_secret(name: str, status: str) -> None:
    """Secret ``data`` is bytes: base64 of helm's own base64(gzip(JSON release))."""
    secret = protobuf.decode(fixture(name))
    assert secret["kind"] == "Secret"
    assert secret["type"] == "helm.sh/release.v1"
    assert secret["metadata"]["name"] == "sh.helm.release.v1.r.v1"
    labels = secret["metadata"]["labels"]
    assert {k: labels[k] for k in ("name", "owner", "status", "version")} == {
        "name": "r",
        "owner": "helm",
        "status": status,
        "version": "1",
    }
    release = json.loads(
        gzip.decompress(base64.b64decode(base64.b64decode(secret["data"]["release"])))
    )
    assert (release["name"], release["namespace"], release["info"]["status"]) == (
        "r",
        "default",
        status,
    )


# --- hand-built bodies: zero values, pointers, special types -------------------------------------


def deployment(*spec: bytes, metadata: bytes = text(1, "d")) -> bytes:
    return envelope("apps/v1", "Deployment", msg(1, metadata), msg(2, *spec))


CASES = [
    pytest.param(
        deployment(num(1, 0), num(5, 0), num(7, 0), num(6, 0)),
        {"replicas": 0, "revisionHistoryLimit": 0},
        id="pointer-zero-kept-value-zero-dropped",
    ),
    pytest.param(
        deployment(num(5, 3), num(5, 7)),
        {"minReadySeconds": 7},
        id="last-scalar-wins",
    ),
    pytest.param(
        deployment(num(9, -1)),
        {"progressDeadlineSeconds": -1},
        id="negative-int32-sign-extended",
    ),
    pytest.param(
        deployment(
            msg(
                4,
                text(1, "RollingUpdate"),
                msg(2, msg(1, num(1, 1), text(3, "25%")), msg(2, num(2, 0))),
            )
        ),
        {
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 0},
            }
        },
        id="int-or-string-pointers",
    ),
    pytest.param(
        deployment(msg(4, text(1, ""), raw(2, b""))),
        {"strategy": {"rollingUpdate": {}}},
        id="empty-pointer-message-kept",
    ),
    pytest.param(
        deployment(msg(2, entry(1, "a", text(2, "1"))), msg(2, entry(1, "b", text(2, "")))),
        {"selector": {"matchLabels": {"a": "1", "b": ""}}},
        id="message-occurrences-merge",
    ),
]


@pytest.mark.parametrize(("body", "spec"), CASES)
def test_deployment_spec_semantics(body: bytes, spec: dict[str, Any]) -> None:
    assert protobuf.decode(body) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": spec,
    }


def test_pod_template_fields() -> None:
    """Inlined Go structs, quantity maps, IntOrString probe ports, packed repeated ints."""
    probe = msg(
        10, msg(1, msg(2, text(1, "/healthz"), msg(2, num(1, 1), text(3, "http")))), num(4, 5)
    )
    env = msg(7, text(1, "PASSWORD"), msg(3, msg(4, msg(1, text(1, "creds")), text(2, "pw"))))
    resources = msg(
        8, entry(1, "cpu", msg(2, text(1, "500m"))), entry(2, "memory", msg(2, text(1, "64Mi")))
    )
    mount = msg(9, text(1, "scratch"), num(2, 1), text(3, "/tmp"))
    ctr = msg(
        2,
        text(1, "app"),
        text(2, "busybox:1.35"),
        text(3, "sh"),
        text(3, ""),
        probe,
        env,
        resources,
        mount,
    )
    volume = msg(1, text(1, "scratch"), msg(2, msg(2)))
    security = msg(14, num(2, 0), raw(4, varint(1000) + varint(2000)))
    pod = msg(2, volume, ctr, num(4, 0), text(6, ""), security)
    body = envelope("v1", "Pod", msg(1, text(1, "p"), text(3, "ns")), pod)
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "containers": [
                {
                    "name": "app",
                    "image": "busybox:1.35",
                    "command": ["sh", ""],
                    "env": [
                        {
                            "name": "PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}},
                        }
                    ],
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                    "volumeMounts": [{"name": "scratch", "readOnly": True, "mountPath": "/tmp"}],
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http"},
                        "periodSeconds": 5,
                    },
                }
            ],
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsUser": 0, "supplementalGroups": [1000, 2000]},
        },
    }


def test_object_meta() -> None:
    owner = msg(
        13,
        text(5, "apps/v1"),
        text(1, "ReplicaSet"),
        text(3, "rs"),
        text(4, "u1"),
        num(6, 1),
        num(7, 0),
    )
    managed = msg(
        17,
        text(1, "kubectl"),
        text(2, "Update"),
        msg(4, num(1, 1_700_000_000)),
        text(6, "FieldsV1"),
        msg(7, raw(1, b'{"f:data":{}}')),
    )
    metadata = msg(
        1,
        text(1, "c"),
        text(2, "c-"),
        text(5, "uid-1"),
        text(6, "42"),
        num(7, 3),
        msg(8, num(1, 1_700_000_000), num(2, 999)),
        msg(9),
        entry(12, "note", text(2, "x")),
        owner,
        text(14, "example.com/f"),
        managed,
    )
    binary = entry(3, "blob", raw(2, b"\x00\xff"))
    body = envelope("v1", "ConfigMap", metadata, num(4, 0), binary)
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "c",
            "generateName": "c-",
            "uid": "uid-1",
            "resourceVersion": "42",
            "generation": 3,
            "creationTimestamp": "2023-11-14T22:13:20Z",
            "annotations": {"note": "x"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "rs",
                    "uid": "u1",
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
            "finalizers": ["example.com/f"],
            "managedFields": [
                {
                    "manager": "kubectl",
                    "operation": "Update",
                    "time": "2023-11-14T22:13:20Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {}},
                }
            ],
        },
        "immutable": False,
        "binaryData": {"blob": "AP8="},
    }


@pytest.mark.parametrize("api_version", ["v1", "apps/v1", "meta.k8s.io/v1"])
def test_delete_options(api_version: str) -> None:
    body = envelope(
        api_version,
        "DeleteOptions",
        num(1, 0),
        msg(2, text(1, "u1"), text(2, "")),
        num(3, 0),
        text(4, "Foreground"),
        text(5, "All"),
    )
    assert protobuf.decode(body) == {
        "apiVersion": api_version,
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u1", "resourceVersion": ""},
        "orphanDependents": False,
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    }


def test_autoscaling_v1_hpa() -> None:
    target = msg(1, text(1, "Deployment"), text(2, "d"), text(3, "apps/v1"))
    body = envelope(
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        msg(1, text(1, "d")),
        msg(2, target, num(2, 1), num(3, 3), num(4, 50)),
    )
    assert protobuf.decode(body)["spec"] == {
        "scaleTargetRef": {"kind": "Deployment", "name": "d", "apiVersion": "apps/v1"},
        "minReplicas": 1,
        "maxReplicas": 3,
        "targetCPUUtilizationPercentage": 50,
    }


def test_zero_unknown_fields_are_ignored() -> None:
    """A Service status as clients send it: {loadBalancer: {}}, plus an empty future field."""
    body = envelope(
        "v1",
        "Service",
        msg(1, text(1, "s")),
        msg(2, text(4, "ClusterIP"), text(99, "")),
        msg(3, msg(1)),
    )
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"type": "ClusterIP"},
    }


# --- refusals ------------------------------------------------------------------------------------

MALFORMED = [
    pytest.param(b"\x0a\x00", id="no-magic"),
    pytest.param(protobuf.MAGIC + b"\x0a", id="truncated-varint"),
    pytest.param(protobuf.MAGIC + b"\x12\x05ab", id="length-past-end"),
    pytest.param(protobuf.MAGIC + b"\x08" + b"\xff" * 11, id="varint-too-long"),
    pytest.param(protobuf.MAGIC + b"\x0b", id="group-wire-type"),
    pytest.param(protobuf.MAGIC + b"\x02\x00", id="field-zero"),
    pytest.param(protobuf.MAGIC + b"\x0d\x00\x00", id="truncated-fixed32"),
    pytest.param(envelope("v1", "Namespace", msg(1, raw(1, b"\xff\xfe"))), id="bad-utf8"),
    pytest.param(envelope("v1", "Namespace", msg(1, num(1, 5))), id="string-as-varint"),
    pytest.param(deployment(text(1, "2")), id="int-as-string"),
    pytest.param(
        envelope("v1", "ConfigMap", msg(1, text(1, "c"), msg(7, raw(1, b"{")))),
        id="generation-as-message",
    ),
]


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_bodies_are_bad_requests(body: bytes) -> None:
    with pytest.raises(errors.BadRequest):
        protobuf.decode(body)


UNSUPPORTED = [
    pytest.param(envelope("v1", "Endpoints", msg(1, text(1, "e"))), id="unknown-kind"),
    pytest.param(envelope("apps/v1beta1", "Deployment"), id="unknown-version"),
    pytest.param(envelope("v1", "Namespace", extra=text(3, "gzip")), id="content-encoding"),
    pytest.param(envelope("v1", "Namespace", extra=text(4, "application/json")), id="content-type"),
    pytest.param(
        envelope("v1", "Namespace", msg(1, text(1, "x"), text(99, "new"))), id="unknown-field"
    ),
    pytest.param(envelope("v1", "Namespace", msg(3, text(1, "Active"))), id="non-empty-status"),
]


@pytest.mark.parametrize("body", UNSUPPORTED)
def test_unsupported_bodies_are_415(body: bytes) -> None:
    with pytest.raises(errors.UnsupportedMediaType):
        protobuf.decode(body)


def test_every_kind_names_a_message() -> None:
    for message in [*protobuf.KINDS.values(), *protobuf.ANY_VERSION_KINDS.values()]:
        assert message in protobuf.MESSAGES


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(protobuf.KINDS)), payload=st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(kind: tuple[str, str], payload: bytes) -> None:
    """Any payload decodes to a dict or is refused with a Status error, never another exception."""
    try:
        assert isinstance(protobuf.decode(envelope(*kind, payload)), dict)
    except (errors.BadRequest, errors.UnsupportedMediaType):
        pass


# --- live: re-record with the real kubectl and compare with its own JSON --------------------------

LIVE = [
    ("namespace", ["create", "namespace", "live-ns"]),
    ("configmap", ["create", "configmap", "c", "--from-literal=a=b", "--from-literal=e="]),
    ("secret", ["create", "secret", "generic", "s", "--from-literal=k=v", "--type=Opaque"]),
    ("service", ["create", "service", "nodeport", "svc", "--tcp=80:8080", "--node-port=30080"]),
    ("serviceaccount", ["create", "serviceaccount", "sa"]),
    (
        "deployment",
        ["create", "deployment", "d", "--image=busybox:1.35", "--replicas=0", "--port=80"],
    ),
    ("job", ["create", "job", "j", "--image=busybox:1.35", "--", "sh", "-c", "true"]),
]


def pruned(value: Any) -> Any:
    """Go JSON minus what omitempty cannot drop: nulls and empty objects (creationTimestamp,
    resources, strategy, status)."""
    if isinstance(value, dict):
        items = ((k, pruned(v)) for k, v in value.items())
        return {k: v for k, v in items if v is not None and v != {}}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


@pytest.mark.compat
def test_live_kubectl_bodies_match_its_json(tmp_path: Path) -> None:
    from tests.unit.protobuf_fixtures.record import KUBECTL, record

    if not KUBECTL.exists() and not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed (hack/ fetches it into .tools/bin)")
    kubectl = str(KUBECTL) if KUBECTL.exists() else "kubectl"
    recordings, _ = record([(name, [kubectl, *args]) for name, args in LIVE], tmp_path)
    assert [r.file.stem for r in recordings] == [name for name, _ in LIVE]
    for (name, args), recording in zip(LIVE, recordings, strict=True):
        dry = subprocess.run(
            [kubectl, args[0], "--dry-run=client", "-o", "json", *args[1:]],
            capture_output=True,
            text=True,
            check=True,
            env={"KUBECONFIG": "/dev/null", "PATH": "/usr/bin:/bin"},
        )
        expected = pruned(json.loads(dry.stdout))
        assert protobuf.decode(recording.file.read_bytes()) == expected, name


def test_eviction_and_access_review_bodies():
    body = envelope(
        "policy/v1", "Eviction", msg(1, text(1, "web-1"), text(3, "default")), msg(2, num(1, 0))
    )
    assert protobuf.decode(body) == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-1", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 0},
    }
    review = envelope(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        msg(1),
        msg(2, msg(1, text(1, "default"), text(2, "list"), text(5, "secrets"))),
    )
    assert protobuf.decode(review) == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {"namespace": "default", "verb": "list", "resource": "secrets"}
        },
    }
