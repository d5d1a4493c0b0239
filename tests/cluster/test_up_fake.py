"""``tug up --runtime fake`` end to end, the plan it makes, and its error paths."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.cluster import down, status, up
from cli.cluster.common import DataDir
from cli.cluster.credentials import kubeconfig_path
from cli.cluster.example import WEB_MANIFEST, wait_for_app
from cli.cluster.procs import wait_gone
from machinery.client import Client
from machinery.kinds import lookup
from tests.cli.conftest import run_tug

from .conftest import cluster_processes, eventually, free_port

NODES, SERVICES = lookup("nodes"), lookup("services")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "tug"
    try:
        yield d
    finally:  # whatever happened, leave nothing running
        down.main(["--data-dir", str(d)])


def test_up_fake_runs_the_example_and_down_leaves_no_process(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    user_config = data_dir.parent / "home" / ".kube" / "config"
    argv = ["--data-dir", str(data_dir), "--runtime", "fake", "--nodes", "3", "--port", str(port),
            "--merge-kubeconfig", str(user_config)]  # fmt: skip
    assert up.main(argv) == 0
    out = capsys.readouterr().out
    assert f"export KUBECONFIG={data_dir / 'kubeconfig'}" in out
    assert f'merged context "tugboat" into {user_config}; it is the current context' in out
    assert "3 node(s) Ready" in out
    d = DataDir(data_dir)
    assert (data_dir / "kubeconfig").exists()
    assert {p.name for p in d.logs.iterdir()} >= {
        "apiserver.log", "controller-manager.log", "scheduler.log", "kubelet.log", "proxy.log"
    }  # fmt: skip

    with Client.from_kubeconfig(str(data_dir / "kubeconfig")) as client:
        names = sorted(n["metadata"]["name"] for n in client.list(NODES)["items"])
        assert names == ["node-0", "node-1", "node-2"]
        kubeconfig = str(data_dir / "kubeconfig")
        res = run_tug("--kubeconfig", kubeconfig, "apply", "-f", str(WEB_MANIFEST))  # as a user
        assert (res.code, res.out) == (0, "deployment.apps/web created\nservice/web created\n")
        pods = wait_for_app(client, replicas=3, timeout=60, http=False)
        # hollow pods never pass the HTTP readiness probe: a Service that publishes not-ready
        # addresses gives the proxy endpoints
        every = {"metadata": {"name": "web-all"}, "spec": {
            "selector": {"app": "web"}, "publishNotReadyAddresses": True,
            "ports": [{"port": 80, "targetPort": 8080}]}}  # fmt: skip
        cluster_ip = client.create(SERVICES, every, "default")["spec"]["clusterIP"]
    assert len({p["spec"]["nodeName"] for p in pods}) >= 2, "spread over the hollow nodes"
    # the compute-only proxy rendered a rule per pod behind the Service's ClusterIP
    backends = {f"--to-destination {p['status']['podIP']}:8080" for p in pods}
    rules = data_dir / "nodes" / "proxy-rules"

    def rendered() -> str | None:
        text = rules.read_text() if rules.exists() else ""
        return text if f"-d {cluster_ip}/32" in text and all(b in text for b in backends) else None

    eventually("the web Service's rules in the proxy's rules file", rendered, 60)

    assert up.main(argv) == 0  # idempotent
    out = capsys.readouterr().out
    assert "already running" in out and 'context "tugboat" is already in' in out
    with Client.from_kubeconfig(str(user_config)) as client:
        assert len(client.list(NODES)["items"]) == 3

    assert status.main(["--data-dir", str(data_dir)]) == 0
    shown = capsys.readouterr().out
    for line in ("apiserver", "controller-manager", "scheduler", "kubelet", "node-2   Ready"):
        assert line in shown

    procs = cluster_processes(d)
    assert len(procs) == 6 and all(p.alive() for p in procs)
    assert down.main(["--data-dir", str(data_dir)]) == 0
    assert "tugboat stopped" in capsys.readouterr().out
    assert wait_gone(procs, 5) == [], "tug down must leave no process behind"
    assert not rules.exists(), "the proxy removed its rules on the way out"
    assert status.main(["--data-dir", str(data_dir)]) == 1
    assert "not running" in capsys.readouterr().out
    assert down.main(["--data-dir", str(data_dir), "--purge"]) == 0
    assert f'removed context "tugboat" from {user_config}' in capsys.readouterr().out
    assert "tugboat" not in user_config.read_text() and not data_dir.exists()


def test_plan_for_containerd_nodes(tmp_path: Path) -> None:
    p = up.plan(tmp_path, nodes=2, runtime="containerd", port=7000, bridge_prefix="tugx",
                first_subnet=10, python="py")  # fmt: skip
    assert [c.name for c in p.components] == [
        "containerd-node-0", "containerd-node-1", "apiserver", "controller-manager",
        "scheduler", "kubelet-node-0", "kubelet-node-1", "proxy", "dns",
    ]  # fmt: skip
    sock = f"{tmp_path}/containerd/node-1/containerd.sock"
    containerd = p.components[1]
    assert containerd.ready_socket == sock and containerd.argv[-1] == sock
    assert containerd.argv[:3] == ["bash", str(up.CONTAINERD_SCRIPT), "--foreground"]
    assert containerd.argv[containerd.argv.index("--bridge") + 1] == "tugx1"
    assert p.components[2].ready_url == "https://127.0.0.1:7000/readyz"
    assert [(n.bridge, n.pod_cidr, n.kubelet_port) for n in p.nodes] == [
        ("tugx0", "10.244.10.0/24", 7001),
        ("tugx1", "10.244.11.0/24", 7002),
    ]
    kubelet = p.components[6].argv
    assert kubelet[kubelet.index("--runtime-endpoint") + 1] == f"unix://{sock}"
    assert kubelet[kubelet.index("--pod-cidr") + 1] == "10.244.11.0/24"


def test_plan_for_fake_nodes_is_one_hollow_process(tmp_path: Path) -> None:
    p = up.plan(tmp_path, nodes=5, runtime="fake", port=7000, python="py")
    assert p.nodes == [] and p.node_names == [f"node-{i}" for i in range(5)]
    by_name = {c.name: c.argv for c in p.components}
    assert list(by_name) == ["apiserver", "controller-manager", "scheduler", "kubelet", "proxy"]
    kubelet = by_name["kubelet"]
    assert kubelet[kubelet.index("--hollow-nodes") + 1] == "5"
    # the hollow cluster's proxy computes its rules and touches no kernel; no DNS server
    proxy = by_name["proxy"]
    assert proxy[:3] == ["py", "-m", "kubelet.proxy"]
    assert proxy[proxy.index("--mode") + 1] == "compute"
    assert proxy[proxy.index("--rules-file") + 1] == str(tmp_path / "nodes" / "proxy-rules")
    assert proxy[proxy.index("--kubeconfig") + 1] == str(kubeconfig_path(tmp_path, "proxy"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nodes", "0", "--runtime", "fake"], "--nodes must be at least 1"),
        (["--runtime", "docker"], "invalid choice: 'docker'"),
        (["--nodes", "300", "--runtime", "containerd"], "leave 10.244/16"),
        (["--bridge-prefix", "averyverylongname", "--runtime", "containerd"], "15 characters"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
    ids=["no-nodes", "bad-runtime", "too-many-subnets", "long-bridge", "bad-flag"],
)
def test_up_refuses_bad_settings_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert up.main(["--data-dir", str(tmp_path), "--port", str(free_port()), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_up_refuses_a_busy_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        argv = ["--data-dir", str(tmp_path), "--runtime", "fake", "--port", str(port)]
        assert up.main(argv) == 1
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


def test_down_on_nothing_and_purge_guard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert down.main(["--data-dir", str(tmp_path / "absent")]) == 0
    assert "no tugboat cluster" in capsys.readouterr().out
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "precious.txt").write_text("keep me")
    assert down.main(["--data-dir", str(stranger), "--purge"]) == 1
    assert "does not look like a tugboat data dir" in capsys.readouterr().err
    assert (stranger / "precious.txt").exists()


def test_modules_run_with_python_m(tmp_path: Path) -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "cli.cluster.status", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "not running" in out.stdout
