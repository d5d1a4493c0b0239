"""``tug compose down`` against a real API server: what it deletes and what it leaves to the
garbage collector."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

from cli.app import run as tug
from cli.compose.convert import PROJECT_LABEL
from cli.config import Globals, Session
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess

NS, PODS, PVCS = lookup("namespaces"), lookup("pods"), lookup("persistentvolumeclaims")


def _pod(name: str, owner: dict | None = None) -> dict:
    meta: dict = {"name": name, "labels": {PROJECT_LABEL: "shop"}}
    if owner:
        meta["ownerReferences"] = [owner]
    return {"metadata": meta, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def test_down_deletes_bare_pods_and_leaves_owned_ones_to_their_owner(
    api: ApiServerProcess, tmp_path: Path
) -> None:
    ns = f"compose-down-{secrets.token_hex(3)}"
    client = api.client()
    client.create(NS, {"metadata": {"name": ns}})
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "web-abc",
        "uid": "0000-1111",
        "controller": True,
    }
    client.create(PODS, _pod("web-abc-x1", owner), ns)
    client.create(PODS, _pod("job"), ns)
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("name: shop\nservices:\n  web:\n    image: busybox\n")
    out, err = io.StringIO(), io.StringIO()
    argv = ["compose", "down", "-f", str(compose), "-n", ns, "-s", api.url]
    assert tug(argv, Session(flags=Globals(), out=out, err=err)) == 0, err.getvalue()
    assert out.getvalue() == "pod/job deleted\n"
    left = client.list_all(PODS, ns)["items"]
    assert [p["metadata"]["name"] for p in left] == ["web-abc-x1"]


def _claim(name: str) -> dict:
    return {
        "metadata": {"name": name, "labels": {PROJECT_LABEL: "shop"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def test_down_keeps_claims_unless_v_then_removes_them(
    api: ApiServerProcess, tmp_path: Path
) -> None:
    ns = f"compose-down-{secrets.token_hex(3)}"
    client = api.client()
    client.create(NS, {"metadata": {"name": ns}})
    client.create(PVCS, _claim("data"), ns)
    client.create(PVCS, {**_claim("other"), "metadata": {"name": "other"}}, ns)
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(
        "name: shop\nservices:\n  web:\n    image: busybox\n    volumes: [data:/d]\n"
        "volumes:\n  data: {}\n"
    )
    base = ["compose", "down", "-f", str(compose), "-n", ns, "-s", api.url]
    for argv, printed, left in (
        (base, "nothing to delete for project shop\n", ["data", "other"]),
        ([*base, "-v"], "persistentvolumeclaim/data deleted\n", ["other"]),
    ):
        out, err = io.StringIO(), io.StringIO()
        assert tug(argv, Session(flags=Globals(), out=out, err=err)) == 0, err.getvalue()
        assert out.getvalue() == printed
        claims = client.list_all(PVCS, ns)["items"]
        # a deleted claim waits for its pvc-protection finalizer (no controllers run here)
        kept = [c["metadata"]["name"] for c in claims if not c["metadata"].get("deletionTimestamp")]
        assert kept == left
