"""Private registry, image build and compose on real containerd.

- build a Dockerfile (RUN in runc, COPY, ENV, USER, ...) twice: the second build reuses every
  layer (both times printed; ``python -m bench.build`` measures the speed-up); a pod runs the
  built image;
- push it to a registry on a free loopback port; a Deployment (imagePullPolicy Always, spread
  over two nodes, each on its own containerd) pulls it through CRI PullImage on both nodes;
  ``Always`` pulls again a tag present on both nodes once it names another image (the image id
  changes); an image missing from the registry gives ErrImagePull then ImagePullBackOff with
  the registry's word;
- ``tug compose up`` of a v3 file with a built service, then ``tug compose down`` (no
  ``depends_on`` here: its init container needs cluster DNS and the proxy, not started here;
  ``tests/e2e/test_compose_voting_app.py`` has them);
- a bad Dockerfile, an unknown compose key and an unreachable registry are one-line errors
  (these need no containerd).
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cli.app import run as tug
from cli.config import Globals, Session
from kubelet.images import registry
from kubelet.images.build import Builder
from kubelet.images.store import list_images
from machinery.client import AsyncClient
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess, free_port
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    PODS,
    RealNode,
    agent_config,
    delete_all_pods,
    eventually,
    extra_containerd,
)

pytestmark = pytest.mark.e2e
DEPLOYMENTS = lookup("deployments")
SECOND_BRIDGE = os.environ.get("TUG_E2E_BRIDGE3", "tugreg1")
SECOND_CIDR = os.environ.get("TUG_E2E_POD_CIDR3", "10.244.252.0/24")

DOCKERFILE = """\
FROM busybox:1.35
ARG GREETING=hello
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY site/ ./www/
COPY check.sh /usr/local/bin/check.sh
RUN echo "$GREETING from build" > built.txt && chmod 644 built.txt
RUN mkdir -p /data && chown 33:33 /data
EXPOSE 8080
LABEL org.example.tier=e2e
USER 33
CMD ["/usr/local/bin/check.sh"]
"""
# exits 0 only when the image has what the Dockerfile put there, as the user it named
CHECK = """#!/bin/sh
test "$(cat /app/built.txt)" = "hello from build" || exit 3
test -f /app/www/index.html || exit 4
test "$(id -u)" = 33 || exit 5
test "$(pwd)" = /app || exit 6
echo checked
"""


def _context(root: Path) -> Path:
    ctx = root / "ctx"
    (ctx / "site").mkdir(parents=True)
    (ctx / "site" / "index.html").write_text("<h1>built by tug</h1>\n")
    (ctx / "check.sh").write_text(CHECK)
    (ctx / "check.sh").chmod(0o755)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def run_tug(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = tug(list(argv), Session(flags=Globals(), out=out, err=err))
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------ errors (no containerd)


def test_bad_dockerfile_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox:1.35\nRUNN echo hi\n")
    code, _, err = run_tug(
        "image", "build", "-t", "x:1", str(tmp_path), "--data-dir", str(tmp_path)
    )
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "Dockerfile:2: unknown instruction: RUNN" in err


def test_unknown_compose_key_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "docker-compose.yml"
    f.write_text("services:\n  web:\n    image: x\n    prots: ['80:80']\n")
    code, out, err = run_tug("compose", "convert", "-f", str(f))
    assert (code, out) == (1, "")
    assert err == f"error: {f}: unknown compose key services.web.prots\n"


def test_unreachable_registry_is_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    code, _, err = run_tug(
        "image", "push", "x:1", f"127.0.0.1:{port}/x:1", "--data-dir", str(tmp_path)
    )
    assert code == 1
    assert err == (
        f"error: pushing 127.0.0.1:{port}/x:1: registry 127.0.0.1:{port} is not reachable "
        "(connection refused)\n"
    )


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def second_runtime(
    containerd_runtime: ContainerdRuntime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ContainerdRuntime]:
    """Another containerd (own bridge and pod CIDR) holding the base images every node of a
    ``tug up`` cluster holds (pause, busybox), so any other image has to come from a registry
    or a load. (Without busybox, a compose service with ``image: busybox`` or a ``depends_on``
    wait scheduled here could never start: the pull goes to docker.io, unreachable offline.)"""
    images = containerd_runtime.dir / "images"
    with extra_containerd(
        tmp_path_factory.mktemp("containerd-reg"),
        SECOND_BRIDGE,
        SECOND_CIDR,
        containerd_runtime.cgroup_root + "-reg",
        [next(images.glob("*pause*.tar")), next(images.glob("*busybox*.tar"))],
    ) as runtime:
        yield runtime


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("registry")
    info = registry.start(base, free_port())
    try:
        yield info.address
    finally:
        registry.stop(base)


@pytest.fixture(scope="module")
def built(containerd_runtime: ContainerdRuntime, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The Dockerfile built twice into a fresh cache; timings and results."""
    root = tmp_path_factory.mktemp("build")
    ctx = _context(root)
    builder = Builder(root / "build-cache", [containerd_runtime.socket])
    name = f"localhost/e2e/app:{uuid.uuid4().hex[:8]}"
    first = builder.build(ctx, name)
    second = builder.build(ctx, name)
    ratio = first.seconds / second.seconds
    print(
        f"\nbuild: first {first.seconds:.3f}s, second {second.seconds:.3f}s "
        f"({second.cached_steps}/{len(second.steps)} steps cached), {ratio:.1f}x faster"
    )
    return {"builder": builder, "name": name, "first": first, "second": second, "ctx": ctx}


