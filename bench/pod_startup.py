"""Pod startup latency on one containerd node, against a floor measured over CRI in the same run;
then hollow nodes registering.

``python -m bench.pod_startup [--pods 30] [--rate 5] [--rounds 3] [--hollow 1000]`` (root;
containerd, runc and the CNI plugins installed: ``hack/install-runtime.sh``). It starts its own
containerd (``hack/start-containerd.sh``, bridge ``tugbench0``, 10.244.254.0/24) with the
shipped images, an API server and a node agent (``python -m kubelet.main``). Each round starts
``--pods`` pods at ``--rate`` per second twice, one way after the other (which goes first
alternates, so both see the same machine: its speed drifts over tens of seconds):

* **floor**: this script makes the pod cgroup and sends the node agent's own CRI requests
  (built by :mod:`kubelet.specs` for the same pod: RunPodSandbox, CreateContainer,
  StartContainer), one task per pod; latency from the first step to StartContainer's answer;
* **node agent**: the pods are created through the API server; latency as Kubernetes measures
  it, from the create request to the watch showing every container running.

It prints each round, then p50 / p99 over every round for both and the ratio of the p99s, the
node agent's RSS with the pods running and its CPU per pod, and the machine's CPU per pod on
both ways (the containerd daemon's part of it; the agent path's split into node agent, API
server, this script, containerd daemon and the rest: shims, runc, CNI plugins, the kernel).

**hollow**: ``--hollow`` hollow nodes in one process (``--runtime fake --hollow-nodes K``):
seconds from process start until every Node is Ready (and until 100, 300, 1,000 of them were),
that process's CPU seconds and RSS by then; with ``--hollow-steady S``, its CPU over the next S
seconds and how many nodes are still Ready; ``--hollow-profile FILE`` runs it under cProfile.
``--pods 0`` measures only this (no containerd needed).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import apiserver, percentile, rss_mib
from bench.containerd import own_containerd
from kubelet import specs
from kubelet.cgroups import CgroupManager, pod_cgroup
from kubelet.cri.cgroups import remove_cgroup
from kubelet.cri.client import AsyncRuntimeClient
from kubelet.env import Sources, fetch_sources
from kubelet.node import Machine
from machinery.client import AsyncClient
from machinery.kinds import lookup

PODS, NODES = lookup("pods"), lookup("nodes")
BRIDGE, CIDR = "tugbench0", "10.244.254.0/24"
CGROUP_ROOT = "/tugboat-bench"
NODE = "bench-node"
Obj = dict[str, Any]


def line(name: str, samples: list[float], floor: float | None = None) -> str:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    out = f"{name:<28} n={len(samples):<5} p50 {p50 * 1e3:7.0f} ms   p99 {p99 * 1e3:7.0f} ms"
    if floor:
        out += f"   {p99 / floor:4.2f}x floor p99"
    return out


def pod_body(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox:1.35", "command": ["sleep", "3600"]}],
        },
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


async def settle(busy: float = 0.1, longest: float = 30.0) -> None:
    """Wait until the machine is quiet (under ``busy`` cores over a second), at most
    ``longest`` seconds: tearing pods down goes on after the API says they are gone (the
    kernel frees network namespaces, containerd collects snapshots) and would otherwise slow
    whatever is measured next."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        before = machine_cpu_seconds()
        await asyncio.sleep(1.0)
        if machine_cpu_seconds() - before < busy:
            return


@dataclass
class Way:
    """Latencies and CPU seconds of one way of starting pods, summed over the rounds: the
    machine's, and the node agent's, API server's and this script's parts of it."""

    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def timing(self, pids: dict[str, int]) -> Any:
        def sample() -> dict[str, float]:
            out = {"machine": machine_cpu_seconds(), "bench": own_cpu_seconds()}
            out.update({name: cpu_seconds(pid) for name, pid in pids.items()})
            return out

        before = sample()
        yield
        for name, value in sample().items():
            self.cpu[name] = self.cpu.get(name, 0.0) + value - before[name]


# -- floor: the node agent's CRI requests, sent straight ----------------------------------------


