"""``tug get -w``, ``tug apply --server-side`` (conflicts, ``--force-conflicts``) and the
``rollout status`` progress bar on a terminal, against the session's API server."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console

from cli.app import run
from cli.config import Session
from machinery.kinds import lookup

CONFIGMAPS, DEPLOYMENTS = lookup("configmaps"), lookup("deployments")


def _until(what: str, probe: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Background:
    """``tug ARGV`` in a thread, its output readable while it runs."""

    def __init__(self, kubeconfig: str, *argv: str) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        self.codes: list[int] = []
        session = Session(out=self.out, err=self.err)
        argv_ = ["--kubeconfig", kubeconfig, *argv]
        self.thread = threading.Thread(
            target=lambda: self.codes.append(run(argv_, session)), daemon=True
        )
        self.thread.start()

    def result(self, timeout: float = 30) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "tug did not finish"
        return self.codes[0]


def test_get_watch_prints_each_change(tug, ns, api):
    tug("create", "cm", "first", "-n", ns)
    # --request-timeout bounds the watch as kubectl's does: the server ends it, exit code 0
    bg = Background(api.kubeconfig, "get", "cm", "-n", ns, "-w", "--request-timeout=4s")
    _until("the initial list", lambda: "first" in bg.out.getvalue())
    tug("create", "cm", "second", "--from-literal=k=v", "-n", ns)
    _until("the added object", lambda: "second" in bg.out.getvalue())
    tug("delete", "cm", "first", "-n", ns)
    _until("the deletion", lambda: bg.out.getvalue().count("first") == 2)
    assert bg.result() == 0, bg.err.getvalue()
    rows = [line.split()[:2] for line in bg.out.getvalue().splitlines()]
    assert rows == [["NAME", "DATA"], ["first", "0"], ["second", "1"], ["first", "0"]]

    bg = Background(
        api.kubeconfig, "get", "cm/second", "-n", ns, "--watch-only", "-o", "name",
        "--request-timeout=3s",
    )  # fmt: skip
    client = api.client()

    def touched() -> bool:  # the watch may start after a change: change until one is seen
        client.patch(CONFIGMAPS, "second", {"data": {"k": str(time.monotonic())}}, ns)
        return "configmap/second" in bg.out.getvalue()

    _until("a change to the named object", touched)
    assert bg.result() == 0
    assert set(bg.out.getvalue().splitlines()) == {"configmap/second"}


MANIFEST = """apiVersion: v1
kind: ConfigMap
metadata: {{name: shared}}
data: {{owner: "{value}"}}
"""


def test_apply_server_side_conflict_and_force(tug, ns, api):
    res = tug("apply", "--server-side", "-f", "-", "-n", ns, stdin=MANIFEST.format(value="a"))
    assert (res.code, res.out) == (0, "configmap/shared serverside-applied\n"), res.err
    res = tug("apply", "--server-side", "-f", "-", "-n", ns, stdin=MANIFEST.format(value="a"))
    assert (res.code, res.out) == (0, "configmap/shared serverside-applied\n"), res.err
    managers = {
        m["manager"]: m["operation"]
        for m in api.client().get(CONFIGMAPS, "shared", ns)["metadata"]["managedFields"]
    }
    assert managers == {"kubectl": "Apply"}

    argv = ["apply", "--server-side", "--field-manager=other", "-f", "-", "-n", ns]
    res = tug(*argv, stdin=MANIFEST.format(value="b"))
    assert res.code == 1 and res.out == ""
    assert res.err == (
        'Error from server (Conflict): error when applying "STDIN": Apply failed with 1 '
        'conflict: conflict with "kubectl": .data.owner\n'
    )
    assert api.client().get(CONFIGMAPS, "shared", ns)["data"] == {"owner": "a"}
    res = tug(*argv, "--force-conflicts", stdin=MANIFEST.format(value="b"))
    assert (res.code, res.out) == (0, "configmap/shared serverside-applied\n"), res.err
    cm = api.client().get(CONFIGMAPS, "shared", ns)
    assert cm["data"] == {"owner": "b"}
    assert [m["manager"] for m in cm["metadata"]["managedFields"]] == ["other"]


def test_rollout_status_draws_updated_and_ready_on_a_terminal(tug, ns, api, monkeypatch):
    from cli.verbs import rollout

    screen = io.StringIO()
    monkeypatch.setattr(
        rollout,
        "progress_console",
        lambda session: Console(file=screen, force_terminal=True, width=100, color_system=None),
    )
    tug("create", "deployment", "d", "--image", "nginx", "--replicas=3", "-n", ns)
    client = api.client()

    def status(updated: int, ready: int) -> None:
        d = client.get(DEPLOYMENTS, "d", ns)
        d["status"] = {
            "observedGeneration": d["metadata"]["generation"],
            "replicas": 3,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        client.update(DEPLOYMENTS, d, subresource="status")

    status(0, 0)
    bg = Background(api.kubeconfig, "rollout", "status", "deploy/d", "-n", ns, "--timeout=30s")
    _until("the bar", lambda: "0/3 updated, 0 ready" in screen.getvalue())
    status(2, 1)
    _until("the bar to move", lambda: "2/3 updated, 1 ready" in screen.getvalue())
    assert "━" in screen.getvalue()  # the bar itself, not only its label
    status(3, 3)
    assert bg.result() == 0, bg.err.getvalue()
    assert "3/3 updated, 3 ready" in screen.getvalue()
    assert bg.out.getvalue().splitlines() == [
        'Waiting for deployment "d" rollout to finish: 0 out of 3 new replicas have been '
        "updated...",
        'Waiting for deployment "d" rollout to finish: 2 out of 3 new replicas have been '
        "updated...",
        'deployment "d" successfully rolled out',
    ]


def test_rollout_status_draws_no_bar_on_a_pipe():
    from cli.verbs.rollout import progress_console

    assert progress_console(Session(out=io.StringIO(), err=io.StringIO())) is None
