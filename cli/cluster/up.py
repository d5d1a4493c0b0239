"""``tug up``: start a local cluster in the background and return once it is usable.

    tug up [--data-dir D] [--nodes N] [--runtime containerd|fake] [--port P] [--timeout S]

Starts (as children of one detached supervisor, see :mod:`cli.cluster.supervisor`) the API
server on ``127.0.0.1:P`` with SQLite in ``D``, the controller-manager, the scheduler, and the
node agents: with ``--runtime containerd`` one agent per node, each on its own containerd
instance (``hack/start-containerd.sh``: bridge ``tug<i>``, pod CIDR ``10.244.<i>.0/24``, socket
``D/containerd/node-<i>/containerd.sock``, the shipped images loaded); with ``--runtime fake``
one process running N hollow nodes and a compute-only service proxy (its rules in
``D/nodes/proxy-rules``). Each containerd is a supervised component too
(``containerd-node-<i>``, first in the start order, its log in ``D/logs/``): the images are
loaded into a short-lived instance before the supervisor starts, and a containerd that exits
is restarted like any other component. Node ``i`` is named ``node-<i>``; its agent serves logs and
exec on port ``P+1+i`` (containerd only). Node state stays inside ``D``: pod volumes under
``D/nodes/<node>/kubelet`` (``D/nodes/kubelet`` for hollow nodes), local-path PersistentVolumes
under ``D/local-path``, so two clusters on one machine never share it.

Returns 0 once the API server answers and every node is Ready; a second ``tug up`` on a running
cluster says so and returns 0. ``--bridge-prefix`` and ``--first-subnet`` let several clusters
share a machine (tests use them).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from machinery import errors
from machinery.client import Client
from machinery.kinds import lookup
from machinery.kubeconfig import write_kubeconfig

from . import kubeconfig
from .common import (
    BUILD_IMAGES_SCRIPT,
    CONTAINERD_SCRIPT,
    REPO,
    ClusterError,
    DataDir,
    parser,
    run_main,
)
from .credentials import kubeconfig_path, write_credentials
from .supervisor import ComponentSpec, write_json

NODES = lookup("nodes")
RUNTIMES = ("containerd", "fake")
CNI_BRIDGE_PLUGIN = Path("/usr/lib/cni/bridge")
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes; containerd adds ".ttrpc"
T = TypeVar("T")


@dataclass(frozen=True)
class NodePlan:
    """One node of a containerd cluster."""

    name: str
    bridge: str
    pod_cidr: str
    containerd_dir: str
    socket: str
    kubelet_port: int
    cgroup_root: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bridge": self.bridge,
            "podCIDR": self.pod_cidr,
            "containerdDir": self.containerd_dir,
            "socket": self.socket,
            "kubeletPort": self.kubelet_port,
            "cgroupRoot": self.cgroup_root,
        }


@dataclass(frozen=True)
class ClusterPlan:
    """Everything ``tug up`` will start, decided before anything starts."""

    data_dir: Path
    server: str
    runtime: str
    node_names: list[str]
    nodes: list[NodePlan]  # containerd only
    components: list[ComponentSpec]
    secure: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "runtime": self.runtime,
            "nodeNames": self.node_names,
            "nodes": [n.to_json() for n in self.nodes],
            "components": [c.to_json() for c in self.components],
            "secure": self.secure,
        }


def plan(
    data_dir: Path,
    *,
    nodes: int,
    runtime: str,
    port: int,
    bridge_prefix: str = "tug",
    first_subnet: int = 0,
    python: str = sys.executable,
    secure: bool = True,
    advertise: str = "auto",
) -> ClusterPlan:
    """The processes and node settings for a cluster (pure: no I/O). Raises ClusterError for
    settings that cannot work."""
    if runtime not in RUNTIMES:
        raise ClusterError(f"unknown runtime {runtime!r} (choose {' or '.join(RUNTIMES)})")
    if nodes < 1:
        raise ClusterError("--nodes must be at least 1")
    if not 0 < port < 65536 - nodes - 1:
        raise ClusterError(f"--port {port} is out of range")
    server = f"{'https' if secure else 'http'}://127.0.0.1:{port}"
    advertise_at = advertise_address(advertise, runtime, first_subnet)

    def connect(component: str) -> list[str]:
        """How a component reaches the API server: with its own kubeconfig when secure."""
        if secure:
            return ["--kubeconfig", str(kubeconfig_path(data_dir, component))]
        return ["--server", server]

    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    logs = data_dir / "nodes"
    manager = [python, "-m", "controllers", *connect("controller-manager")]
    manager += ["--no-leader-elect", "--port", "0"]
    manager += ["--local-path-dir", str(data_dir / "local-path")]  # PV data stays per cluster
    components: list[ComponentSpec] = []
    components += [
        ComponentSpec(
            "apiserver",
            [python, "-m", "apiserver", "--port", str(port), "--data-dir", str(data_dir)]
            + (["--secure"] if secure else [])
            + (["--advertise-address", advertise_at] if advertise_at else []),
            env,
            ready_url=f"{server}/readyz",
        ),
        ComponentSpec(
            "controller-manager",
            manager,
            env,
        ),
        ComponentSpec("scheduler", [python, "-m", "scheduler", *connect("scheduler")], env),
    ]
    names = [f"node-{i}" for i in range(nodes)]
    node_plans: list[NodePlan] = []
    if runtime == "fake":
        components.append(
            ComponentSpec(
                "kubelet",
                [python, "-m", "kubelet.main", *connect("kubelet"), "--runtime", "fake",
                 "--hollow-nodes", str(nodes), "--hollow-prefix", "node-", "--port", "0",
                 "--log-root", str(logs / "pods"), "--root-dir", str(logs / "kubelet")],
                env,
            )
        )  # fmt: skip
        # hollow nodes: the proxy computes the rules it would install and writes them to a
        # file; no DNS server (it binds 10.96.0.10 on the host and hollow pods ask nothing)
        proxy = [python, "-m", "kubelet.proxy", *connect("proxy"), "--mode", "compute",
                 "--rules-file", str(logs / "proxy-rules")]  # fmt: skip
        components.append(ComponentSpec("proxy", proxy, env))
    else:
        if first_subnet + nodes > 256 or first_subnet < 0:
            raise ClusterError(f"{nodes} nodes from 10.244.{first_subnet}.0/24 leave 10.244/16")
        for i, name in enumerate(names):
            bridge = f"{bridge_prefix}{i}"
            if len(bridge) > 15:
                raise ClusterError(f"bridge name {bridge!r} is longer than 15 characters")
            cdir = data_dir / "containerd" / name
            sock = cdir / "containerd.sock"
            if len(str(sock)) > MAX_SOCKET_PATH:
                raise ClusterError(f"socket path {sock} is too long; use a shorter --data-dir")
            cidr = str(ipaddress.ip_network(f"10.244.{first_subnet + i}.0/24"))
            node = NodePlan(name, bridge, cidr, str(cdir), str(sock), port + 1 + i,
                            f"/tugboat/{bridge}")  # fmt: skip
            node_plans.append(node)
            components.insert(
                i,
                ComponentSpec(
                    f"containerd-{name}",
                    ["bash", str(CONTAINERD_SCRIPT), "--foreground", "--bridge", bridge,
                     "--pod-cidr", cidr, str(cdir), str(sock)],
                    ready_socket=str(sock),
                    stop_timeout=15.0,
                ),
            )  # fmt: skip
            components.append(
                ComponentSpec(
                    f"kubelet-{name}",
                    [python, "-m", "kubelet.main", *connect(f"kubelet-{name}"), "--node-name", name,
                     "--runtime-endpoint", f"unix://{sock}", "--port", str(node.kubelet_port),
                     "--pod-cidr", cidr, "--log-root", str(logs / name / "pods"),
                     "--root-dir", str(logs / name / "kubelet"), "--cgroup-root", node.cgroup_root],
                    env,
                )
            )  # fmt: skip
        # one service proxy and one DNS server per machine: all node bridges share its netns
        chains = "".join(c for c in bridge_prefix.upper() if c.isalnum())[:9] or "TUG"
        bridges = [arg for n in node_plans for arg in ("--localnet-interface", n.bridge)]
        proxy = [python, "-m", "kubelet.proxy", *connect("proxy"), "--chain-prefix", chains]
        components.append(ComponentSpec("proxy", proxy + bridges, env))
        dns = [python, "-m", "kubelet.dns", *connect("dns")]
        components.append(ComponentSpec("dns", dns, env))
    return ClusterPlan(data_dir, server, runtime, names, node_plans, components, secure)


# --- preflight ---------------------------------------------------------------------------


def advertise_address(choice: str, runtime: str, first_subnet: int) -> str | None:
    """The API server's advertise address for ``--advertise-address CHOICE``: ``auto`` is the
    gateway address of node 0's bridge on a containerd cluster (a host address every pod
    reaches, and nothing outside the machine does; the bridge is made before the API server
    starts), nothing with hollow nodes; ``none`` is nothing; anything else must be an IP."""
    if choice == "none" or (choice == "auto" and runtime != "containerd"):
        return None
    if choice == "auto":
        return str(next(ipaddress.ip_network(f"10.244.{first_subnet}.0/24").hosts()))
    try:
        ipaddress.ip_address(choice)
    except ValueError:
        raise ClusterError(f"--advertise-address {choice!r} is not an IP address") from None
    return choice


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def preflight(p: ClusterPlan) -> None:
    """Refuse, with a reason, what would fail later in a less readable way."""
    port = int(p.server.rsplit(":", 1)[1])
    if not _port_free(port):
        raise ClusterError(f"port {port} on 127.0.0.1 is in use; choose another with --port")
    if p.runtime != "containerd":
        return
    if os.geteuid() != 0:
        raise ClusterError("--runtime containerd needs root (or use --runtime fake)")
    missing = [b for b in ("containerd", "ctr", "runc") if shutil.which(b) is None]
    if missing or not CNI_BRIDGE_PLUGIN.exists():
        raise ClusterError(
            f"containerd, runc or the CNI plugins are missing ({', '.join(missing) or 'cni'});"
            " run hack/install-runtime.sh"
        )
    if not CONTAINERD_SCRIPT.exists():
        raise ClusterError(f"{CONTAINERD_SCRIPT} not found: --runtime containerd needs a checkout")
    for node in p.nodes:
        if not _port_free(node.kubelet_port):
            raise ClusterError(f"port {node.kubelet_port} (agent of {node.name}) is in use")
        mine = (Path(node.containerd_dir) / "instance.env").exists()
        if Path("/sys/class/net", node.bridge).exists() and not mine:
            raise ClusterError(
                f"network interface {node.bridge} exists (another cluster?); "
                "choose another --bridge-prefix"
            )


# --- steps ---------------------------------------------------------------------------------


def _run(cmd: list[str], what: str, timeout: float) -> None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{what}: no result within {timeout:g}s")
    if out.returncode != 0:
        lines = (out.stderr or out.stdout).strip().splitlines() or ["(no output)"]
        raise ClusterError(f"{what} failed: {lines[-1]}")


def start_runtimes(p: ClusterPlan, say: Callable[[str], None]) -> None:
    """Load the shipped images into each node's containerd (idempotent), through an instance
    started for the purpose and stopped after, so that the supervisor runs the one that stays."""
    images = p.data_dir / "images"
    for node in p.nodes:
        say(f"starting containerd for {node.name} (bridge {node.bridge}, {node.pod_cidr})")
        _run(
            ["bash", str(CONTAINERD_SCRIPT), "--bridge", node.bridge, "--pod-cidr",
             node.pod_cidr, node.containerd_dir, node.socket],
            f"containerd for {node.name}",
            60,
        )  # fmt: skip
        say(f"loading images into {node.name}")
        _run(
            [sys.executable, str(BUILD_IMAGES_SCRIPT), "--out", str(images), "--load", node.socket],
            f"images for {node.name}",
            600,
        )
        _run(
            ["bash", str(CONTAINERD_SCRIPT), "--stop", node.containerd_dir, node.socket],
            f"stopping the loading containerd of {node.name}",
            120,
        )


def launch_supervisor(d: DataDir) -> None:
    """Start the detached supervisor (it forks away; the launcher exits at once)."""
    d.logs.mkdir(parents=True, exist_ok=True)
    d.state_file.unlink(missing_ok=True)
    with open(d.logs / "supervisor.log", "ab") as logf:
        launcher = subprocess.run(
            [sys.executable, "-m", "cli.cluster.supervisor", "--detach", str(d.root)],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=d.root,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
            timeout=30,
        )
    if launcher.returncode != 0:
        raise ClusterError(f"the supervisor did not start; see {d.logs / 'supervisor.log'}")


def _wait(what: str, probe: Callable[[], T | None], deadline: float, d: DataDir) -> T:
    """Poll ``probe`` until it returns a value; fail early when the supervisor dies or a
    component keeps crashing, and at the deadline."""
    while True:
        value = probe()
        if value:
            return value
        _check_components(d)
        if time.monotonic() > deadline:
            raise ClusterError(
                f"timed out waiting for {what}; logs in {d.logs} (tug down stops what started)"
            )
        time.sleep(0.2)


def _check_components(d: DataDir) -> None:
    state = d.state() or {}
    if state and d.supervisor() is None:
        raise ClusterError(f"the supervisor exited; see {d.logs / 'supervisor.log'}")
    for name, comp in (state.get("components") or {}).items():
        if comp.get("restarts", 0) >= 2 and comp.get("state") == "restarting":
            raise ClusterError(
                f"{name} keeps exiting (code {comp.get('lastExitCode')}): "
                f"{_last_line(d.logs / f'{name}.log')} (tug down stops the rest)"
            )


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    real = [ln for ln in lines if not ln.startswith("--- ")]
    return (real or lines or ["no log"])[-1].strip()


def _api_ready(server: str, ca_file: Path | None = None) -> bool:
    verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    try:
        r = httpx.get(f"{server}/readyz", timeout=1, trust_env=False, verify=verify)
        return r.status_code == 200
    except httpx.HTTPError:
        return False


def ready_nodes(client: Client, names: list[str]) -> set[str]:
    """Which of ``names`` are Nodes with condition Ready=True."""
    try:
        items = client.list(NODES).get("items") or []
    except (errors.ApiError, httpx.HTTPError):
        return set()
    ready = set()
    for node in items:
        name = (node.get("metadata") or {}).get("name")
        conds = (node.get("status") or {}).get("conditions") or []
        if name in names and any(c.get("type") == "Ready" and c.get("status") == "True"
                                 for c in conds):  # fmt: skip
            ready.add(name)
    return ready


def next_steps(d: DataDir, p: ClusterPlan) -> str:
    examples = REPO / "manifests" / "examples"
    flag = "" if str(d.root) == str(Path("~/.tugboat").expanduser()) else f" --data-dir {d.root}"
    return (
        f"tugboat is up: API server {p.server}, {len(p.node_names)} node(s) Ready "
        f"({p.runtime} runtime), data in {d.root}\n\n"
        "Next:\n"
        f"  export KUBECONFIG={d.kubeconfig}\n"
        "  tug get nodes\n"
        f"  tug apply -f {examples / 'web.yaml'}\n"
        "  tug get pods -o wide\n"
        f"  tug status{flag}      # components and nodes; logs in {d.logs}\n"
        f"  tug down{flag}        # stop it (--purge also deletes {d.root})\n"
    )


def up(argv: list[str]) -> int:
    p_ = parser("tug up", "Start a local tugboat cluster in the background.")
    p_.add_argument("--nodes", type=int, default=1)
    p_.add_argument("--runtime", choices=RUNTIMES, default="containerd")
    p_.add_argument("--port", type=int, default=6443, help="API server port on 127.0.0.1")
    p_.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Ready")
    p_.add_argument("--bridge-prefix", default="tug", help="node i's bridge is PREFIX<i>")
    p_.add_argument("--first-subnet", type=int, default=0, help="node i gets 10.244.<F+i>.0/24")
    p_.add_argument("-q", "--quiet", action="store_true", help="print only the result")
    p_.add_argument(
        "--advertise-address",
        default="auto",
        metavar="IP|auto|none",
        help="address pods reach the API server at through the kubernetes Service "
        "(auto: node 0's bridge gateway with containerd)",
    )
    p_.add_argument(
        "--insecure",
        action="store_true",
        help="plain HTTP, no authentication or authorization (local experiments only)",
    )
    p_.add_argument(
        "--merge-kubeconfig",
        nargs="?",
        const="",
        metavar="PATH",
        help="also add a 'tugboat' context to PATH (default $KUBECONFIG or ~/.kube/config)",
    )
    args = p_.parse_args(argv)
    d = DataDir.at(args.data_dir)

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, flush=True)

    with d.locked():
        if d.supervisor() is not None:
            server = (d.cluster() or {}).get("server", "?")
            print(f"tugboat is already running (API server {server}, data dir {d.root})")
            if args.merge_kubeconfig is not None:
                print(kubeconfig.merge(d, args.merge_kubeconfig), end="")
            return 0
        p = plan(
            d.root,
            nodes=args.nodes,
            runtime=args.runtime,
            port=args.port,
            bridge_prefix=args.bridge_prefix,
            first_subnet=args.first_subnet,
            secure=not args.insecure,
            advertise=args.advertise_address,
        )
        preflight(p)
        start_runtimes(p, say)
        if p.secure:
            clients = [c.name for c in p.components if "--kubeconfig" in c.argv]
            write_credentials(d.root, p.server, clients)
        else:
            write_kubeconfig(str(d.kubeconfig), p.server)
        write_json(d.spec_file, p.to_json())
        say("starting the control plane and node agents")
        launch_supervisor(d)
        deadline = time.monotonic() + args.timeout
        _wait("the supervisor", d.supervisor, deadline, d)
        ca = d.root / "pki" / "ca.crt" if p.secure else None
        _wait(f"the API server at {p.server}", lambda: _api_ready(p.server, ca), deadline, d)
        say(f"waiting for {len(p.node_names)} node(s) to be Ready")
        with Client.from_kubeconfig(str(d.kubeconfig)) as client:
            _wait(
                "every node to be Ready",
                lambda: ready_nodes(client, p.node_names) == set(p.node_names),
                deadline,
                d,
            )
    print(next_steps(d, p), end="")
    if args.merge_kubeconfig is not None:
        print(kubeconfig.merge(d, args.merge_kubeconfig), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(up, argv)


if __name__ == "__main__":
    sys.exit(main())