def _spawn(module: str, *args: str, log: Path) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=out,
        stderr=out,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture
async def cluster(
    fresh_api: ApiServerProcess,
    tmp_path: Path,
    containerd_runtime: ContainerdRuntime,
    second_runtime: ContainerdRuntime,
) -> AsyncIterator[tuple[AsyncClient, list[RealNode], ApiServerProcess]]:
    """controller-manager + scheduler processes and two node agents on two containerds."""
    procs = [
        _spawn("controllers", "--server", fresh_api.url, "--no-leader-elect", "--port", "0",
               log=tmp_path / "controller-manager.log"),
        _spawn("scheduler", "--server", fresh_api.url, log=tmp_path / "scheduler.log"),
    ]  # fmt: skip
    client = fresh_api.async_client()
    nodes: list[RealNode] = []
    try:
        for name, rt in (("reg-a", containerd_runtime), ("reg-b", second_runtime)):
            nodes.append(await RealNode(client, rt.endpoint, agent_config(rt, name)).start())
        yield client, nodes, fresh_api
    finally:
        try:
            for d in (await client.list_all(DEPLOYMENTS, "default"))["items"]:
                await client.delete(DEPLOYMENTS, d["metadata"]["name"], "default")
            for n in nodes:
                await delete_all_pods(client, n.name, timeout=90)
        finally:
            for n in nodes:
                await n.stop()
            await client.aclose()
            for p in procs:
                p.terminate()
                p.wait(10)


# ------------------------------------------------------------------ build, push, pull


def test_second_build_reuses_every_layer(built: dict) -> None:
    """Every step of the rebuild comes from the cache (how much faster that is: bench.build)."""
    first, second = built["first"], built["second"]
    assert first.cached_steps == 1  # only the ARG, which makes no image
    assert second.cached_steps == len(second.steps) == len(first.steps)
    assert second.digest == first.digest


async def test_built_image_runs(
    built: dict, api: ApiServerProcess, containerd_runtime: ContainerdRuntime
) -> None:
    from tests.e2e.kubelet_env import container, pod, start_node, status_of

    client = api.async_client()
    node = await start_node(client, containerd_runtime, prefix="e2e-build")
    try:
        await client.create(
            PODS,
            pod("built", node.name, [container("app", built["name"])], restartPolicy="Never"),
            "default",
        )

        async def finished() -> dict | None:
            status = await status_of(client, "built")
            return status if status.get("phase") in ("Succeeded", "Failed") else None

        status = await eventually("built pod finished", finished, 60)
        terminated = status["containerStatuses"][0]["state"]["terminated"]
        assert (status["phase"], terminated["exitCode"]) == ("Succeeded", 0), status
    finally:
        await delete_all_pods(client, node.name)
        await node.stop()
        await client.aclose()


