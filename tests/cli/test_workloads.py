"""Verbs that need controllers and a node: ``rollout history|undo [--to-revision]``, ``drain``,
``top nodes|pods`` and ``delete --cascade=orphan|background``, run through ``tug`` against a
fresh API server with the replicaset, deployment and garbage-collector controllers and one node
agent on the fake runtime (the ``plane`` fixture)."""

from __future__ import annotations

import os
import re
import subprocess

from machinery.kinds import lookup

from .conftest import KUBECTL, NODE, Plane

PODS, RSS, DEPLOYMENTS = lookup("pods"), lookup("replicasets"), lookup("deployments")


def deployment(name: str, image: str, replicas: int) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      nodeName: {NODE}
      containers: [{{name: web, image: "{image}"}}]
"""


async def running_pods(plane: Plane, app: str, count: int) -> list[dict]:
    async def probe() -> list[dict] | None:
        pods = (await plane.client.list(PODS, "default", label_selector=f"app={app}"))["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        ok = len(live) == count and all(
            (p.get("status") or {}).get("phase") == "Running" for p in live
        )
        return live if ok else None

    return await plane.until(f"{count} running pod(s) of {app}", probe, timeout=30)


async def rolled_out(plane: Plane, name: str) -> None:
    res = await plane.atug("rollout", "status", f"deploy/{name}", "--timeout=60s")
    assert res.code == 0 and res.out.endswith(f'deployment "{name}" successfully rolled out\n')


async def image_of(plane: Plane, name: str) -> str:
    dep = await plane.client.get(DEPLOYMENTS, name, "default")
    return dep["spec"]["template"]["spec"]["containers"][0]["image"]


def kubectl(plane: Plane, *argv: str) -> str | None:
    """The real kubectl's stdout for the same command, or None when it is not installed."""
    if not KUBECTL.exists():
        return None
    p = subprocess.run(
        [str(KUBECTL), "--kubeconfig", plane.api.kubeconfig, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECTL_COMMAND_HEADERS": "false"},
    )
    return p.stdout


async def test_rollout_history_undo_and_to_revision(plane: Plane) -> None:
    res = await plane.atug("apply", "-f", "-", stdin=deployment("web", "tugboat/web:1", 2))
    assert res.out == "deployment.apps/web created\n", res.err
    await rolled_out(plane, "web")
    assert (await plane.atug("set", "image", "deploy/web", "web=tugboat/web:2")).code == 0
    # then the cause: the controller copies it to the new (current) ReplicaSet only
    await plane.atug("annotate", "deploy/web", "kubernetes.io/change-cause=to v2")
    await rolled_out(plane, "web")

    history = (await plane.atug("rollout", "history", "deploy/web")).out
    assert history.splitlines() == [
        "deployment.apps/web ",
        "REVISION  CHANGE-CAUSE",
        "1         <none>",
        "2         to v2",
        "",
    ]
    if (theirs := kubectl(plane, "rollout", "history", "deploy/web")) is not None:
        assert history == theirs
    res = await plane.atug("rollout", "history", "deploy/web", "--revision=1")
    assert res.out.startswith("deployment.apps/web with revision #1\n")
    assert "image: tugboat/web:1" in res.out and "pod-template-hash" not in res.out
    res = await plane.atug("rollout", "history", "deploy/web", "--revision=9")
    assert (res.code, res.err) == (1, "error: unable to find the specified revision 9\n")

    assert (await plane.atug("rollout", "undo", "deploy/web")).out == (
        "deployment.apps/web rolled back\n"
    )
    await rolled_out(plane, "web")
    assert await image_of(plane, "web") == "tugboat/web:1"
    await running_pods(plane, "web", 2)
    revisions = (await plane.atug("rollout", "history", "deploy/web")).out.splitlines()[2:]
    assert [r.split()[0] for r in revisions if r] == ["2", "3"]  # revision 1 came back as 3

    res = await plane.atug("rollout", "undo", "deploy/web", "--to-revision=2")
    assert res.out == "deployment.apps/web rolled back\n"
    await rolled_out(plane, "web")
    assert await image_of(plane, "web") == "tugboat/web:2"
    res = await plane.atug("rollout", "undo", "deploy/web", "--to-revision=4")
    assert res.out == (
        "deployment.apps/web skipped rollback (current template already matches revision 4)\n"
    )
    res = await plane.atug("rollout", "undo", "deploy/web", "--to-revision=1")
    assert (res.code, res.err) == (1, "error: unable to find specified revision 1 in history\n")


async def test_drain_cordons_and_evicts(plane: Plane) -> None:
    await plane.atug("apply", "-f", "-", stdin=deployment("app", "busybox:1.35", 2))
    before = {
        p["metadata"]["uid"]: p["metadata"]["name"] for p in await running_pods(plane, "app", 2)
    }
    bare = {  # a pod no controller owns
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lonely"},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox:1.35"}]},
    }
    await plane.client.create(PODS, bare, "default")

    res = await plane.atug("drain", NODE)
    assert res.code == 1 and res.err == (
        f'error: unable to drain node "{NODE}" due to error: cannot delete Pods that declare '
        "no controller (use --force to override): default/lonely, continuing command...\n"
    )
    assert res.out == f"node/{NODE} cordoned\n"
    node = await plane.client.get(lookup("nodes"), NODE)
    assert node["spec"]["unschedulable"] is True

    res = await plane.atug("drain", NODE, "--force", "--timeout=60s")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[0] == f"node/{NODE} already cordoned"
    assert lines[-1] == f"node/{NODE} drained"
    evicted = {*before.values(), "lonely"}
    assert sorted(lines[1:-1]) == sorted(
        [f"evicting pod default/{n}" for n in evicted] + [f"pod/{n} evicted" for n in evicted]
    )
    left = (await plane.client.list(PODS, "default"))["items"]
    assert not {p["metadata"]["uid"] for p in left} & set(before)
    assert "lonely" not in {p["metadata"]["name"] for p in left}
    assert (await plane.atug("uncordon", NODE)).out == f"node/{NODE} uncordoned\n"


