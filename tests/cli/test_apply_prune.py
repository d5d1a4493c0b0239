"""``apply --prune -l`` (and ``-l`` alone) against the real API server, line for line with the
real kubectl running the same steps in a namespace of its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from machinery.kinds import lookup

from .conftest import Result

FULL = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: shop}}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: c, image: "nginx:1.25"}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, labels: {app: shop}}
data: {a: "1"}
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: shop}}
spec: {selector: {app: shop}, ports: [{port: 80}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other, labels: {app: other}}
data: {b: "2"}
"""
# the Deployment stays; cfg and the Service go; "other" does not match -l and is not applied
SMALLER = FULL.split("---\n")[0] + "---\n" + FULL.split("---\n")[3].replace('"2"', '"3"')


# the types a test server serves (kubectl's default set has ReplicationController, which
# tugboat does not serve: kubectl then refuses to prune without an allowlist)
ALLOW = ["--prune-allowlist", "core/v1/ConfigMap", "--prune-allowlist", "core/v1/Service",
         "--prune-allowlist", "apps/v1/Deployment"]  # fmt: skip


def _scenario(run: Callable[..., Result], ns: str, tmp: Path) -> list[tuple[int, str, str]]:
    """The steps, each one's (exit code, stdout, stderr) with the namespace blanked."""
    full, smaller = tmp / "full.yaml", tmp / "smaller.yaml"
    full.write_text(FULL)
    smaller.write_text(SMALLER)
    prune = ["apply", "-f", str(smaller), "--prune", "-l", "app=shop"]
    steps = [
        ["apply", "-f", str(full)],
        ["create", "configmap", "manual"],  # no last-applied annotation: never pruned
        ["label", "configmap", "manual", "app=shop"],
        [*prune, *ALLOW, "--dry-run=client"],
        ["get", "cm,svc", "-o", "name"],
        [*prune, "--prune-allowlist", "core/v1/Service"],
        [*prune, *ALLOW],
        ["get", "cm,svc,deploy", "-o", "name"],
        [*prune, *ALLOW],
        ["apply", "-f", str(smaller), "--prune"],
        [*prune, "--all"],
        ["apply", "-f", str(smaller), "-l", "app=nothing"],
        ["apply", "-f", str(smaller), "-l", "app=shop", "--prune-allowlist", "core/v1/Service"],
    ]
    out = []
    for argv in steps:
        res = run(*argv, "-n", ns)
        out.append((res.code, res.out.replace(ns, "NS"), res.err.replace(ns, "NS")))
    return out


def _namespace(run: Callable[..., Result]) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    assert run("create", "namespace", name).code == 0
    return name


def test_prune_like_kubectl(tug, kubectl, tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "k").mkdir()
    mine = _scenario(tug, _namespace(tug), tmp_path / "t")
    theirs = _scenario(kubectl, _namespace(kubectl), tmp_path / "k")
    assert mine == theirs
    assert [m[1] for m in mine[3:9]] == [
        "deployment.apps/web configured (dry run)\n"
        "configmap/cfg pruned (dry run)\nservice/web pruned (dry run)\n",
        "configmap/cfg\nconfigmap/manual\nconfigmap/other\nservice/web\n",
        "deployment.apps/web unchanged\nservice/web pruned\n",
        "deployment.apps/web unchanged\nconfigmap/cfg pruned\n",
        "configmap/manual\nconfigmap/other\ndeployment.apps/web\n",
        "deployment.apps/web unchanged\n",
    ]
    assert all(code == 1 and err.count("\n") == 1 for code, _, err in mine[9:12])
    assert mine[12] == (0, "deployment.apps/web unchanged\n", "")  # the allowlist alone: no prune


def test_prune_with_the_default_types(tug, api, tmp_path: Path) -> None:
    """Without an allowlist, kubectl's default types that the server serves; a server dry
    run deletes nothing. (Not compared with kubectl: it refuses to prune without an allowlist
    on a server without ReplicationControllers, and its server dry run puts ``dryRun`` only
    in the DeleteOptions body, which tugboat's API server does not read yet.)"""
    ns, elsewhere = _namespace(tug), _namespace(tug)
    f = tmp_path / "full.yaml"
    f.write_text(FULL)
    assert tug("apply", "-f", str(f), "-n", ns).code == 0
    assert tug("apply", "-f", str(f), "-n", elsewhere).code == 0
    f.write_text(SMALLER)
    res = tug("apply", "-f", str(f), "-n", ns, "--prune", "-l", "app=shop", "--dry-run=server")
    assert res.out.splitlines() == [
        "deployment.apps/web unchanged (server dry run)",
        "configmap/cfg pruned (server dry run)",
        "service/web pruned (server dry run)",
    ]
    assert tug("get", "cm/cfg", "svc/web", "-n", ns).code == 0, "a dry run deletes nothing"
    res = tug("apply", "-f", str(f), "-n", ns, "--prune", "-l", "app=shop")
    assert (res.code, res.err) == (0, "")
    assert res.out.splitlines() == [
        "deployment.apps/web unchanged",
        "configmap/cfg pruned",
        "service/web pruned",
    ]
    client = api.client()
    assert {o["metadata"]["name"] for o in client.list(lookup("configmaps"), elsewhere)["items"]}
    assert client.get(lookup("services"), "web", elsewhere)["metadata"]["name"] == "web"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prune-allowlist", "v1/ConfigMap"], "invalid GroupVersionKind format: v1/ConfigMap"),
        (["--prune-allowlist", "core/v1/Nope"], 'no matches for kind "Nope" in version "v1"'),
    ],
    ids=["two-parts", "unknown-kind"],
)
def test_prune_allowlist_errors(tug, ns, tmp_path: Path, argv: list[str], message: str) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text(FULL.split("---\n")[1])
    res = tug("apply", "-f", str(f), "-n", ns, "--prune", "-l", "app=shop", *argv)
    assert res.code == 1 and message in res.err and res.err.count("\n") == 1