class Floor:
    """Starts pods over CRI exactly as the node agent would: the same pod cgroup, sandbox and
    container configs (:mod:`kubelet.specs`, for the same pod spec), none of the API work.
    Its node name differs from the agent's, so the agent (which runs meanwhile) does not take
    the floor's sandboxes for orphans of its own."""

    def __init__(self, cri: AsyncRuntimeClient, log_root: Path, sources: Sources) -> None:
        self.cri = cri
        self.sources = sources
        self.node = specs.NodeContext(
            name=f"{NODE}-floor",
            log_root=str(log_root),
            cgroup_root=CGROUP_ROOT,
            memory_capacity=Machine.detect().memory,
        )
        self.cgroups = CgroupManager(CGROUP_ROOT)

    def pod(self, name: str) -> Obj:
        pod = pod_body(name)
        pod["metadata"].update(namespace="default", uid=str(uuid.uuid4()))
        return pod

    async def start(self, pod: Obj) -> tuple[float, str]:
        """(seconds from the pod cgroup to StartContainer's answer, the sandbox id)."""
        started = time.monotonic()
        cgroup = pod_cgroup(pod, CGROUP_ROOT, specs.qos_class(specs.spec(pod)))
        await asyncio.to_thread(self.cgroups.apply, cgroup)
        sandbox = specs.sandbox_config(pod, self.node)
        sandbox_id = await self.cri.run_pod_sandbox(sandbox)
        for c in specs.spec(pod)["containers"]:
            config = specs.container_config(
                pod, c, self.node, restart_count=0, init=False, sources=self.sources, mounts=[]
            )
            container_id = await self.cri.create_container(sandbox_id, config, sandbox)
            await self.cri.start_container(container_id)
        return time.monotonic() - started, sandbox_id

    async def round(self, names: list[str], rate: float) -> tuple[list[float], list[Any]]:
        """(latencies, what :meth:`remove` takes to remove the pods)."""
        pods = [self.pod(n) for n in names]
        tasks = []
        for pod in pods:
            tasks.append(asyncio.create_task(self.start(pod)))
            await asyncio.sleep(1 / rate)
        results = await asyncio.gather(*tasks)
        return [r[0] for r in results], [(r[1], pod) for r, pod in zip(results, pods, strict=True)]

    async def remove(self, started: list[Any]) -> None:
        for sandbox_id, pod in started:
            await self.cri.stop_pod_sandbox(sandbox_id)
            await self.cri.remove_pod_sandbox(sandbox_id)
            await asyncio.to_thread(self.cgroups.remove, specs.pod_uid(pod))


# -- through the node agent --------------------------------------------------------------------


def all_running(pod: Obj) -> bool:
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


def start_agent(url: str, endpoint: str, log_root: Path, log_file: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "kubelet.main", "--server", url, "--node-name", NODE]
    cmd += ["--runtime-endpoint", endpoint, "--pod-cidr", CIDR, "--log-root", str(log_root)]
    cmd += ["--cgroup-root", CGROUP_ROOT, "--port", "0"]
    with open(log_file, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=out)


async def agent_round(client: AsyncClient, names: list[str], rate: float) -> list[float]:
    """Create the pods at ``rate``; latencies from each create request to the watch showing
    every container running. Then delete them and wait until they are gone (the node agent
    finishes a deletion after tearing the pod down)."""
    created: dict[str, float] = {}
    done: dict[str, float] = {}
    rv = (await client.list(PODS, "default"))["metadata"]["resourceVersion"]

    async def watch() -> None:
        async for kind, pod in client.watch(PODS, "default", resource_version=rv):
            name = pod["metadata"]["name"]
            if kind in ("ADDED", "MODIFIED") and name not in done and all_running(pod):
                done[name] = time.monotonic()
                if len(done) == len(names):
                    return

    watcher = asyncio.create_task(watch())
    creates = []
    for name in names:
        created[name] = time.monotonic()
        creates.append(asyncio.create_task(client.create(PODS, pod_body(name), "default")))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*creates)
    await asyncio.wait_for(watcher, 120)
    return [done[n] - created[n] for n in names]


async def delete_all(client: AsyncClient, names: list[str]) -> None:
    for name in names:
        await client.delete(PODS, name, "default")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (await client.list(PODS, "default"))["items"]:
        await asyncio.sleep(0.2)


@dataclass
class StartupResult:
    """What :func:`measure_startup` saw."""

    floor: Way
    agent: Way
    rounds: list[tuple[list[float], list[float]]]  # (floor, node agent) latencies per round
    rss: float  # node agent MiB with the last round's pods running


