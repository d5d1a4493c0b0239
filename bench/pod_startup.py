"""Pod startup latency on one containerd node, against a floor measured over CRI in the same run;
then hollow nodes registering.

``python -m bench.pod_startup [--pods 30] [--rate 5] [--hollow 1000]`` (root; containerd, runc
and the CNI plugins installed: ``hack/install-runtime.sh``). It starts its own containerd
(``hack/start-containerd.sh``, bridge ``tugbench0``, 10.244.252.0/24) with the shipped images,
and an API server. Prints:

* **floor**: RunPodSandbox + CreateContainer + StartContainer done directly over CRI by this
  script, one task per pod launched at ``--rate`` per second; p50 / p99 per pod;
* **node agent**: the same pods created through the API server at the same rate, with a node
  agent (``python -m kubelet.main``) running them; latency as Kubernetes measures it: from the
  create request to the watch showing every container running; p50 / p99 and the ratio to the
  floor; the node agent's RSS with the pods running and its CPU per pod started;
* **hollow**: ``--hollow`` hollow nodes in one process (``--runtime fake --hollow-nodes K``):
  seconds from process start until every Node is Ready (and until 100, 300, 1,000 of them
  were), that process's CPU seconds and RSS by then; with ``--hollow-steady S``, its CPU over
  the next S seconds and how many nodes are still Ready; ``--hollow-profile FILE`` runs it
  under cProfile. ``--pods 0`` measures only this (no containerd needed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import apiserver, percentile, rss_mib
from kubelet.cri import api_pb2 as pb
from kubelet.cri.cgroups import remove_cgroup
from kubelet.cri.client import AsyncRuntimeClient
from kubelet.images.builtin import BUSYBOX_IMAGE, build_all
from kubelet.images.store import load_image
from machinery.client import AsyncClient
from machinery.kinds import lookup

PODS, NODES = lookup("pods"), lookup("nodes")
REPO = Path(__file__).resolve().parents[1]
START = REPO / "hack" / "start-containerd.sh"
BRIDGE, CIDR = "tugbench0", "10.244.252.0/24"
CGROUP_ROOT = "/tugboat-bench"


def line(name: str, samples: list[float], floor: float | None = None) -> str:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    out = f"{name:<28} n={len(samples):<5} p50 {p50 * 1e3:7.0f} ms   p99 {p99 * 1e3:7.0f} ms"
    if floor:
        out += f"   {p99 / floor:4.2f}x floor p99"
    return out


# -- floor: straight CRI -------------------------------------------------------------------------


RUNTIME_DEFAULT = pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)


def floor_configs(i: int, log_root: Path) -> tuple[pb.PodSandboxConfig, pb.ContainerConfig]:
    """The configs of a minimal pod, with the security profile the node agent asks for by
    default (seccomp ``RuntimeDefault``, kubelet/specs.py): loading a seccomp filter costs
    runc about 15 ms of CPU per container, work the floor must do too to be the same start."""
    uid = uuid.uuid4().hex
    name = f"floor-{i}"
    ns = pb.NamespaceOption(pid=pb.CONTAINER, network=pb.POD, ipc=pb.POD)
    sandbox = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="bench"),
        hostname=name,
        log_directory=str(log_root / f"bench_{name}_{uid}"),
        labels={"io.kubernetes.pod.uid": uid, "bench": "floor"},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=f"{CGROUP_ROOT}/pod{uid}",
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=ns, seccomp=RUNTIME_DEFAULT
            ),
        ),
    )
    container = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="main"),
        image=pb.ImageSpec(image=BUSYBOX_IMAGE),
        command=["sleep", "3600"],
        log_path="main/0.log",
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=ns, seccomp=RUNTIME_DEFAULT
            )
        ),
    )
    return sandbox, container


async def measure_floor(endpoint: str, count: int, rate: float, log_root: Path) -> list[float]:
    async with AsyncRuntimeClient(endpoint) as cri:

        async def one(i: int) -> tuple[float, str]:
            sandbox, container = floor_configs(i, log_root)
            started = time.monotonic()
            sid = await cri.run_pod_sandbox(sandbox)
            cid = await cri.create_container(sid, container, sandbox)
            await cri.start_container(cid)
            return time.monotonic() - started, sid

        tasks = []
        for i in range(count):
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(1 / rate)
        results = await asyncio.gather(*tasks)
        for _, sid in results:
            await cri.stop_pod_sandbox(sid)
            await cri.remove_pod_sandbox(sid)
        remove_cgroup(CGROUP_ROOT)
        return [r[0] for r in results]


# -- through the node agent --------------------------------------------------------------------


def pod_body(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"startup-{i}"},
        "spec": {
            "nodeName": "bench-node",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox:1.35", "command": ["sleep", "3600"]}],
        },
    }


def all_running(pod: dict[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all("running" in (s.get("state") or {}) for s in statuses)


async def wait_node_ready(client: AsyncClient, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            node = await client.get(NODES, name)
            conds = (node.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"node {name} not Ready in {timeout} s")


async def measure_agent(
    url: str, endpoint: str, count: int, rate: float, log_root: Path, log_file: Path
) -> tuple[list[float], float, float]:
    """(latencies, node agent RSS MiB with the pods running, its CPU seconds while starting
    them)."""
    cmd = [
        sys.executable,
        "-m",
        "kubelet.main",
        "--server",
        url,
        "--node-name",
        "bench-node",
        "--runtime-endpoint",
        endpoint,
        "--pod-cidr",
        CIDR,
        "--log-root",
        str(log_root),
        "--cgroup-root",
        CGROUP_ROOT,
        "--port",
        "0",
    ]
    out = open(log_file, "ab")  # noqa: SIM115 - closed below
    agent = subprocess.Popen(cmd, stdout=out, stderr=out)
    client = AsyncClient(url)
    try:
        await wait_node_ready(client, "bench-node")
        created: dict[str, float] = {}
        done: dict[str, float] = {}
        listed = await client.list(PODS, "default")
        rv = listed["metadata"]["resourceVersion"]

        async def watch() -> None:
            async for kind, pod in client.watch(PODS, "default", resource_version=rv):
                name = pod["metadata"]["name"]
                if kind in ("ADDED", "MODIFIED") and name not in done and all_running(pod):
                    done[name] = time.monotonic()
                    if len(done) == count:
                        return

        watcher = asyncio.create_task(watch())
        cpu0 = cpu_seconds(agent.pid)
        creates = []
        for i in range(count):
            created[f"startup-{i}"] = time.monotonic()
            creates.append(asyncio.create_task(client.create(PODS, pod_body(i), "default")))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*creates)
        await asyncio.wait_for(watcher, 120)
        cpu, rss = cpu_seconds(agent.pid) - cpu0, rss_mib(agent.pid)
        latencies = [done[n] - created[n] for n in created]
        for n in created:
            await client.delete(PODS, n, "default")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (await client.list(PODS, "default"))["items"]:
            await asyncio.sleep(0.2)
        return latencies, rss, cpu
    finally:
        agent.terminate()
        agent.wait(10)
        out.close()
        await client.aclose()
        remove_cgroup(CGROUP_ROOT)


# -- hollow nodes --------------------------------------------------------------------------------


HOLLOW_MILESTONES = (100, 300, 1000)


@dataclass
class HollowResult:
    """What :func:`measure_hollow` saw of one hollow-node process."""

    count: int
    ready: int  # nodes Ready at the end (``count`` unless it timed out)
    seconds: float  # until ``ready`` nodes were Ready
    milestones: dict[int, float]  # N → seconds until N nodes were Ready
    cpu_start: float  # CPU seconds of the process until every node was Ready
    rss: float  # MiB, when every node was Ready
    steady_cpu: float | None = None  # % of one core over the steady window
    steady_ready: int | None = None  # nodes still Ready at the end of that window


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def count_ready(client: AsyncClient) -> int:
    nodes = (await client.list_all(NODES, label_selector="tugboat.io/hollow=true"))["items"]
    return sum(
        any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        for n in nodes
    )


async def measure_hollow(
    url: str,
    count: int,
    log_file: Path,
    *,
    timeout: float = 300,
    steady: float = 0,
    profile: Path | None = None,
) -> HollowResult:
    """Start ``count`` hollow nodes; time until they are Ready (and until 100, 300 ... of
    them are), the process's CPU and RSS; then, for ``steady`` seconds, its CPU while idle."""
    client = AsyncClient(url)
    cmd = [sys.executable]
    if profile is not None:
        cmd += ["-m", "cProfile", "-o", str(profile)]
    cmd += ["-m", "kubelet.main", "--server", url, "--runtime", "fake"]
    cmd += ["--hollow-nodes", str(count), "--hollow-prefix", "hollow-"]
    out = open(log_file, "ab")  # noqa: SIM115 - closed below
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=out, stderr=out)
    milestones: dict[int, float] = {}
    ready = 0
    try:
        while ready < count and proc.poll() is None and time.monotonic() - started < timeout:
            ready = await count_ready(client)
            for n in HOLLOW_MILESTONES:
                if n <= min(ready, count) and n not in milestones:
                    milestones[n] = time.monotonic() - started
            if ready < count:
                await asyncio.sleep(0.25)
        result = HollowResult(
            count,
            ready,
            time.monotonic() - started,
            milestones,
            cpu_seconds(proc.pid),
            rss_mib(proc.pid),
        )
        if steady and ready >= count:
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(steady)
            result.steady_cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
            result.steady_ready = await count_ready(client)
        return result
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
        await client.aclose()


