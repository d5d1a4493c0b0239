"""Fixtures: run ``tug`` in-process against the session's real API server."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.app import run
from cli.config import Session

KUBECTL = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "kubectl"


@dataclass
class Result:
    code: int
    out: str
    err: str


Tug = Callable[..., Result]


def run_tug(*argv: str, stdin: str | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    session = Session(out=out, err=err)
    if stdin is not None:
        import sys

        old, sys.stdin = sys.stdin, io.StringIO(stdin)
        try:
            code = run(list(argv), session)
        finally:
            sys.stdin = old
    else:
        code = run(list(argv), session)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def tug(api) -> Tug:
    """``tug(*argv)`` with ``--kubeconfig`` pointing at the test API server."""

    def call(*argv: str, stdin: str | None = None) -> Result:
        return run_tug("--kubeconfig", api.kubeconfig, *argv, stdin=stdin)

    return call


@pytest.fixture
def ns(tug: Tug) -> str:
    """A fresh namespace for one test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    res = tug("create", "namespace", name)
    assert res.code == 0, res.err
    return name


@pytest.fixture
def kubectl(api):
    """The real kubectl against the same server, or skip when it is not installed."""
    import subprocess

    if not KUBECTL.exists():
        pytest.skip("kubectl not installed (bash hack/get-kubectl.sh)")

    def call(*argv: str) -> Result:
        p = subprocess.run(
            [str(KUBECTL), "--kubeconfig", api.kubeconfig, *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "KUBECTL_COMMAND_HEADERS": "false"},
        )
        return Result(p.returncode, p.stdout, p.stderr)

    return call


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
