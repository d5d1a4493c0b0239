"""``tug up --merge-kubeconfig``: the merge into a user's kubeconfig and its undoing."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from cli.cluster import kubeconfig
from cli.cluster.common import DataDir
from machinery.kubeconfig import (
    KubeconfigError,
    backup_path,
    load_kubeconfig,
    merge_kubeconfig,
    unmerge_kubeconfig,
    write_kubeconfig,
)

KUBECTL = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "kubectl"

USER_CONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [
        {"name": "prod", "cluster": {"server": "https://prod.example:6443"}},
        {"name": "dev", "cluster": {"server": "https://dev.example:6443"}},
    ],
    "users": [{"name": "me", "user": {"token": "secret"}}],
    "contexts": [
        {"name": "prod", "context": {"cluster": "prod", "user": "me", "namespace": "shop"}},
        {"name": "dev", "context": {"cluster": "dev", "user": "me"}},
    ],
    "current-context": "prod",
    "preferences": {"colors": True},
}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A cluster's own kubeconfig, as ``tug up`` writes it."""
    path = tmp_path / "tug" / "kubeconfig"
    write_kubeconfig(str(path), "http://127.0.0.1:7443")
    return path


def _user_file(tmp_path: Path, doc: dict | None = USER_CONFIG) -> Path:
    path = tmp_path / "home" / ".kube" / "config"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.chmod(path, 0o640)
    return path