def hollow_lines(r: HollowResult) -> list[str]:
    done = "" if r.ready >= r.count else f" (only {r.ready} Ready: timed out)"
    marks = "   ".join(f"{n}: {s:.1f} s" for n, s in sorted(r.milestones.items()))
    out = [
        f"{'hollow nodes Ready':<28} {r.count} in {r.seconds:.1f} s{done}   [{marks}]",
        f"{'hollow process':<28} CPU {r.cpu_start:.1f} s until Ready   RSS {r.rss:.0f} MiB "
        f"({r.rss / r.count * 1024:.0f} KiB/node)",
    ]
    if r.steady_cpu is not None:
        out.append(
            f"{'hollow process, steady':<28} CPU {r.steady_cpu:.0f}% of a core   "
            f"{r.steady_ready}/{r.count} still Ready"
        )
    return out


# -- main ----------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, work: Path) -> None:
    endpoint = f"unix://{work / 'containerd' / 'containerd.sock'}"
    log_root = work / "pod-logs"
    with apiserver() as (url, api_pid):
        if args.pods:
            floor = await measure_floor(endpoint, args.pods, args.rate, log_root)
            print(line("floor (CRI direct)", floor), flush=True)
            latencies, rss, cpu = await measure_agent(
                url, endpoint, args.pods, args.rate, log_root, work / "kubelet.log"
            )
            print(line("node agent (create→running)", latencies, percentile(floor, 99)))
            print(f"{'node agent RSS':<28} {rss:.1f} MiB with {args.pods} pods running")
            print(f"{'node agent CPU':<28} {cpu / args.pods * 1e3:.0f} ms per pod", flush=True)
        if args.hollow:
            result = await measure_hollow(
                url,
                args.hollow,
                work / "hollow.log",
                timeout=args.hollow_timeout,
                steady=args.hollow_steady,
                profile=args.hollow_profile,
            )
            print("\n".join(hollow_lines(result)))
            print(f"{'API server RSS':<28} {rss_mib(api_pid):.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pod_startup", description=__doc__)
    p.add_argument("--pods", type=int, default=30)
    p.add_argument("--rate", type=float, default=5.0, help="pods created per second")
    p.add_argument("--hollow", type=int, default=1000, help="hollow nodes (0: skip)")
    p.add_argument("--hollow-timeout", type=float, default=300, help="seconds to wait for Ready")
    p.add_argument(
        "--hollow-steady", type=float, default=0, help="then measure idle CPU this many seconds"
    )
    p.add_argument("--hollow-profile", type=Path, help="run the hollow process under cProfile")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (containerd)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="tug-bench-startup-") as d:
        work = Path(d)
        if not args.pods:  # hollow nodes only: no containerd needed
            asyncio.run(run(args, work))
            return 0
        cdir = work / "containerd"
        subprocess.run(
            ["bash", str(START), "--bridge", BRIDGE, "--pod-cidr", CIDR, str(cdir)],
            check=True,
            timeout=60,
        )
        try:
            for image in build_all(work / "images"):
                load_image(str(cdir / "containerd.sock"), image.path)
            asyncio.run(run(args, work))
        finally:
            subprocess.run(
                ["bash", str(START), "--stop", "--bridge", BRIDGE, str(cdir)],
                check=False,
                timeout=180,
            )
            remove_cgroup(CGROUP_ROOT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