def _deployment(image: str) -> dict:
    labels = {"app": "pulled"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "pulled"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchLabels": labels},
                        }
                    ],
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "imagePullPolicy": "Always",
                            "command": ["sh", "-c", "cat /app/built.txt; exec sleep 3600"],
                        }
                    ],
                },
            },
        },
    }


async def test_push_then_a_deployment_pulls_on_two_nodes(
    built: dict,
    local_registry: str,
    cluster: tuple[AsyncClient, list[RealNode], ApiServerProcess],
    containerd_runtime: ContainerdRuntime,
    second_runtime: ContainerdRuntime,
) -> None:
    client, nodes, _ = cluster
    dest = f"{local_registry}/e2e/app:{uuid.uuid4().hex[:8]}"
    code, out, err = run_tug(
        "image", "push", built["name"], dest, "--data-dir", str(built["builder"].cache.parent),
        "--socket", containerd_runtime.socket,
    )  # fmt: skip
    assert code == 0, err
    assert out == f"pushed {dest}\n"
    for rt in (containerd_runtime, second_runtime):
        assert dest not in {i.name for i in list_images(rt.socket)}
    await client.create(DEPLOYMENTS, _deployment(dest), "default")

    async def running_on_both() -> set[str] | None:
        pods = (await client.list_all(PODS, "default", label_selector="app=pulled"))["items"]
        ready = {
            p["spec"].get("nodeName")
            for p in pods
            if (p.get("status") or {}).get("phase") == "Running"
        }
        return ready if ready == {n.name for n in nodes} else None

    await eventually("a pulled replica running on each node", running_on_both, 90)
    for rt in (containerd_runtime, second_runtime):
        assert dest in {i.name for i in list_images(rt.socket)}


async def test_always_pulls_a_present_image_again_on_every_node(
    built: dict,
    local_registry: str,
    cluster: tuple[AsyncClient, list[RealNode], ApiServerProcess],
    containerd_runtime: ContainerdRuntime,
) -> None:
    """``imagePullPolicy: Always`` calls PullImage although the tag is present: once the tag
    points at another image in the registry, a new pod on each node runs that image."""
    from tests.e2e.kubelet_env import container, pod, running

    client, nodes, _ = cluster
    dest = f"{local_registry}/e2e/always:{uuid.uuid4().hex[:8]}"
    flags = [
        "--data-dir",
        str(built["builder"].cache.parent),
        "--socket",
        containerd_runtime.socket,
    ]

    async def run_everywhere(prefix: str) -> set[str]:
        """One pod per node; the image ids their containers report."""
        app = container(
            "app", dest, imagePullPolicy="Always", command=["sh", "-c", "exec sleep 3600"]
        )
        for i, n in enumerate(nodes):
            await client.create(PODS, pod(f"{prefix}-{i}", n.name, [app]), "default")
        ids = set()
        for i in range(len(nodes)):
            p = await eventually(
                f"{prefix}-{i} running", lambda i=i: running(client, f"{prefix}-{i}"), 60
            )
            ids.add(p["status"]["containerStatuses"][0]["imageID"])
        return ids

    assert run_tug("image", "push", built["name"], dest, *flags)[0] == 0
    first = await run_everywhere("v1")
    assert run_tug("image", "push", containerd_runtime.busybox_image, dest, *flags)[0] == 0
    second = await run_everywhere("v2")
    assert len(first) == len(second) == 1 and "sha256:" in next(iter(first)), (first, second)
    assert first != second


