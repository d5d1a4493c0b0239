"""Pod requests as Kubernetes counts them; node allocatable."""

import pytest

from scheduler.resources import node_allocatable, pod_nonzero_requests, pod_requests
from scheduler.testing import make_node


def c(cpu=None, memory=None, **extra):
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    out = {"name": "c", "image": "x", "resources": {"requests": requests}}
    out.update(extra)
    return out


def pod(containers=(), init=(), overhead=None):
    spec = {"containers": list(containers), "initContainers": list(init)}
    if overhead:
        spec["overhead"] = overhead
    return {"metadata": {"name": "p"}, "spec": spec}


@pytest.mark.parametrize(
    ("p", "want"),
    [
        (pod([c("100m", "1Mi"), c("200m", "2Mi")]), {"cpu": 300, "memory": 3 * 2**20}),
        (pod([c("100m")], init=[c("500m")]), {"cpu": 500}),
        (pod([c("1")], init=[c("500m"), c("700m")]), {"cpu": 1000}),
        (pod([c("100m", "1Gi")], init=[c("2", "1Mi")]), {"cpu": 2000, "memory": 2**30}),
        (pod([c("100m")], overhead={"cpu": "50m"}), {"cpu": 150}),
        (pod([c("100m")], init=[c("200m", restartPolicy="Always"), c("1")]), {"cpu": 1200}),
        (pod([c("100m")], init=[c("200m", restartPolicy="Always")]), {"cpu": 300}),
        (pod([c()]), {}),
    ],
    ids=[
        "sum-of-containers",
        "init-bigger",
        "app-bigger-than-each-init",
        "per-resource-max",
        "overhead-added",
        "sidecar-counts-during-later-init",
        "sidecar-adds-to-app",
        "no-requests",
    ],
)
def test_pod_requests(p, want):
    assert pod_requests(p) == want


def test_nonzero_defaults_only_for_unset_cpu_and_memory():
    assert pod_nonzero_requests(pod([c("250m")])) == {"cpu": 250, "memory": 200 * 2**20}
    assert pod_nonzero_requests(pod([c(), c()])) == {"cpu": 200, "memory": 400 * 2**20}


def test_node_allocatable_defaults_pods_and_parses_quantities():
    node = make_node("n", cpu="1500m", memory="1Gi", pods=7)
    assert node_allocatable(node) == {"cpu": 1500, "memory": 2**30, "pods": 7}
    assert node_allocatable({"metadata": {"name": "bare"}})["pods"] == 110
