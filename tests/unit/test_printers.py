"""machinery.printers: Kubernetes' server-side Table columns and cells, kind by kind."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from machinery.errors import BadRequest
from machinery.printers import (
    Column,
    column_definitions,
    crd_columns,
    format_label_selector,
    format_labels,
    human_age,
    jsonpath_values,
    render,
    table,
    table_row,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    """An RFC 3339 timestamp ``delta`` before NOW."""
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "creationTimestamp": ago(hours=1),
        **extra,
    }


# --------------------------------------------------------------------------- ages

AGE_CASES = [
    (timedelta(0), "0s"),
    (timedelta(seconds=1), "1s"),
    (timedelta(seconds=119), "119s"),
    (timedelta(seconds=120), "2m"),
    (timedelta(seconds=121), "2m1s"),
    (timedelta(minutes=9, seconds=59), "9m59s"),
    (timedelta(minutes=10), "10m"),
    (timedelta(minutes=10, seconds=59), "10m"),
    (timedelta(minutes=179), "179m"),
    (timedelta(hours=3), "3h"),
    (timedelta(hours=3, minutes=5), "3h5m"),
    (timedelta(hours=7, minutes=59), "7h59m"),
    (timedelta(hours=8), "8h"),
    (timedelta(hours=47, minutes=59), "47h"),
    (timedelta(hours=48), "2d"),
    (timedelta(days=2, hours=3), "2d3h"),
    (timedelta(days=7, hours=23), "7d23h"),
    (timedelta(days=8), "8d"),
    (timedelta(days=45), "45d"),
    (timedelta(days=729), "729d"),
    (timedelta(days=730), "2y"),
    (timedelta(days=731), "2y1d"),
    (timedelta(days=365 * 8), "8y"),
    (timedelta(days=365 * 8 + 100), "8y"),
    (timedelta(seconds=-1.5), "0s"),
    (timedelta(seconds=-3), "<invalid>"),
]


@pytest.mark.parametrize(
    ("delta", "expected"), AGE_CASES, ids=[c[1] + "@" + str(c[0]) for c in AGE_CASES]
)
def test_human_age_boundaries(delta: timedelta, expected: str) -> None:
    ts = (NOW - delta).isoformat()
    assert human_age(ts, NOW) == expected


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (None, "<unknown>"),
        ("", "<unknown>"),
        ("not-a-time", "<invalid>"),
        ("2025-06-01T11:55:00Z", "5m"),
        ("2025-06-01T13:55:00+02:00", "5m"),
        ("2025-06-01T11:57:00.123456Z", "2m59s"),
    ],
    ids=["none", "empty", "garbage", "zulu", "offset", "fraction"],
)
def test_human_age_inputs(ts: str | None, expected: str) -> None:
    assert human_age(ts, NOW) == expected


# --------------------------------------------------------------------------- pods


def container(name: str = "app", **state: Any) -> dict[str, Any]:
    """A containerStatus; ``state`` is one of running/waiting/terminated."""
    status: dict[str, Any] = {
        "name": name,
        "image": "nginx",
        "restartCount": 0,
        "ready": False,
        "state": state or {"waiting": {"reason": "ContainerCreating"}},
    }
    return status


def running(name: str = "app", ready: bool = True, restarts: int = 0, **extra: Any) -> dict:
    cs = container(name, running={"startedAt": ago(minutes=30)})
    return {**cs, "ready": ready, "started": True, "restartCount": restarts, **extra}


def pod(
    statuses: list[dict] | None = None,
    *,
    phase: str = "Running",
    containers: int = 1,
    init: list[dict] | None = None,
    init_statuses: list[dict] | None = None,
    conditions: list[dict] | None = None,
    **meta_extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {"name": f"c{i}" if containers > 1 else "app", "image": "nginx"}
            for i in range(containers)
        ],
        "nodeName": "node-1",
    }
    if init is not None:
        spec["initContainers"] = init
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta("web", **meta_extra),
        "spec": spec,
        "status": status,
    }


READY_TRUE = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]
CRASHED_5M_AGO = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(minutes=5)}}

POD_CASES = [
    ("running", pod([running()], conditions=READY_TRUE), ("1/1", "Running", "0")),
    ("pending-unscheduled", pod(phase="Pending"), ("0/1", "Pending", "0")),
    ("container-creating", pod([container()], phase="Pending"), ("0/1", "ContainerCreating", "0")),
    (
        "image-pull-backoff",
        pod(
            [container(waiting={"reason": "ImagePullBackOff", "message": "pull failed"})],
            phase="Pending",
        ),
        ("0/1", "ImagePullBackOff", "0"),
    ),
    (
        "crash-loop",
        pod(
            [
                {
                    **container(waiting={"reason": "CrashLoopBackOff"}),
                    "restartCount": 4,
                    "lastState": CRASHED_5M_AGO,
                }
            ]
        ),
        ("0/1", "CrashLoopBackOff", "4 (5m ago)"),
    ),
    (
        "completed",
        pod(
            [
                container(
                    terminated={"exitCode": 0, "reason": "Completed", "finishedAt": ago(minutes=1)}
                )
            ],
            phase="Succeeded",
        ),
        ("0/1", "Completed", "0"),
    ),
    (
        "oom-killed",
        pod([container(terminated={"exitCode": 137, "reason": "OOMKilled"})], phase="Failed"),
        ("0/1", "OOMKilled", "0"),
    ),
    (
        "exit-code-no-reason",
        pod([container(terminated={"exitCode": 3})], phase="Failed"),
        ("0/1", "ExitCode:3", "0"),
    ),
    (
        "signal-no-reason",
        pod([container(terminated={"exitCode": 137, "signal": 9})], phase="Failed"),
        ("0/1", "Signal:9", "0"),
    ),
    (
        "evicted",
        {**pod([], phase="Failed"), "status": {"phase": "Failed", "reason": "Evicted"}},
        ("0/1", "Evicted", "0"),
    ),
    (
        "init-0-of-1",
        pod(
            [container(waiting={"reason": "PodInitializing"})],
            phase="Pending",
            init=[{"name": "setup", "image": "busybox"}],
            init_statuses=[running("setup", ready=False)],
        ),
        ("0/1", "Init:0/1", "0"),
    ),
    (
        "init-1-of-2",
        pod(
            [container(waiting={"reason": "PodInitializing"})],
            phase="Pending",
            init=[{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}],
            init_statuses=[
                container("a", terminated={"exitCode": 0, "reason": "Completed"}),
                running("b", ready=False),
            ],
        ),
        ("0/1", "Init:1/2", "0"),
    ),
    (
        "init-crash-loop",
        pod(
            [container(waiting={"reason": "PodInitializing"})],
            phase="Pending",
            init=[{"name": "setup", "image": "busybox"}],
            init_statuses=[
                {
                    **container("setup", waiting={"reason": "CrashLoopBackOff"}),
                    "restartCount": 3,
                    "lastState": CRASHED_5M_AGO,
                }
            ],
        ),
        ("0/1", "Init:CrashLoopBackOff", "3 (5m ago)"),
    ),
    (
        "init-error",
        pod(
            [container(waiting={"reason": "PodInitializing"})],
            phase="Failed",
            init=[{"name": "setup", "image": "busybox"}],
            init_statuses=[container("setup", terminated={"exitCode": 1, "reason": "Error"})],
        ),
        ("0/1", "Init:Error", "0"),
    ),
    (
        "init-exit-code",
        pod(
            [],
            phase="Pending",
            init=[{"name": "setup", "image": "busybox"}],
            init_statuses=[container("setup", terminated={"exitCode": 2})],
        ),
        ("0/1", "Init:ExitCode:2", "0"),
    ),
    (
        "terminating",
        pod([running()], conditions=READY_TRUE, deletionTimestamp=ago(seconds=10)),
        ("1/1", "Terminating", "0"),
    ),
    (
        "terminal-pod-deleted-stays-completed",
        pod(
            [container(terminated={"exitCode": 0, "reason": "Completed"})],
            phase="Succeeded",
            deletionTimestamp=ago(seconds=10),
        ),
        ("0/1", "Completed", "0"),
    ),
    (
        "node-lost",
        {
            **pod([running()], deletionTimestamp=ago(minutes=1)),
            "status": {"phase": "Running", "reason": "NodeLost", "containerStatuses": [running()]},
        },
        ("1/1", "Unknown", "0"),
    ),
    (
        "scheduling-gated",
        pod(
            phase="Pending",
            conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
        ),
        ("0/1", "SchedulingGated", "0"),
    ),
    (
        "one-completed-one-running-ready",
        pod(
            [container("c0", terminated={"exitCode": 0, "reason": "Completed"}), running("c1")],
            containers=2,
            conditions=READY_TRUE,
        ),
        ("1/2", "Running", "0"),
    ),
    (
        "one-completed-one-running-not-ready",
        pod(
            [container("c0", terminated={"exitCode": 0, "reason": "Completed"}), running("c1")],
            containers=2,
            conditions=[{"type": "Ready", "status": "False"}],
        ),
        ("1/2", "NotReady", "0"),
    ),
    (
        "restarts-summed-latest-wins",
        pod(
            [
                running("c0", restarts=1, lastState={"terminated": {"finishedAt": ago(hours=3)}}),
                running("c1", restarts=2, lastState={"terminated": {"finishedAt": ago(minutes=7)}}),
            ],
            containers=2,
            conditions=READY_TRUE,
        ),
        ("2/2", "Running", "3 (7m ago)"),
    ),
    ("restarts-without-termination-time", pod([running(restarts=2)]), ("1/1", "Running", "2")),
    (
        "sidecar-counts-as-container",
        pod(
            [running()],
            init=[{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
            init_statuses=[running("proxy", restarts=1)],
            conditions=READY_TRUE,
        ),
        ("2/2", "Running", "1"),
    ),
]


@pytest.mark.parametrize(
    ("pod_obj", "expected"), [c[1:] for c in POD_CASES], ids=[c[0] for c in POD_CASES]
)
def test_pod_ready_status_restarts(pod_obj: dict, expected: tuple[str, str, str]) -> None:
    cells = table_row("Pod", pod_obj, now=NOW)
    assert tuple(cells[1:4]) == expected
    assert cells[0] == "web"
    assert cells[4] == "60m"


def test_pod_wide_cells() -> None:
    obj = pod([running()], conditions=[*READY_TRUE, {"type": "example.com/gate", "status": "True"}])
    obj["spec"]["readinessGates"] = [
        {"conditionType": "example.com/gate"},
        {"conditionType": "example.com/other"},
    ]
    obj["status"]["podIPs"] = [{"ip": "10.244.1.7"}, {"ip": "fd00::7"}]
    obj["status"]["podIP"] = "10.244.1.7"
    obj["status"]["nominatedNodeName"] = "node-2"
    assert table_row("Pod", obj, now=NOW)[5:] == ["10.244.1.7", "node-1", "node-2", "1/2"]

    bare = pod(phase="Pending")
    del bare["spec"]["nodeName"]
    assert table_row("Pod", bare, now=NOW)[5:] == ["<none>", "<none>", "<none>", "<none>"]


# --------------------------------------------------------------------------- other kinds

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]
    },
}
SELECTOR = {
    "matchLabels": {"app": "web", "tier": "front"},
    "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}],
}
SELECTOR_TEXT = "app=web,env in (dev,prod),tier=front"

KIND_CASES: list[tuple[str, str, str, dict, list]] = [
    (
        "deployment",
        "apps",
        "Deployment",
        {
            "metadata": meta("web"),
            "spec": {"replicas": 3, "selector": SELECTOR, "template": TEMPLATE},
            "status": {
                "replicas": 3,
                "readyReplicas": 2,
                "updatedReplicas": 3,
                "availableReplicas": 2,
            },
        },
        ["web", "2/3", 3, 2, "60m", "web,log", "nginx:1.27,busybox", SELECTOR_TEXT],
    ),
    (
        "deployment-new",
        "apps",
        "Deployment",
        {
            "metadata": meta("web"),
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
        },
        ["web", "0/1", 0, 0, "60m", "web,log", "nginx:1.27,busybox", "app=web"],
    ),
    (
        "replicaset",
        "apps",
        "ReplicaSet",
        {
            "metadata": meta("web-5d4f8"),
            "spec": {"replicas": 2, "selector": SELECTOR, "template": TEMPLATE},
            "status": {"replicas": 2, "readyReplicas": 1},
        },
        ["web-5d4f8", 2, 2, 1, "60m", "web,log", "nginx:1.27,busybox", SELECTOR_TEXT],
    ),
    (
        "statefulset",
        "apps",
        "StatefulSet",
        {
            "metadata": meta("db"),
            "spec": {"replicas": 3, "template": TEMPLATE},
            "status": {"readyReplicas": 3},
        },
        ["db", "3/3", "60m", "web,log", "nginx:1.27,busybox"],
    ),
    (
        "daemonset",
        "apps",
        "DaemonSet",
        {
            "metadata": meta("agent"),
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "spec": {
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [{"name": "a", "image": "agent:1"}],
                    }
                },
            },
            "status": {
                "desiredNumberScheduled": 3,
                "currentNumberScheduled": 3,
                "numberReady": 2,
                "updatedNumberScheduled": 3,
                "numberAvailable": 2,
            },
        },
        ["agent", 3, 3, 2, 3, 2, "kubernetes.io/os=linux", "60m", "a", "agent:1", "app=agent"],
    ),
    (
        "job-running",
        "batch",
        "Job",
        {
            "metadata": meta("pi"),
            "spec": {
                "completions": 3,
                "parallelism": 1,
                "template": TEMPLATE,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            },
            "status": {"succeeded": 1, "startTime": ago(minutes=4)},
        },
        [
            "pi",
            "Running",
            "1/3",
            "4m",
            "60m",
            "web,log",
            "nginx:1.27,busybox",
            "batch.kubernetes.io/controller-uid=u1",
        ],
    ),
    (
        "job-complete",
        "batch",
        "Job",
        {
            "metadata": meta("pi"),
            "spec": {"completions": 1, "template": TEMPLATE},
            "status": {
                "succeeded": 1,
                "startTime": ago(minutes=50),
                "completionTime": ago(minutes=48),
                "conditions": [{"type": "Complete", "status": "True"}],
            },
        },
        ["pi", "Complete", "1/1", "2m", "60m", "web,log", "nginx:1.27,busybox", "<none>"],
    ),
    (
        "job-parallel-no-completions",
        "batch",
        "Job",
        {
            "metadata": meta("work"),
            "spec": {"parallelism": 4, "template": TEMPLATE},
            "status": {"succeeded": 0, "conditions": [{"type": "Failed", "status": "True"}]},
        },
        ["work", "Failed", "0/1 of 4", "", "60m", "web,log", "nginx:1.27,busybox", "<none>"],
    ),
    (
        "job-suspended",
        "batch",
        "Job",
        {
            "metadata": meta("later"),
            "spec": {"suspend": True, "template": TEMPLATE},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]},
        },
        ["later", "Suspended", "0/1", "", "60m", "web,log", "nginx:1.27,busybox", "<none>"],
    ),
    (
        "cronjob",
        "batch",
        "CronJob",
        {
            "metadata": meta("nightly"),
            "spec": {
                "schedule": "0 2 * * *",
                "suspend": False,
                "jobTemplate": {"spec": {"template": TEMPLATE}},
            },
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(hours=10)},
        },
        [
            "nightly",
            "0 2 * * *",
            "<none>",
            "False",
            1,
            "10h",
            "60m",
            "web,log",
            "nginx:1.27,busybox",
            "<none>",
        ],
    ),
    (
        "service-clusterip",
        "",
        "Service",
        {
            "metadata": meta("web"),
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.20",
                "clusterIPs": ["10.96.0.20"],
                "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
            },
        },
        ["web", "ClusterIP", "10.96.0.20", "<none>", "80/TCP,53/UDP", "60m", "app=web"],
    ),
    (
        "service-nodeport-defaults",
        "",
        "Service",
        {
            "metadata": meta("web"),
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.0.21",
                "ports": [{"port": 80, "nodePort": 30080}],
            },
        },
        ["web", "NodePort", "10.96.0.21", "<none>", "80:30080/TCP", "60m", "<none>"],
    ),
    (
        "service-loadbalancer-pending",
        "",
        "Service",
        {
            "metadata": meta("lb"),
            "spec": {
                "type": "LoadBalancer",
                "clusterIPs": ["10.96.0.22"],
                "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}],
            },
        },
        ["lb", "LoadBalancer", "10.96.0.22", "<pending>", "443:31443/TCP", "60m", "<none>"],
    ),
    (
        "service-loadbalancer-ingress",
        "",
        "Service",
        {
            "metadata": meta("lb"),
            "spec": {
                "type": "LoadBalancer",
                "clusterIPs": ["10.96.0.22"],
                "externalIPs": ["192.0.2.9"],
                "ports": [{"port": 443, "protocol": "TCP"}],
            },
            "status": {
                "loadBalancer": {"ingress": [{"ip": "203.0.113.5"}, {"hostname": "lb.example.com"}]}
            },
        },
        [
            "lb",
            "LoadBalancer",
            "10.96.0.22",
            "203.0.113.5,lb.example.com,192.0.2.9",
            "443/TCP",
            "60m",
            "<none>",
        ],
    ),
    (
        "service-headless",
        "",
        "Service",
        {
            "metadata": meta("db"),
            "spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"}},
        },
        ["db", "ClusterIP", "None", "<none>", "<none>", "60m", "app=db"],
    ),
    (
        "service-externalname",
        "",
        "Service",
        {"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "example.com"}},
        ["ext", "ExternalName", "<none>", "example.com", "<none>", "60m", "<none>"],
    ),
    (
        "node-ready",
        "",
        "Node",
        {
            "metadata": {
                **meta("node-1"),
                "labels": {
                    "node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/worker": "",
                    "kubernetes.io/hostname": "node-1",
                },
            },
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"},
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "192.168.1.10"},
                    {"type": "Hostname", "address": "node-1"},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.33.0",
                    "osImage": "Debian GNU/Linux 12",
                    "kernelVersion": "6.1.0",
                    "containerRuntimeVersion": "containerd://1.6.20",
                },
            },
        },
        [
            "node-1",
            "Ready",
            "control-plane,worker",
            "60m",
            "v1.33.0",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 12",
            "6.1.0",
            "containerd://1.6.20",
        ],
    ),
    (
        "node-cordoned-not-ready",
        "",
        "Node",
        {
            "metadata": {**meta("node-2"), "labels": {"kubernetes.io/role": "edge"}},
            "spec": {"unschedulable": True},
            "status": {
                "conditions": [{"type": "Ready", "status": "Unknown"}],
                "addresses": [{"type": "ExternalIP", "address": "203.0.113.1"}],
            },
        },
        [
            "node-2",
            "NotReady,SchedulingDisabled",
            "edge",
            "60m",
            "",
            "<none>",
            "203.0.113.1",
            "<unknown>",
            "<unknown>",
            "<unknown>",
        ],
    ),
    (
        "node-cordoned-ready",
        "",
        "Node",
        {
            "metadata": meta("node-3"),
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
        [
            "node-3",
            "Ready,SchedulingDisabled",
            "<none>",
            "60m",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>",
        ],
    ),
    (
        "node-no-conditions",
        "",
        "Node",
        {"metadata": meta("node-4")},
        [
            "node-4",
            "Unknown",
            "<none>",
            "60m",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>",
        ],
    ),
    (
        "namespace",
        "",
        "Namespace",
        {"metadata": meta("team-a"), "status": {"phase": "Terminating"}},
        ["team-a", "Terminating", "60m"],
    ),
    (
        "configmap",
        "",
        "ConfigMap",
        {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}},
        ["cfg", 3, "60m"],
    ),
    (
        "secret",
        "",
        "Secret",
        {
            "metadata": meta("tls"),
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "eA==", "tls.key": "eQ=="},
        },
        ["tls", "kubernetes.io/tls", 2, "60m"],
    ),
    ("secret-default-type", "", "Secret", {"metadata": meta("s")}, ["s", "Opaque", 0, "60m"]),
    (
        "serviceaccount",
        "",
        "ServiceAccount",
        {"metadata": meta("default"), "secrets": [{"name": "tok"}]},
        ["default", 1, "60m"],
    ),
    (
        "endpoints",
        "",
        "Endpoints",
        {
            "metadata": meta("web"),
            "subsets": [
                {
                    "addresses": [{"ip": "10.244.0.5"}, {"ip": "10.244.1.6"}],
                    "ports": [{"port": 8080, "name": "http"}, {"port": 9090, "name": "m"}],
                }
            ],
        },
        ["web", "10.244.0.5:8080,10.244.1.6:8080,10.244.0.5:9090 + 1 more...", "60m"],
    ),
    (
        "endpoints-headless-v6",
        "",
        "Endpoints",
        {
            "metadata": meta("db"),
            "subsets": [
                {"addresses": [{"ip": "10.244.0.9"}]},
                {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 5432}]},
            ],
        },
        ["db", "10.244.0.9,[fd00::1]:5432", "60m"],
    ),
    ("endpoints-empty", "", "Endpoints", {"metadata": meta("none")}, ["none", "<none>", "60m"]),
    (
        "endpointslice",
        "discovery.k8s.io",
        "EndpointSlice",
        {
            "metadata": meta("web-abc"),
            "addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "metrics"}, {}, {"port": 81}],
            "endpoints": [{"addresses": ["10.244.0.5"]}, {"addresses": ["10.244.1.6"]}],
        },
        ["web-abc", "IPv4", "80,metrics,* + 1 more...", "10.244.0.5,10.244.1.6", "60m"],
    ),
    (
        "endpointslice-empty",
        "discovery.k8s.io",
        "EndpointSlice",
        {"metadata": meta("web-x"), "addressType": "IPv4"},
        ["web-x", "IPv4", "<unset>", "<unset>", "60m"],
    ),
    (
        "event-core",
        "",
        "Event",
        {
            "metadata": meta("web.17a"),
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off restarting failed container\n",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": ago(minutes=30),
            "lastTimestamp": ago(seconds=40),
            "count": 12,
        },
        [
            "40s",
            "Warning",
            "BackOff",
            "pod/web",
            "spec.containers{app}",
            "kubelet, node-1",
            "Back-off restarting failed container",
            "30m",
            12,
            "web.17a",
        ],
    ),
    (
        "event-core-event-time-only",
        "",
        "Event",
        {
            "metadata": meta("kopf-event-x"),
            "type": "Normal",
            "reason": "Logging",
            "message": "done",
            "involvedObject": {"kind": "Namespace"},
            "eventTime": "2025-06-01T11:58:00.000000+00:00",
            "reportingComponent": "kopf",
        },
        ["2m", "Normal", "Logging", "namespace", "", "kopf", "done", "2m", 1, "kopf-event-x"],
    ),
    (
        "event-events-k8s-io-series",
        "events.k8s.io",
        "Event",
        {
            "metadata": meta("web.17b"),
            "type": "Normal",
            "reason": "Pulled",
            "note": "pulled",
            "regarding": {"kind": "Pod", "name": "web"},
            "eventTime": ago(hours=2),
            "reportingController": "kubelet",
            "reportingInstance": "node-1",
            "series": {"count": 5, "lastObservedTime": ago(minutes=3)},
        },
        [
            "3m",
            "Normal",
            "Pulled",
            "pod/web",
            "",
            "kubelet, node-1",
            "pulled",
            "120m",
            5,
            "web.17b",
        ],
    ),
    (
        "hpa-v2",
        "autoscaling",
        "HorizontalPodAutoscaler",
        {
            "metadata": meta("web"),
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 10,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50},
                        },
                    },
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "memory",
                            "target": {"type": "AverageValue", "averageValue": "100Mi"},
                        },
                    },
                    {
                        "type": "Pods",
                        "pods": {"metric": {"name": "qps"}, "target": {"averageValue": "10"}},
                    },
                ],
            },
            "status": {
                "currentReplicas": 3,
                "currentMetrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "current": {"averageUtilization": 23}},
                    }
                ],
            },
        },
        [
            "web",
            "Deployment/web",
            "cpu: 23%/50%, memory: <unknown>/100Mi + 1 more...",
            "2",
            10,
            3,
            "60m",
        ],
    ),
    (
        "hpa-v2-no-metrics-defaults",
        "autoscaling",
        "HorizontalPodAutoscaler",
        {
            "metadata": meta("web"),
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4},
        },
        ["web", "Deployment/web", "<none>", "1", 4, 0, "60m"],
    ),
    (
        "hpa-v1",
        "autoscaling",
        "HorizontalPodAutoscaler",
        {
            "metadata": meta("web"),
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web"},
                "minReplicas": 1,
                "maxReplicas": 5,
                "targetCPUUtilizationPercentage": 80,
            },
            "status": {"currentReplicas": 1},
        },
        ["web", "Deployment/web", "cpu: <unknown>/80%", "1", 5, 1, "60m"],
    ),
    (
        "lease",
        "coordination.k8s.io",
        "Lease",
        {"metadata": meta("node-1"), "spec": {"holderIdentity": "node-1"}},
        ["node-1", "node-1", "60m"],
    ),
    (
        "lease-unheld",
        "coordination.k8s.io",
        "Lease",
        {"metadata": meta("x"), "spec": {}},
        ["x", "", "60m"],
    ),
    (
        "priorityclass",
        "scheduling.k8s.io",
        "PriorityClass",
        {
            "metadata": meta("high"),
            "value": 1000000,
            "globalDefault": False,
            "preemptionPolicy": "Never",
        },
        ["high", 1000000, False, "60m", "Never"],
    ),
    (
        "crd",
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        {"metadata": {"name": "widgets.example.com", "creationTimestamp": "2025-05-30T08:00:00Z"}},
        ["widgets.example.com", "2025-05-30T08:00:00Z"],
    ),
    (
        "pdb",
        "policy",
        "PodDisruptionBudget",
        {
            "metadata": meta("web"),
            "spec": {"minAvailable": "50%"},
            "status": {"disruptionsAllowed": 1},
        },
        ["web", "50%", "N/A", 1, "60m"],
    ),
    (
        "controllerrevision",
        "apps",
        "ControllerRevision",
        {
            "metadata": {
                **meta("db-7c9"),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "StatefulSet",
                        "name": "db",
                        "controller": True,
                    }
                ],
            },
            "revision": 2,
        },
        ["db-7c9", "statefulset.apps/db", 2, "60m"],
    ),
    (
        "pvc-bound",
        "",
        "PersistentVolumeClaim",
        {
            "metadata": meta("data"),
            "spec": {
                "volumeName": "pv-1",
                "storageClassName": "local",
                "resources": {"requests": {"storage": "1Gi"}},
            },
            "status": {
                "phase": "Bound",
                "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                "capacity": {"storage": "2Gi"},
            },
        },
        ["data", "Bound", "pv-1", "2Gi", "RWO,RWX", "local", "<unset>", "60m", "<unset>"],
    ),
    (
        "persistentvolume",
        "",
        "PersistentVolume",
        {
            "metadata": meta("pv-1", annotations={"volume.beta.kubernetes.io/storage-class": "x"}),
            "spec": {
                "capacity": {"storage": "2Gi"},
                "accessModes": ["ReadWriteOncePod"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "local",
                "claimRef": {"namespace": "shop", "name": "data"},
                "volumeMode": "Filesystem",
            },
            "status": {"phase": "Failed", "reason": "VolumeFailedDelete"},
        },
        [
            "pv-1",
            "2Gi",
            "RWOP",
            "Delete",
            "Failed",
            "shop/data",
            "x",
            "<unset>",
            "VolumeFailedDelete",
            "60m",
            "Filesystem",
        ],
    ),
    (
        "resourcequota",
        "",
        "ResourceQuota",
        {
            "metadata": meta("q"),
            "status": {
                "hard": {"requests.cpu": "2", "pods": "10", "limits.memory": "4Gi"},
                "used": {"requests.cpu": "500m", "pods": "3"},
            },
        },
        ["q", "pods: 3/10, requests.cpu: 500m/2", "limits.memory: 0/4Gi", "60m"],
    ),
    (
        "custom-resource-fallback",
        "example.com",
        "Widget",
        {"metadata": meta("w1"), "spec": {"size": 3}},
        ["w1", "60m"],
    ),
]


@pytest.mark.parametrize(
    ("group", "kind", "obj", "expected"),
    [c[1:] for c in KIND_CASES],
    ids=[c[0] for c in KIND_CASES],
)
def test_kind_cells(group: str, kind: str, obj: dict, expected: list) -> None:
    before = copy.deepcopy(obj)
    cells = table_row(kind, obj, group=group, now=NOW)
    assert cells == expected
    assert len(cells) == len(column_definitions(kind, group))
    assert obj == before  # pure: the input is untouched


WORKLOAD_WIDE = ["Containers", "Images", "Selector"]
COLUMN_CASES = [
    (
        "",
        "Pod",
        ["Name", "Ready", "Status", "Restarts", "Age"],
        ["IP", "Node", "Nominated Node", "Readiness Gates"],
    ),
    ("apps", "Deployment", ["Name", "Ready", "Up-to-date", "Available", "Age"], WORKLOAD_WIDE),
    ("apps", "ReplicaSet", ["Name", "Desired", "Current", "Ready", "Age"], WORKLOAD_WIDE),
    ("apps", "StatefulSet", ["Name", "Ready", "Age"], ["Containers", "Images"]),
    (
        "apps",
        "DaemonSet",
        ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"],
        WORKLOAD_WIDE,
    ),
    ("batch", "Job", ["Name", "Status", "Completions", "Duration", "Age"], WORKLOAD_WIDE),
    (
        "batch",
        "CronJob",
        ["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"],
        WORKLOAD_WIDE,
    ),
    ("", "Service", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"], ["Selector"]),
    (
        "",
        "Node",
        ["Name", "Status", "Roles", "Age", "Version"],
        ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"],
    ),
    ("", "Namespace", ["Name", "Status", "Age"], []),
    ("", "ConfigMap", ["Name", "Data", "Age"], []),
    ("", "Secret", ["Name", "Type", "Data", "Age"], []),
    ("", "Endpoints", ["Name", "Endpoints", "Age"], []),
    (
        "",
        "Event",
        ["Last Seen", "Type", "Reason", "Object", "Message"],
        ["Subobject", "Source", "First Seen", "Count", "Name"],
    ),
    (
        "events.k8s.io",
        "Event",
        ["Last Seen", "Type", "Reason", "Object", "Message"],
        ["Subobject", "Source", "First Seen", "Count", "Name"],
    ),
    (
        "autoscaling",
        "HorizontalPodAutoscaler",
        ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"],
        [],
    ),
    ("coordination.k8s.io", "Lease", ["Name", "Holder", "Age"], []),
    ("", "ServiceAccount", ["Name", "Secrets", "Age"], []),
    (
        "scheduling.k8s.io",
        "PriorityClass",
        ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"],
        [],
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition", ["Name", "Created At"], []),
    ("discovery.k8s.io", "EndpointSlice", ["Name", "AddressType", "Ports", "Endpoints", "Age"], []),
    (
        "policy",
        "PodDisruptionBudget",
        ["Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"],
        [],
    ),
    ("apps", "ControllerRevision", ["Name", "Controller", "Revision", "Age"], []),
    (
        "",
        "PersistentVolumeClaim",
        [
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
        ],
        ["VolumeMode"],
    ),
    (
        "",
        "PersistentVolume",
        [
            "Name",
            "Capacity",
            "Access Modes",
            "Reclaim Policy",
            "Status",
            "Claim",
            "StorageClass",
            "VolumeAttributesClass",
            "Reason",
            "Age",
        ],
        ["VolumeMode"],
    ),
    ("", "ResourceQuota", ["Name", "Request", "Limit", "Age"], []),
    ("example.com", "Widget", ["Name", "Age"], []),
]


@pytest.mark.parametrize(
    ("group", "kind", "shown", "wide"), COLUMN_CASES, ids=[f"{c[1]}.{c[0]}" for c in COLUMN_CASES]
)
def test_column_definitions(group: str, kind: str, shown: list[str], wide: list[str]) -> None:
    cols = column_definitions(kind, group)
    assert [c["name"] for c in cols if c["priority"] == 0] == shown
    assert [c["name"] for c in cols if c["priority"] == 1] == wide
    assert [c["name"] for c in cols if c["format"] == "name"] == ["Name"]
    for c in cols:
        assert set(c) == {"name", "type", "format", "description", "priority"}
        assert c["type"] in {"string", "integer", "boolean", "date", "number"}
        assert c["description"]


def test_kind_lookup_without_group() -> None:
    assert column_definitions("Deployment") == column_definitions("Deployment", "apps")
    assert column_definitions("Event") == column_definitions("Event", "")
    # a custom resource sharing a built-in kind name keeps the default columns
    assert [c["name"] for c in column_definitions("Deployment", "example.com")] == ["Name", "Age"]


# --------------------------------------------------------------------------- Table objects


def _pods() -> list[dict]:
    done = pod([container(terminated={"exitCode": 0, "reason": "Completed"})], phase="Succeeded")
    done["metadata"]["name"] = "job-x"
    return [pod([running()], conditions=READY_TRUE), done]


def test_table_metadata_mode_is_default() -> None:
    out = table("Pod", _pods(), now=NOW, list_meta={"resourceVersion": "42", "continue": ""})
    assert out["kind"] == "Table"
    assert out["apiVersion"] == "meta.k8s.io/v1"
    assert out["metadata"] == {"resourceVersion": "42", "continue": ""}
    assert [c["name"] for c in out["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    first, second = out["rows"]
    assert first["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": _pods()[0]["metadata"],
    }
    assert first["cells"][:3] == ["web", "1/1", "Running"]
    assert "conditions" not in first
    assert second["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


@pytest.mark.parametrize("mode", ["Metadata", ""])
def test_table_empty_mode_means_metadata(mode: str) -> None:
    row = table("Pod", _pods()[:1], include_object=mode, now=NOW)["rows"][0]
    assert row["object"]["kind"] == "PartialObjectMetadata"


def test_table_object_and_none_modes() -> None:
    bare = {"metadata": meta("cfg"), "data": {"k": "v"}}  # stored without kind/apiVersion
    obj_rows = table("ConfigMap", [bare], include_object="Object", now=NOW)["rows"]
    assert obj_rows[0]["object"] == {"kind": "ConfigMap", "apiVersion": "v1", **bare}
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("web"),
        "spec": {"template": TEMPLATE},
    }
    rows = table(
        "Deployment",
        [deploy],
        group="apps",
        include_object="Object",
        api_version="apps/v1",
        now=NOW,
    )["rows"]
    assert rows[0]["object"] == deploy
    none_rows = table("ConfigMap", [bare], include_object="None", now=NOW)["rows"]
    assert none_rows == [{"cells": ["cfg", 1, "60m"], "object": None}]


def test_table_rejects_unknown_include_object() -> None:
    with pytest.raises(BadRequest) as err:
        table("Pod", [], include_object="Everything")
    assert err.value.status()["code"] == 400
    assert "Everything" in err.value.message


def test_table_empty_list_and_no_headers() -> None:
    out = table("Service", [], now=NOW)
    assert out["rows"] == []
    assert out["metadata"] == {}
    assert len(out["columnDefinitions"]) == 7
    watch_event = table("Service", [], no_headers=True)
    assert watch_event["columnDefinitions"] == []


# --------------------------------------------------------------------------- CRDs

WIDGET_VERSION = {
    "name": "v1",
    "served": True,
    "storage": True,
    "additionalPrinterColumns": [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {
            "name": "Owner",
            "type": "string",
            "jsonPath": ".metadata.labels['example.com/owner']",
            "description": "Who owns it",
            "priority": 1,
        },
        {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio"},
        {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
        {"name": "Ports", "type": "string", "jsonPath": ".spec.ports"},
        {"name": "First", "type": "string", "jsonPath": ".spec.ports[0].name"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}


def widget(**spec: Any) -> dict:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {**meta("w1"), "labels": {"example.com/owner": "team-a"}},
        "spec": spec,
        "status": {
            "ratio": 0.75,
            "conditions": [
                {"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
        },
    }


def test_crd_columns_definitions() -> None:
    cols = crd_columns(WIDGET_VERSION)
    assert [c.name for c in cols] == [
        "Name",
        "Size",
        "Ready",
        "Owner",
        "Ratio",
        "Paused",
        "Ports",
        "First",
        "Age",
    ]
    defs = column_definitions("Widget", "example.com", columns=cols)
    assert defs[0]["format"] == "name"
    assert defs[1] == {
        "name": "Size",
        "type": "integer",
        "format": "",
        "priority": 0,
        "description": "Custom resource definition column (in JSONPath format): .spec.size",
    }
    assert defs[3]["priority"] == 1
    assert defs[3]["description"] == "Who owns it"


def test_crd_row_cells() -> None:
    cols = crd_columns(WIDGET_VERSION)
    obj = widget(size=3, paused=True, ports=[{"name": "http", "port": 80}])
    assert table_row("Widget", obj, group="example.com", now=NOW, columns=cols) == [
        "w1",
        3,
        "True",
        "team-a",
        0.75,
        True,
        '[{"name":"http","port":80}]',
        "http",
        "60m",
    ]


def test_crd_row_missing_values_are_null() -> None:
    cols = crd_columns(WIDGET_VERSION)
    obj = {"metadata": {"name": "w2"}, "spec": {"size": "big"}}
    assert table_row("Widget", obj, now=NOW, columns=cols) == [
        "w2",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ]


def test_crd_without_columns_gets_age() -> None:
    cols = crd_columns({"name": "v1"})
    assert [(c.name, c.type) for c in cols] == [("Name", "string"), ("Age", "date")]
    assert table_row("Widget", widget(), now=NOW, columns=cols) == ["w1", "60m"]


def test_crd_stops_at_an_unparseable_column() -> None:
    version = {
        "additionalPrinterColumns": [
            {"name": "A", "type": "string", "jsonPath": ".spec.a"},
            {"name": "Bad", "type": "string", "jsonPath": ".spec[?(@.x ~ 1)]"},
            {"name": "C", "type": "string", "jsonPath": ".spec.c"},
        ]
    }
    assert [c.name for c in crd_columns(version)] == ["Name", "A"]


def test_crd_table_uses_columns() -> None:
    cols = crd_columns(WIDGET_VERSION)
    out = table(
        "Widget",
        [widget(size=1)],
        group="example.com",
        api_version="example.com/v1",
        include_object="Object",
        columns=cols,
        now=NOW,
    )
    assert [c["name"] for c in out["columnDefinitions"]] == [c.name for c in cols]
    assert out["rows"][0]["cells"][:3] == ["w1", 1, "True"]
    assert out["rows"][0]["object"]["apiVersion"] == "example.com/v1"


def test_custom_columns_are_plain_dataclasses() -> None:
    col = Column("Phase", json_path=".status.phase")
    assert col.definition() == {
        "name": "Phase",
        "type": "string",
        "format": "",
        "description": "",
        "priority": 0,
    }


DOC = {
    "spec": {
        "containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "y"},
        ],
        "replicas": 2,
        "labels": {"z": "1", "a": "2"},
    },
    "status": {
        "conditions": [
            {"type": "Ready", "status": "True", "n": 3},
            {"type": "Synced", "status": "False", "n": 5},
        ]
    },
}

JSONPATH_CASES = [
    (".spec.replicas", [2]),
    ("{.spec.replicas}", [2]),
    ("$.spec.replicas", [2]),
    (".spec.containers[1].name", ["b"]),
    (".spec.containers[-1].image", ["y"]),
    (".spec.containers[*].name", ["a", "b"]),
    (".spec.containers[0:1].name", ["a"]),
    (".spec.containers[5].name", []),
    (".spec.missing.deeper", []),
    (".spec.labels.*", ["2", "1"]),
    (".spec['replicas']", [2]),
    ('.status.conditions[?(@.type=="Synced")].status', ["False"]),
    (".status.conditions[?(@.type=='Ready')].status", ["True"]),
    (".status.conditions[?(@.n > 4)].type", ["Synced"]),
    (".status.conditions[?(@.n != 3)].type", ["Synced"]),
    (".spec.containers[?(@.ports)].name", ["a"]),
]


@pytest.mark.parametrize(("expr", "expected"), JSONPATH_CASES, ids=[c[0] for c in JSONPATH_CASES])
def test_jsonpath_values(expr: str, expected: list) -> None:
    assert jsonpath_values(DOC, expr) == expected


@pytest.mark.parametrize("expr", ["", "spec", ".spec..x", ".spec[", ".spec[abc]"])
def test_jsonpath_rejects_unsupported(expr: str) -> None:
    with pytest.raises(ValueError):
        jsonpath_values(DOC, expr)


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, "<none>"),
        ({}, "<none>"),
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        (
            {
                "matchExpressions": [
                    {"key": "env", "operator": "NotIn", "values": ["x"]},
                    {"key": "gpu", "operator": "Exists"},
                    {"key": "arm", "operator": "DoesNotExist"},
                ]
            },
            "arm,env notin (x),gpu".replace("arm", "!arm"),
        ),
        ({"matchExpressions": [{"key": "k", "operator": "In", "values": []}]}, "<error>"),
        ({"matchExpressions": [{"key": "k", "operator": "Near"}]}, "<error>"),
    ],
    ids=["nil", "empty", "labels-sorted", "expressions", "in-without-values", "bad-operator"],
)
def test_format_label_selector(selector: dict | None, expected: str) -> None:
    assert format_label_selector(selector) == expected


def test_format_labels() -> None:
    assert format_labels({}) == "<none>"
    assert format_labels({"tier": "web", "app": "x"}) == "app=x,tier=web"


def test_deployment_with_invalid_selector() -> None:
    obj = {
        "metadata": meta("d"),
        "spec": {
            "template": TEMPLATE,
            "selector": {"matchExpressions": [{"key": "k", "operator": "Bogus"}]},
        },
    }
    assert table_row("Deployment", obj, group="apps", now=NOW)[-1] == "<invalid>"


def test_render_matches_kubectl_layout() -> None:
    # Observed kubectl output:
    #   NAME       READY   STATUS    RESTARTS   AGE
    #   dnsutils   1/1     Running   0          2m27s
    obj = pod([running()], conditions=READY_TRUE)
    obj["metadata"]["name"] = "dnsutils"
    obj["metadata"]["creationTimestamp"] = ago(minutes=2, seconds=27)
    out = table("Pod", [obj], now=NOW)
    assert render(out) == (
        "NAME       READY   STATUS    RESTARTS   AGE\n"
        "dnsutils   1/1     Running   0          2m27s\n"
    )
    wide = render(out, wide=True, no_headers=True)
    assert wide.split() == [
        "dnsutils",
        "1/1",
        "Running",
        "0",
        "2m27s",
        "<none>",
        "node-1",
        "<none>",
        "<none>",
    ]


def test_render_cells() -> None:
    tbl = {
        "columnDefinitions": [
            {"name": "Name", "priority": 0},
            {"name": "Note", "priority": 0},
            {"name": "N", "priority": 0},
        ],
        "rows": [{"cells": ["a", "line1\nline2", None]}, {"cells": ["b", True, 1e6]}],
    }
    assert render(tbl).splitlines() == [
        "NAME   NOTE       N",
        "a      line1...   ",
        "b      true       1e+06",
    ]
