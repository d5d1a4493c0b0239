"""``tug delete``: grace periods (``--grace-period``, ``--now``, ``--force``) as kubectl settles
them, and ``--wait`` holding until a finalizer is gone. Cascades with a garbage collector
running are in test_workloads.py."""

from __future__ import annotations

import io
import threading
import time

from cli.app import run
from cli.config import Session
from machinery.kinds import lookup

PODS, CONFIGMAPS = lookup("pods"), lookup("configmaps")
HOLD = "example.com/hold"
FORCE_WARNING = (
    "Warning: Immediate deletion does not wait for confirmation that the running resource has "
    "been terminated. The resource may continue to run on the cluster indefinitely.\n"
)


def _held_pod(api, ns: str, name: str) -> None:
    """A pod bound to a node no agent serves, kept by a finalizer once deleted."""
    api.client().create(
        PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "finalizers": [HOLD]},
            "spec": {"nodeName": "nowhere", "containers": [{"name": "c", "image": "busybox"}]},
        },
        ns,
    )


def _release(api, rt, name: str, ns: str) -> None:
    api.client().patch(rt, name, {"metadata": {"finalizers": None}}, ns, patch_type="merge")


def test_grace_period_now_and_force(tug, ns, api):
    cases = [  # flags → (deletionGracePeriodSeconds, stdout, stderr); checked with kubectl 1.33
        (["--grace-period=7"], 7, 'pod "p0" deleted\n', ""),
        (["--grace-period=0"], 1, 'pod "p1" deleted\n', ""),  # 0 without --force is 1
        (["--now"], 1, 'pod "p2" deleted\n', ""),
        (["--force"], 0, 'pod "p3" force deleted\n', FORCE_WARNING),
        (["--force", "--grace-period=0"], 0, 'pod "p4" force deleted\n', FORCE_WARNING),
    ]
    for i, (flags, grace, out, err) in enumerate(cases):
        _held_pod(api, ns, f"p{i}")
        res = tug("delete", "pod", f"p{i}", "-n", ns, "--wait=false", *flags)
        assert (res.code, res.out, res.err) == (0, out, err), flags
        pod = api.client().get(PODS, f"p{i}", ns)
        assert pod["metadata"]["deletionGracePeriodSeconds"] == grace, flags
        _release(api, PODS, f"p{i}", ns)
    _held_pod(api, ns, "bad")
    for flags, err in [
        (["--force", "--grace-period=5"], "--force and --grace-period greater than 0 cannot"),
        (["--now", "--grace-period=5"], "--now and --grace-period cannot be specified together"),
    ]:
        res = tug("delete", "pod", "bad", "-n", ns, *flags)
        assert res.code == 1 and res.err.startswith(f"error: {err}"), res.err
        assert res.err.count("\n") == 1
    assert "deletionTimestamp" not in api.client().get(PODS, "bad", ns)["metadata"]


def test_wait_holds_until_the_finalizer_is_removed(tug, ns, api):
    client = api.client()
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held"}}
    client.create(CONFIGMAPS, {**body, "metadata": {"name": "held", "finalizers": [HOLD]}}, ns)
    res = tug("delete", "cm", "held", "-n", ns, "--timeout=0.5s")
    assert res.code == 1
    assert res.out == 'configmap "held" deleted\n'
    assert res.err == "error: timed out waiting for the condition on configmaps/held\n"

    assert client.get(CONFIGMAPS, "held", ns)["metadata"]["deletionTimestamp"]

    out, err = io.StringIO(), io.StringIO()
    argv = ["--kubeconfig", api.kubeconfig, "delete", "cm", "held", "-n", ns]
    codes: list[int] = []
    waiter = threading.Thread(target=lambda: codes.append(run(argv, Session(out=out, err=err))))
    waiter.start()
    deadline = time.monotonic() + 10
    while "deleted" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert out.getvalue() == 'configmap "held" deleted\n'  # deleted, now waiting
    waiter.join(0.3)
    assert waiter.is_alive(), "--wait holds while the finalizer is there"
    _release(api, CONFIGMAPS, "held", ns)
    waiter.join(20)
    assert not waiter.is_alive() and codes == [0], err.getvalue()
