"""VolumeBinding: claims bound to node-pinned volumes keep pods on that node; unbound
WaitForFirstConsumer claims get the chosen node (selected-node) before the pod is bound."""

from __future__ import annotations

import pytest

from scheduler.cache import Cache
from scheduler.framework import Code, CycleState, FitError, Framework
from scheduler.plugins.volume_binding import (
    SELECTED_NODE,
    VolumeBinding,
    VolumeListers,
)
from scheduler.scheduler import Scheduler
from scheduler.testing import make_node, make_pod

CONFLICT = "node(s) had volume node affinity conflict"
BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"


def pinned_volume(name: str, node: str | None) -> dict:
    spec: dict = {"hostPath": {"path": f"/data/{name}"}}
    if node is not None:
        term = {
            "matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
            ]
        }
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [term]}}
    return {"metadata": {"name": name}, "spec": spec}


def claim(name: str, volume: str = "", cls: str | None = "local-path", **annotations) -> dict:
    spec: dict = {"volumeName": volume} if volume else {}
    if cls is not None:
        spec["storageClassName"] = cls
    meta = {"name": name, "namespace": "default", "annotations": annotations}
    return {"metadata": meta, "spec": spec}


def static_volume(name: str, node: str, cls: str = "local-disks", **status: str) -> dict:
    """An administrator's volume on ``node`` (Available unless ``status`` says otherwise)."""
    volume = pinned_volume(name, node)
    volume["spec"] |= {"storageClassName": cls, "capacity": {"storage": "10Gi"}}
    volume["status"] = {"phase": "Available", **status}
    return volume


def storage_class(
    name: str, mode: str, default: bool = False, provisioner: str = "tugboat.io/local-path"
) -> dict:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {
        "metadata": {"name": name, "annotations": annotations},
        "volumeBindingMode": mode,
        "provisioner": provisioner,
    }


def listers(claims=(), volumes=(), classes=()) -> VolumeListers:
    by_claim = {f"default/{c['metadata']['name']}": c for c in claims}
    by_volume = {v["metadata"]["name"]: v for v in volumes}
    by_class = {c["metadata"]["name"]: c for c in classes}
    return VolumeListers(
        by_claim.get, by_volume.get, by_class.get, lambda: list(classes), lambda: list(volumes)
    )


