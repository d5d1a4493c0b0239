"""Global flags, kubeconfig resolution and the one-line error contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cli.config import split_globals
from cli.errors import CliError
from tests.cli.conftest import run_tug


@pytest.mark.parametrize(
    ("argv", "field", "value", "rest"),
    [
        (["-n", "x", "get", "pods"], "namespace", "x", ["get", "pods"]),
        (["get", "pods", "-n", "x"], "namespace", "x", ["get", "pods"]),
        (["get", "pods", "-nx"], "namespace", "x", ["get", "pods"]),
        (["get", "--namespace=x", "pods"], "namespace", "x", ["get", "pods"]),
        (["get", "pods", "-A"], "all_namespaces", True, ["get", "pods"]),
        (["--all-namespaces=false", "get"], "all_namespaces", False, ["get"]),
        (["-s", "http://h:1", "get"], "server", "http://h:1", ["get"]),
        (["get", "--context", "c"], "context", "c", ["get"]),
        (["--request-timeout=2m", "get"], "request_timeout", 120.0, ["get"]),
        (
            ["exec", "p", "--", "ls", "-n", "x"],
            "namespace",
            None,
            ["exec", "p", "--", "ls", "-n", "x"],
        ),
    ],
    ids=lambda v: str(v),
)
def test_split_globals(argv, field, value, rest):
    flags, remaining = split_globals(argv)
    assert getattr(flags, field) == value
    assert remaining == rest


def test_split_globals_missing_value():
    with pytest.raises(CliError, match="flag needs an argument: --context"):
        split_globals(["get", "--context"])


def _kubeconfig(tmp_path: Path, server: str, contexts: dict[str, str], current: str) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [
            {"name": "good", "cluster": {"server": server}},
            {"name": "bad", "cluster": {"server": "http://127.0.0.1:1"}},
        ],
        "users": [{"name": "u", "user": {}}],
        "contexts": [
            {"name": n, "context": {"cluster": c, "user": "u", "namespace": "kube-system"}}
            for n, c in contexts.items()
        ],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_context_selection_and_kubeconfig_env(api, tmp_path, monkeypatch):
    cfg = _kubeconfig(tmp_path, api.url, {"ok": "good", "down": "bad"}, "down")
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    down = run_tug("get", "ns")
    assert down.code == 1
    assert down.err == (
        "error: the server at http://127.0.0.1:1 is not reachable: connection refused\n"
    )
    ok = run_tug("get", "ns", "--context", "ok")
    assert ok.code == 0, ok.err
    assert "kube-system" in ok.out
    # the context's namespace is the default namespace
    res = run_tug("--context=ok", "get", "cm", "-o", "name")
    assert res.code == 0 and res.out == ""  # kube-system has no configmaps yet
    # --server overrides the context's cluster
    res = run_tug("get", "ns", "-s", api.url)
    assert res.code == 0, res.err


def test_missing_kubeconfig(tmp_path):
    res = run_tug("--kubeconfig", str(tmp_path / "nope"), "get", "pods")
    assert res.code == 1
    assert res.err.startswith("error: no configuration has been provided")
    assert res.err.count("\n") == 1


def test_server_flag_without_kubeconfig(api, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    res = run_tug("-s", api.url, "get", "ns", "default", "-o", "name")
    assert (res.code, res.out) == (0, "namespace/default\n")


@pytest.mark.parametrize(
    ("argv", "err"),
    [
        (["get", "pods", "nope-x"], 'Error from server (NotFound): pods "nope-x" not found\n'),
        (["get", "flubbers"], 'error: the server doesn\'t have a resource type "flubbers"\n'),
        (["get", "pods", "--bogus"], "error: unknown flag: --bogus\n"),
        (["get", "pods", "-o", "xml"], None),
        (["frobnicate"], None),
    ],
    ids=["not-found", "unknown-kind", "unknown-flag", "bad-output", "unknown-verb"],
)
def test_errors_are_one_line(tug, argv, err):
    res = tug(*argv)
    assert res.code == 1
    assert res.err.count("\n") == 1, res.err
    assert "Traceback" not in res.err
    if err:
        assert res.err == err
    else:
        assert res.err.startswith("error: ")


def test_console_script_dispatches_components_and_verbs(api):
    """The real entry point: a verb runs, and component names still reach their modules."""
    import subprocess
    import sys

    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "--kubeconfig",
            api.kubeconfig,
            "get",
            "ns",
            "default",
            "-o",
            "name",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (p.returncode, p.stdout) == (0, "namespace/default\n"), p.stderr
    from cli import main

    assert main.COMPONENTS == {
        "apiserver": "apiserver.main",
        "controller-manager": "controllers.manager",
        "scheduler": "scheduler.__main__",
        "kubelet": "kubelet.main",
        "proxy": "kubelet.proxy.main",
        "dns": "kubelet.dns",
        "up": "cli.cluster.up",
        "down": "cli.cluster.down",
        "status": "cli.cluster.status",
    }


@pytest.mark.parametrize("debug", ["", "1"], ids=["plain", "TUG_DEBUG"])
def test_an_unexpected_exception_is_one_line(api, monkeypatch, debug):
    """A bug inside a verb: ``error: Type: message``, exit 1; the traceback only on request."""
    from cli.verbs import info

    def broken(session, args):
        raise KeyError("surprise")

    monkeypatch.setattr(info, "run_version", broken)
    monkeypatch.setenv("TUG_DEBUG", debug)
    res = run_tug("--kubeconfig", api.kubeconfig, "version")
    assert res.code == 1
    assert res.err.splitlines()[-1] == "error: KeyError: 'surprise'"
    if debug:
        assert res.err.startswith("Traceback (most recent call last):")
        assert "in broken" in res.err
    else:
        assert res.err.count("\n") == 1
