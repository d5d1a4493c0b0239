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

NS, PODS = lookup("namespaces"), lookup("pods")


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