def using(*claims: str):
    volumes = [
        {"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)
    ]
    return make_pod("db", volumes=volumes)


WFFC = storage_class("local-path", "WaitForFirstConsumer", default=True)
IMMEDIATE = storage_class("fast", "Immediate")
LOCAL_DISKS = storage_class(
    "local-disks", "WaitForFirstConsumer", provisioner="kubernetes.io/no-provisioner"
)
ELSEWHERE = storage_class("remote", "WaitForFirstConsumer", provisioner="example.com/remote")
NODES = [make_node("n1"), make_node("n2"), make_node("n3")]


def verdicts(plugin: VolumeBinding, pod: dict) -> dict[str, str | None]:
    cache = Cache()
    for n in NODES:
        cache.add_node(n)
    snap = cache.snapshot()
    fw = Framework([plugin])
    state = CycleState()
    st = fw.run_pre_filter(state, pod, snap)
    if not st.ok:
        assert st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        return {n.name: st.message for n in snap.nodes}
    out = {}
    for n in snap.nodes:
        st = fw.run_filter(state, pod, n)
        out[n.name] = None if st.ok else st.message
    return out


def plugin_with(**kw) -> VolumeBinding:
    plugin = VolumeBinding()
    plugin.use(listers(**kw), client=None)
    return plugin


@pytest.mark.parametrize(
    ("pod", "kw", "want"),
    [
        pytest.param(
            make_pod("p"), {}, {"n1": None, "n2": None, "n3": None}, id="no claims: any node"
        ),
        pytest.param(
            using("db"),
            {"claims": [claim("db", "pv1")], "volumes": [pinned_volume("pv1", "n2")]},
            {"n1": CONFLICT, "n2": None, "n3": CONFLICT},
            id="bound to a pinned volume: only its node",
        ),
        pytest.param(
            using("db"),
            {"claims": [claim("db", "pv1")], "volumes": [pinned_volume("pv1", None)]},
            {"n1": None, "n2": None, "n3": None},
            id="bound to a volume without affinity: any node",
        ),
        pytest.param(
            using("a", "b"),
            {
                "claims": [claim("a", "pv1"), claim("b", "pv2")],
                "volumes": [pinned_volume("pv1", "n1"), pinned_volume("pv2", "n2")],
            },
            {"n1": CONFLICT, "n2": CONFLICT, "n3": CONFLICT},
            id="two volumes on two nodes: nowhere",
        ),
        pytest.param(
            using("db"),
            {},
            {n: 'persistentvolumeclaim "db" not found' for n in ("n1", "n2", "n3")},
            id="missing claim",
        ),
        pytest.param(
            using("db"),
            {"claims": [claim("db", cls="fast")], "classes": [IMMEDIATE]},
            {n: "pod has unbound immediate PersistentVolumeClaims" for n in ("n1", "n2", "n3")},
            id="unbound immediate claim",
        ),
        pytest.param(
            using("db"),
            {"claims": [claim("db")], "classes": [WFFC]},
            {"n1": None, "n2": None, "n3": None},
            id="unbound wait-for-first-consumer claim: any node",
        ),
        pytest.param(
            using("db"),
            {"claims": [claim("db", cls=None)], "classes": [WFFC, IMMEDIATE]},
            {"n1": None, "n2": None, "n3": None},
            id="no class: the default class's mode",
        ),
        pytest.param(
            using("db"),
            {"claims": [claim("db", **{SELECTED_NODE: "n3"})], "classes": [WFFC]},
            {"n1": BIND_CONFLICT, "n2": BIND_CONFLICT, "n3": None},
            id="unbound claim with a node already selected: that node",
        ),
        pytest.param(
            using("db"),
            {
                "claims": [claim("db", cls="local-disks")],
                "classes": [LOCAL_DISKS],
                "volumes": [static_volume("disk-a", "n2"), static_volume("other", "n3", "x")],
            },
            {"n1": BIND_CONFLICT, "n2": None, "n3": BIND_CONFLICT},
            id="class of static volumes: only where one of its class is Available",
        ),
        pytest.param(
            using("db"),
            {
                "claims": [claim("db", cls="local-disks")],
                "classes": [LOCAL_DISKS],
                "volumes": [static_volume("disk-a", "n2", phase="Bound")],
            },
            {"n1": BIND_CONFLICT, "n2": BIND_CONFLICT, "n3": BIND_CONFLICT},
            id="class of static volumes: a Bound one does not count",
        ),
        pytest.param(
            using("a", "b"),
            {
                "claims": [claim("a", cls="local-disks"), claim("b", cls="local-disks")],
                "classes": [LOCAL_DISKS],
                "volumes": [
                    static_volume("disk-a", "n1"),
                    static_volume("disk-b", "n2"),
                    static_volume("disk-c", "n2"),
                ],
            },
            {"n1": BIND_CONFLICT, "n2": None, "n3": BIND_CONFLICT},
            id="two claims of static volumes: a node with one volume for each",
        ),
        pytest.param(
            using("db"),
            {"claims": [claim("db", cls="remote")], "classes": [ELSEWHERE]},
            {"n1": None, "n2": None, "n3": None},
            id="class with a provisioner, no volume yet: any node",
        ),
    ],
)
def test_filter(pod: dict, kw: dict, want: dict) -> None:
    assert verdicts(plugin_with(**kw), pod) == want


def test_without_listers_the_plugin_skips() -> None:
    assert verdicts(VolumeBinding(), using("db")) == {"n1": None, "n2": None, "n3": None}


def test_fit_error_message_names_the_conflict() -> None:
    plugin = plugin_with(claims=[claim("db", "pv1")], volumes=[pinned_volume("pv1", "gone")])
    cache = Cache()
    for n in NODES:
        cache.add_node(n)
    with pytest.raises(FitError) as err:
        Framework([plugin]).schedule_pod(using("db"), cache.snapshot())
    assert err.value.message() == "0/3 nodes are available: 3 " + CONFLICT + "."
    assert err.value.diagnosis.unschedulable_plugins == {"VolumeBinding"}


class RecordingClient:
    """Records claim patches and pods/binding POSTs, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def create(self, rt, body, namespace=None, *, subresource=None, name=None, **kw):
        if subresource == "binding":
            self.calls.append(("bind", name, body["target"]["name"]))
        return body

    async def patch(self, rt, name, body, namespace=None, **kw):
        if rt.plural == "persistentvolumeclaims":
            self.calls.append(("patch", name, body))
        return {}


async def test_scheduler_selects_the_node_for_the_claim_before_binding() -> None:
    client = RecordingClient()
    sched = Scheduler(client)  # type: ignore[arg-type]
    binding = next(p for p in sched.framework.plugins if isinstance(p, VolumeBinding))
    binding.use(listers(claims=[claim("db")], classes=[WFFC]), client)
    sched.on_node_add(make_node("n1"))
    sched.on_pod_add(using("db"))
    info = sched.queue.pop_nowait()
    assert info is not None
    assert sched.schedule_one(info) == "n1"
    await sched.drain()
    assert client.calls == [
        ("patch", "db", {"metadata": {"annotations": {SELECTED_NODE: "n1"}}}),
        ("bind", "db", "n1"),
    ]
    await sched.recorder.aclose()


async def test_a_pod_rejected_for_its_claim_waits_for_a_claim_change() -> None:
    client = RecordingClient()
    sched = Scheduler(client)  # type: ignore[arg-type]
    binding = next(p for p in sched.framework.plugins if isinstance(p, VolumeBinding))
    binding.use(listers(claims=[claim("db", cls="fast")], classes=[IMMEDIATE]), client)
    sched.on_node_add(make_node("n1"))
    sched.on_pod_add(using("db"))
    info = sched.queue.pop_nowait()
    assert info is not None and sched.schedule_one(info) is None
    await sched.drain()
    assert sched.queue.move_on("Pod/Delete") == 0  # nothing VolumeBinding waits for
    assert sched.queue.move_on("PersistentVolumeClaim/Update") == 1
    await sched.recorder.aclose()