async def test_missing_image_is_err_image_pull_then_backoff(
    local_registry: str, cluster: tuple[AsyncClient, list[RealNode], ApiServerProcess]
) -> None:
    """The pod's status goes through ErrImagePull (with the registry's word) to
    ImagePullBackOff. A watch sees every status the agent writes: ErrImagePull may last only
    until the agent's next pass, a few milliseconds, which a poll can miss."""
    from tests.e2e.kubelet_env import container, pod

    client, nodes, _ = cluster
    image = f"{local_registry}/e2e/missing:1"
    created = await client.create(
        PODS, pod("missing", nodes[0].name, [container("app", image)]), "default"
    )
    seen: dict[str, str] = {}  # waiting reason -> message, in the order written

    async def watch_reasons() -> None:
        rv = created["metadata"]["resourceVersion"]
        while True:  # a watch the server ends is resumed from the last revision seen
            async for kind, obj in client.watch(
                PODS, "default", resource_version=rv, field_selector="metadata.name=missing"
            ):
                rv = obj["metadata"]["resourceVersion"]
                if kind == "BOOKMARK":
                    continue
                for s in (obj.get("status") or {}).get("containerStatuses") or []:
                    waiting = s["state"].get("waiting") or {}
                    if waiting.get("reason"):
                        seen.setdefault(waiting["reason"], waiting.get("message", ""))
                if {"ErrImagePull", "ImagePullBackOff"} <= set(seen):
                    return

    try:
        await asyncio.wait_for(watch_reasons(), 60)
    except TimeoutError:
        raise AssertionError(f"no ErrImagePull then ImagePullBackOff in 60 s: {seen}") from None
    order = list(seen)
    assert order.index("ErrImagePull") < order.index("ImagePullBackOff"), seen
    message = seen["ErrImagePull"]
    assert f'Failed to pull image "{image}"' in message and "not found" in message, message


# ------------------------------------------------------------------ compose


COMPOSE = """\
version: "3.8"
services:
  web:
    build: ./web
    ports: ["31555:8080"]
    environment:
      GREETING: hi from compose
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
    stop_grace_period: 1s
  store:
    image: docker.io/library/busybox:1.35
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && httpd -f -p 9000 -h /www"]
    expose: ["9000"]
    stop_grace_period: 1s
"""
WEB_DOCKERFILE = """\
FROM busybox:1.35
RUN mkdir -p /www && echo ok > /www/index.html
CMD ["sh", "-c", "echo $GREETING > /www/greeting && exec httpd -f -p 8080 -h /www"]
"""


async def test_compose_up_then_down(
    cluster: tuple[AsyncClient, list[RealNode], ApiServerProcess],
    containerd_runtime: ContainerdRuntime,
    second_runtime: ContainerdRuntime,
    tmp_path: Path,
) -> None:
    client, _, api = cluster
    project = tmp_path / "shop"
    (project / "web").mkdir(parents=True)
    (project / "web" / "Dockerfile").write_text(WEB_DOCKERFILE)
    (project / "docker-compose.yml").write_text(COMPOSE)
    sockets = ["--socket", containerd_runtime.socket, "--socket", second_runtime.socket]
    common = ["-f", str(project / "docker-compose.yml"), "--data-dir", str(tmp_path / "tug")]
    # the build runs for seconds: off the event loop the node agents run on
    code, out, err = await asyncio.to_thread(
        run_tug, "compose", "up", *common, *sockets, "-s", api.url
    )
    assert code == 0, err
    assert "deployment.apps/web created" in out and "service/store created" in out
    pods: list[dict] = []

    async def all_ready() -> bool:
        pods[:] = (await client.list_all(PODS, "default", label_selector=PROJECT))["items"]
        return len(pods) == 2 and all(pod_ready(p) for p in pods)

    try:
        await eventually("compose services ready", all_ready, 120)
    except AssertionError as e:
        raise AssertionError(f"{e}; pods: {pod_states(pods)}") from None
    code, out, err = await asyncio.to_thread(run_tug, "compose", "down", *common, "-s", api.url)
    assert code == 0, err
    assert "deployment.apps/web deleted" in out and "service/web deleted" in out
    assert "pod/" not in out  # the Deployments' pods go with them (garbage collector)

    async def gone() -> bool:
        left = await client.list_all(DEPLOYMENTS, "default", label_selector=PROJECT)
        return not left["items"]

    await eventually("compose deployments deleted", gone, 30)


PROJECT = "tugboat.io/compose-project=shop"


def pod_ready(p: dict) -> bool:
    conditions = (p.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def pod_states(pods: list[dict]) -> str:
    """``name@node: phase/waiting reason`` for a failure message."""
    out = []
    for p in pods:
        status = p.get("status") or {}
        waiting = [
            s["state"]["waiting"].get("reason", "")
            for s in status.get("containerStatuses") or []
            if "waiting" in s["state"]
        ]
        where = p["spec"].get("nodeName") or "unscheduled"
        out.append(f"{p['metadata']['name']}@{where}: {status.get('phase')} {waiting or ''}")
    return "; ".join(out) or "none"
