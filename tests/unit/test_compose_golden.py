"""Golden files: compose files of versions 1, 2 and 3 → manifests and warnings.

Regenerate after an intended change with
``TUG_UPDATE_GOLDEN=1 pytest tests/unit/test_compose_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from cli.compose.convert import convert
from cli.compose.load import load

GOLDEN = Path(__file__).parent / "compose_golden"
VERSIONS = ["v1", "v2", "v3"]


def _render(version: str) -> dict:
    cf = load(GOLDEN / version / "docker-compose.yml", f"golden-{version}")
    result = convert(cf.doc, cf.project, base_dir="/compose")
    return {"warnings": result.warnings, "manifests": result.manifests}


@pytest.mark.parametrize("version", VERSIONS)
def test_conversion_matches_golden(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG", "1")  # v3's ``- DEBUG`` takes the value tug compose sees
    got = _render(version)
    expected_file = GOLDEN / version / "expected.yaml"
    if os.environ.get("TUG_UPDATE_GOLDEN"):
        expected_file.write_text(yaml.safe_dump(got, sort_keys=False))
    assert got == yaml.safe_load(expected_file.read_text())


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_carries_the_project_label(version: str) -> None:
    for obj in _render(version)["manifests"]:
        assert obj["metadata"]["labels"]["tugboat.io/compose-project"] == f"golden-{version}"
