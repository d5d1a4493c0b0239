"""Which kubeconfig ``tug`` reads without ``--kubeconfig``: ``$KUBECONFIG`` (several files merged
as kubectl merges them), else ``~/.kube/config``, else ``tug up``'s ``~/.tugboat/kubeconfig``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from machinery.kubeconfig import read_merged
from tests.cli.conftest import run_tug

DOWN = "http://127.0.0.1:1"  # nothing listens there: a context using it fails to connect


def _write(path: Path, current: str | None, clusters: dict[str, str], ns: str = "default") -> Path:
    """A kubeconfig with one context (and cluster) per ``clusters`` entry: name → server."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": s}} for n, s in clusters.items()],
        "users": [{"name": "u", "user": {}}],
        "contexts": [
            {"name": n, "context": {"cluster": n, "user": "u", "namespace": ns}} for n in clusters
        ],
    }
    if current:
        doc["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home directory, with neither KUBECONFIG nor TUG_DATA_DIR set."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("TUG_DATA_DIR", raising=False)
    return tmp_path


def _unreachable(res: Any) -> bool:
    return res.code == 1 and res.err == f"error: the server at {DOWN} is not reachable: " + (
        "connection refused\n"
    )


def test_falls_back_to_tug_up_kubeconfig(api, home, monkeypatch):
    res = run_tug("get", "ns", "default", "-o", "name")
    assert res.code == 1 and res.err.startswith("error: no configuration has been provided")
    assert str(home / ".kube" / "config") in res.err
    _write(home / ".tugboat" / "kubeconfig", "up", {"up": api.url})
    res = run_tug("get", "ns", "default", "-o", "name")
    assert (res.code, res.out) == (0, "namespace/default\n"), res.err
    assert run_tug("config", "current-context").out == "up\n"
    # ~/.kube/config, once it exists, comes first (kubectl's own default)
    _write(home / ".kube" / "config", "mine", {"mine": DOWN})
    assert _unreachable(run_tug("get", "ns"))
    # and $KUBECONFIG before both
    monkeypatch.setenv("KUBECONFIG", str(home / ".tugboat" / "kubeconfig"))
    assert run_tug("get", "ns", "default", "-o", "name").code == 0


def test_tug_data_dir_moves_the_fallback(api, home, monkeypatch):
    _write(home / "elsewhere" / "kubeconfig", "up", {"up": api.url})
    monkeypatch.setenv("TUG_DATA_DIR", str(home / "elsewhere"))
    res = run_tug("get", "ns", "default", "-o", "name")
    assert (res.code, res.out) == (0, "namespace/default\n"), res.err


def test_kubeconfig_list_merges_like_kubectl(api, home, monkeypatch):
    # a.yaml sets no current-context; its "shared" context wins over b.yaml's of that name
    a = _write(home / "a.yaml", None, {"shared": api.url, "only-a": DOWN}, ns="kube-system")
    b = _write(home / "b.yaml", "shared", {"shared": DOWN, "only-b": api.url})
    missing = home / "absent.yaml"  # skipped, as kubectl skips it
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(missing), str(a), str(b)]))
    res = run_tug("get", "cm", "-o", "name")  # current-context "shared" from b, entry from a
    assert res.code == 0, res.err
    assert run_tug("config", "current-context").out == "shared\n"
    contexts = run_tug("config", "get-contexts", "-o", "name").out.split()
    assert contexts == ["shared", "only-a", "only-b"]
    assert run_tug("--context", "only-b", "get", "ns", "default", "-o", "name").code == 0
    assert _unreachable(run_tug("--context", "only-a", "get", "ns"))
    view = yaml.safe_load(run_tug("config", "view").out)
    shared = next(c for c in view["clusters"] if c["name"] == "shared")
    assert shared["cluster"]["server"] == api.url
    # use-context writes the first file that exists, as kubectl does
    assert run_tug("config", "use-context", "only-b").code == 0
    assert yaml.safe_load(a.read_text())["current-context"] == "only-b"
    assert run_tug("get", "ns", "default", "-o", "name").code == 0


def test_merge_resolves_file_references_against_their_own_file(tmp_path):
    first = tmp_path / "one" / "config"
    second = tmp_path / "two" / "config"
    for path, ca in ((first, "ca-one.crt"), (second, "ca-two.crt")):
        path.parent.mkdir()
        path.write_text(
            yaml.safe_dump(
                {
                    "clusters": [
                        {"name": "c", "cluster": {"server": DOWN, "certificate-authority": ca}},
                        {"name": path.parent.name, "cluster": {"server": DOWN}},
                    ],
                    "current-context": "",
                }
            )
        )
    doc = read_merged([str(first), str(second)])
    assert [c["name"] for c in doc["clusters"]] == ["c", "one", "two"]
    ca = doc["clusters"][0]["cluster"]["certificate-authority"]
    assert ca == str(first.parent / "ca-one.crt")
    assert "current-context" not in doc