async def test_top_nodes_and_pods(plane: Plane) -> None:
    await plane.atug("apply", "-f", "-", stdin=deployment("busy", "busybox:1.35", 1))
    (pod,) = await running_pods(plane, "busy", 1)
    plane.fake.set_usage(pod["metadata"]["uid"], 250, 64 * 1024 * 1024)
    name = pod["metadata"]["name"]

    async def sampled() -> str | None:
        res = await plane.atug("top", "pods")
        return res.out if f"{name}   250m         64Mi" in res.out else None

    out = await plane.until("the pod's sampled usage", sampled)
    assert out.splitlines() == ["NAME" + " " * (len(name) - 1) + "CPU(cores)   MEMORY(bytes)",
                                f"{name}   250m         64Mi"]  # fmt: skip
    res = await plane.atug("top", "pod", name, "--containers", "--no-headers")
    assert res.out.split() == [name, "web", "250m", "64Mi"]
    res = await plane.atug("top", "pods", "-A")
    assert res.out.splitlines()[0].split() == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert res.out.splitlines()[1].split() == ["default", name, "250m", "64Mi"]
    res = await plane.atug("top", "pods", "-l", "app=nobody")
    assert (res.code, res.err) == (1, "error: No resources found in default namespace.\n")

    res = await plane.atug("top", "nodes")
    header, row = res.out.splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert re.fullmatch(rf"{NODE}\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%", row), row
    res = await plane.atug("top", "node", "ghost")
    assert res.code == 1 and res.err.count("\n") == 1


async def test_delete_cascade_orphan_and_background(plane: Plane) -> None:
    await plane.atug("apply", "-f", "-", stdin=deployment("keep", "busybox:1.35", 1))
    (pod,) = await running_pods(plane, "keep", 1)
    (rs,) = (await plane.client.list(RSS, "default", label_selector="app=keep"))["items"]
    rs_name = rs["metadata"]["name"]

    res = await plane.atug("delete", "deploy", "keep", "--cascade=orphan")
    assert (res.code, res.out) == (0, 'deployment.apps "keep" deleted\n'), res.err

    async def orphaned() -> bool:  # the garbage collector drops the dangling owner reference
        got = await plane.client.get(RSS, rs_name, "default")
        return not got["metadata"].get("ownerReferences")

    await plane.until("the ReplicaSet's owner reference to go", orphaned)
    (still,) = await running_pods(plane, "keep", 1)
    assert still["metadata"]["uid"] == pod["metadata"]["uid"]  # the pod kept running

    res = await plane.atug("delete", "rs", rs_name, "--cascade=background")
    assert (res.code, res.out) == (0, f'replicaset.apps "{rs_name}" deleted\n'), res.err

    async def collected() -> bool:
        return not (await plane.client.list(PODS, "default", label_selector="app=keep"))["items"]

    await plane.until("the ReplicaSet's pods to be collected", collected)
    res = await plane.atug("delete", "deploy", "x", "--cascade=sideways")
    assert res.err == (
        'error: invalid cascade value (sideways). Must be "background", "foreground", or "orphan"\n'
    )