def _doc(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _named(doc: dict, key: str) -> dict[str, dict]:
    return {e["name"]: e for e in doc.get(key) or []}


def test_merge_keeps_every_other_entry_and_the_current_context(
    source: Path, tmp_path: Path
) -> None:
    target = _user_file(tmp_path)
    original = target.read_bytes()
    result = merge_kubeconfig(str(source), str(target))
    assert (result.changed, result.set_current, result.current_context) == (True, False, "prod")
    assert result.server == "http://127.0.0.1:7443"
    doc = _doc(target)
    for key in ("clusters", "users", "contexts"):
        merged = _named(doc, key)
        assert set(merged) == set(_named(USER_CONFIG, key)) | {"tugboat"}
        for name, entry in _named(USER_CONFIG, key).items():
            assert merged[name] == entry, f"{key}/{name} was changed"
    assert doc["current-context"] == "prod" and doc["preferences"] == {"colors": True}
    assert Path(backup_path(str(target))).read_bytes() == original
    assert stat.S_IMODE(target.stat().st_mode) == 0o640, "the file's mode is kept"
    tug = load_kubeconfig(str(target), "tugboat")
    assert tug.server == "http://127.0.0.1:7443"
    assert load_kubeconfig(str(target)).server == "https://prod.example:6443"


def test_remerge_is_idempotent_and_replaces_in_place(source: Path, tmp_path: Path) -> None:
    target = _user_file(tmp_path)
    merge_kubeconfig(str(source), str(target))
    once = target.read_bytes()
    Path(backup_path(str(target))).unlink()
    again = merge_kubeconfig(str(source), str(target))
    assert (again.changed, again.backup) == (False, None)
    assert target.read_bytes() == once
    assert not Path(backup_path(str(target))).exists(), "no change, no backup"

    write_kubeconfig(str(source), "http://127.0.0.1:9443")  # the cluster came back elsewhere
    assert merge_kubeconfig(str(source), str(target)).changed
    doc = _doc(target)
    assert [c["name"] for c in doc["clusters"]] == ["prod", "dev", "tugboat"]
    assert _named(doc, "clusters")["tugboat"]["cluster"]["server"] == "http://127.0.0.1:9443"
    assert Path(backup_path(str(target))).read_bytes() == once


@pytest.mark.parametrize("initial", ["absent", "empty", "no-current"])
def test_merge_sets_the_current_context_only_when_there_is_none(
    source: Path, tmp_path: Path, initial: str
) -> None:
    if initial == "absent":
        target = tmp_path / "new" / "config"
    elif initial == "empty":
        target = _user_file(tmp_path, None)
        target.write_text("")
    else:
        target = _user_file(tmp_path, {**USER_CONFIG, "current-context": ""})
    result = merge_kubeconfig(str(source), str(target))
    assert (result.set_current, result.current_context) == (True, "tugboat")
    assert load_kubeconfig(str(target)).server == "http://127.0.0.1:7443"
    if initial == "absent":
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        assert result.backup is None


def test_unmerge_removes_only_what_was_merged(source: Path, tmp_path: Path) -> None:
    target = _user_file(tmp_path, {**USER_CONFIG, "current-context": ""})
    merge_kubeconfig(str(source), str(target))
    assert not unmerge_kubeconfig(str(target), server="http://127.0.0.1:1"), "another cluster's"
    assert "tugboat" in _named(_doc(target), "contexts")
    assert unmerge_kubeconfig(str(target), server="http://127.0.0.1:7443")
    doc = _doc(target)
    for key in ("clusters", "users", "contexts"):
        assert list(_named(doc, key).values()) == list(_named(USER_CONFIG, key).values())
    assert doc["current-context"] == ""
    assert not unmerge_kubeconfig(str(target)), "nothing left to remove"


def test_a_broken_target_is_refused_and_left_alone(source: Path, tmp_path: Path) -> None:
    target = _user_file(tmp_path)
    target.write_text("clusters: [unclosed\n")
    with pytest.raises(KubeconfigError, match="not valid YAML"):
        merge_kubeconfig(str(source), str(target))
    assert target.read_text() == "clusters: [unclosed\n"


def test_tug_up_merge_and_down_purge_messages(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = DataDir(source.parent)
    target = _user_file(tmp_path)
    monkeypatch.setenv("KUBECONFIG", f"{target}{os.pathsep}{tmp_path / 'second'}")
    line = kubeconfig.merge(d, None)  # $KUBECONFIG's first file
    assert line == (
        f'merged context "tugboat" into {target} (previous file kept as '
        f'{target}.tugboat.bak); the current context stays "prod": '
        "kubectl config use-context tugboat switches to it\n"
    )
    assert kubeconfig.merge(d, None).startswith(f'context "tugboat" is already in {target};')
    assert kubeconfig.unmerge(d) == f'removed context "tugboat" from {target}\n'
    assert "tugboat" not in _named(_doc(target), "contexts")

    fresh = tmp_path / "fresh" / "config"
    assert kubeconfig.merge(d, str(fresh)).endswith(
        "; it is the current context (there was none)\n"
    )


def test_kubectl_reads_the_merged_file(source: Path, tmp_path: Path) -> None:
    if not KUBECTL.exists():
        pytest.skip("kubectl not installed (bash hack/get-kubectl.sh)")
    target = _user_file(tmp_path)
    merge_kubeconfig(str(source), str(target))
    out = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(target), "config", "get-contexts", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (out.returncode, sorted(out.stdout.split())) == (0, ["dev", "prod", "tugboat"])
    view = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(target), "config", "current-context"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert view.stdout == "prod\n"


def test_relative_file_references_become_absolute(tmp_path: Path) -> None:
    source = tmp_path / "tug" / "kubeconfig"
    source.parent.mkdir()
    doc = {
        "clusters": [{"name": "tugboat", "cluster": {"server": "https://127.0.0.1:6443",
                                                      "certificate-authority": "pki/ca.crt"}}],
        "users": [{"name": "tugboat", "user": {"client-certificate": "pki/admin.crt",
                                               "client-key": "/abs/admin.key"}}],
        "contexts": [{"name": "tugboat", "context": {"cluster": "tugboat", "user": "tugboat"}}],
    }  # fmt: skip
    source.write_text(yaml.safe_dump(doc))
    target = tmp_path / "home" / "config"
    merge_kubeconfig(str(source), str(target))
    merged = _doc(target)
    pki = source.parent.resolve() / "pki"
    assert merged["clusters"][0]["cluster"]["certificate-authority"] == str(pki / "ca.crt")
    assert merged["users"][0]["user"] == {
        "client-certificate": str(pki / "admin.crt"),
        "client-key": "/abs/admin.key",
    }