async def measure_startup(
    url: str, api_pid: int, endpoint: str, args: argparse.Namespace, work: Path
) -> StartupResult:
    log_root = work / "pod-logs"
    agent = start_agent(url, endpoint, log_root, work / "kubelet.log")
    client = AsyncClient(url)
    floor, through_agent = Way(), Way()
    result = StartupResult(floor, through_agent, [], 0.0)
    containerd = int((work / "containerd" / "containerd.pid").read_text())
    pids = {"agent": agent.pid, "apiserver": api_pid, "containerd": containerd}
    try:
        await wait_node_ready(client, NODE)
        sources = await fetch_sources(client, {"metadata": {"namespace": "default"}})
        async with AsyncRuntimeClient(endpoint) as cri:
            direct = Floor(cri, log_root, sources)
            for r in range(args.rounds):
                floor_names = [f"floor-{r}-{i}" for i in range(args.pods)]
                agent_names = [f"startup-{r}-{i}" for i in range(args.pods)]
                latencies: dict[str, list[float]] = {}
                for way in ("floor", "agent") if r % 2 == 0 else ("agent", "floor"):
                    await settle()
                    if way == "floor":
                        with floor.timing(pids):
                            latencies[way], started = await direct.round(floor_names, args.rate)
                        await direct.remove(started)
                        continue
                    with through_agent.timing(pids):
                        latencies[way] = await agent_round(client, agent_names, args.rate)
                    result.rss = rss_mib(agent.pid)
                    await delete_all(client, agent_names)
                floor.latencies += latencies["floor"]
                through_agent.latencies += latencies["agent"]
                result.rounds.append((latencies["floor"], latencies["agent"]))
                print(round_line(r, *result.rounds[-1]), flush=True)
        return result
    finally:
        agent.terminate()
        agent.wait(10)
        await client.aclose()
        remove_cgroup(CGROUP_ROOT)


def round_line(r: int, floor: list[float], agent: list[float]) -> str:
    def p(xs: list[float], q: float) -> str:
        return f"{percentile(xs, q) * 1e3:5.0f}"

    order = "floor first" if r % 2 == 0 else "agent first"
    return (
        f"round {r + 1} ({order})        floor p50 {p(floor, 50)} p99 {p(floor, 99)} ms   "
        f"node agent p50 {p(agent, 50)} p99 {p(agent, 99)} ms   "
        f"{percentile(agent, 99) / percentile(floor, 99):4.2f}x"
    )


def startup_lines(r: StartupResult, pods: int) -> list[str]:
    n = len(r.rounds) * pods
    ms = 1e3 / n
    a, f = r.agent.cpu, r.floor.cpu
    rest = a["machine"] - a["agent"] - a["apiserver"] - a["bench"] - a["containerd"]
    return [
        line("floor (CRI direct)", r.floor.latencies),
        line("node agent (create→running)", r.agent.latencies, percentile(r.floor.latencies, 99)),
        f"{'node agent RSS':<28} {r.rss:.1f} MiB with {pods} pods running",
        f"{'node agent CPU':<28} {a['agent'] * ms:.0f} ms per pod",
        f"{'machine CPU per pod':<28} floor {f['machine'] * ms:.0f} ms (containerd daemon "
        f"{f['containerd'] * ms:.0f})   node agent path {a['machine'] * ms:.0f} ms (agent "
        f"{a['agent'] * ms:.0f}, API server {a['apiserver'] * ms:.0f}, bench "
        f"{a['bench'] * ms:.0f}, containerd daemon {a['containerd'] * ms:.0f}, shims, runc, "
        f"CNI and the rest {rest * ms:.0f})",
    ]


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
    with apiserver() as (url, api_pid):
        if args.pods:
            result = await measure_startup(url, api_pid, endpoint, args, work)
            print("\n".join(startup_lines(result, args.pods)), flush=True)
        if args.hollow:
            hollow = await measure_hollow(
                url,
                args.hollow,
                work / "hollow.log",
                timeout=args.hollow_timeout,
                steady=args.hollow_steady,
                profile=args.hollow_profile,
            )
            print("\n".join(hollow_lines(hollow)))
            print(f"{'API server RSS':<28} {rss_mib(api_pid):.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pod_startup", description=__doc__)
    p.add_argument("--pods", type=int, default=30)
    p.add_argument("--rate", type=float, default=5.0, help="pods created per second")
    p.add_argument("--rounds", type=int, default=3, help="rounds of floor and node agent")
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
        try:
            with own_containerd(work, BRIDGE, CIDR):
                asyncio.run(run(args, work))
        finally:
            remove_cgroup(CGROUP_ROOT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
