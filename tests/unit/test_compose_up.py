"""``tug compose up`` against a real API server: named volumes' claims and the default
StorageClass that binds them."""

from __future__ import annotations

import io
from pathlib import Path

from cli.app import run as tug
from cli.config import Globals, Session
from machinery.kinds import lookup
from tests.conftest import ApiServerProcess

CLASSES, PVCS = lookup("storageclasses"), lookup("persistentvolumeclaims")
COMPOSE = """\
name: shop
services:
  web:
    image: busybox
    volumes: [data:/d]
volumes:
  data: {}
"""


def _up(api: ApiServerProcess, compose: Path) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["compose", "up", "-f", str(compose), "-n", "default", "-s", api.url]
    assert tug(argv, Session(flags=Globals(), out=out, err=err)) == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


def test_claims_warn_only_without_a_default_storage_class(
    fresh_api: ApiServerProcess, tmp_path: Path
) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(COMPOSE)
    out, err = _up(fresh_api, compose)
    assert "persistentvolumeclaim/data created" in out
    assert err == (
        "warning: volumes: PersistentVolumeClaims data stay Pending: the cluster has no "
        "default StorageClass to provision them (tug up runs local-path)\n"
    )
    claim = fresh_api.client().get(PVCS, "data", "default")
    assert "storageClassName" not in claim["spec"]  # the default class fills it in
    fresh_api.client().create(
        CLASSES,
        {
            "metadata": {
                "name": "local-path",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "tugboat.io/local-path",
        },
    )
    out, err = _up(fresh_api, compose)
    assert "persistentvolumeclaim/data unchanged" in out
    assert err == ""
