"""``tug logs POD`` (``--tail``, ``--since``, ``--since-time``, ``--previous``, ``-f``) and
``tug exec POD -- CMD`` against a node agent on the fake runtime, through the API server's proxy.

The fake runtime runs ``sh -c 'echo ...; exit N'`` itself (ExecSync); ``exec -i``/``-t`` go
through CRI's streaming Exec, which the fake does not serve (tests/e2e covers it on containerd).
"""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta

from cli.app import run
from cli.config import Session
from machinery.kinds import lookup

from .conftest import NODE, Plane

PODS = lookup("pods")


async def start_pod(plane: Plane, name: str) -> str:
    """A running pod with one sleeping container ``main``; returns its container id."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "main", "image": "busybox:1.35", "command": ["sleep", "1h"]}],
        },
    }
    await plane.client.create(PODS, body, "default")
    return await running_container(plane, name, restarts=0)


async def running_container(plane: Plane, name: str, restarts: int) -> str:
    async def probe() -> str | None:
        pod = await plane.client.get(PODS, name, "default")
        for s in (pod.get("status") or {}).get("containerStatuses") or []:
            if "running" in s["state"] and s.get("restartCount", 0) == restarts:
                return s["containerID"].split("//")[1]
        return None

    return await plane.until(f"{name} running after {restarts} restart(s)", probe)


async def test_logs_of_one_pod_tail_and_since(plane: Plane) -> None:
    cid = await start_pod(plane, "talk")
    real_clock = plane.fake.clock
    plane.fake.clock = lambda: real_clock() - 3600  # a line written an hour ago
    plane.fake.write_log(cid, "old\n")
    plane.fake.clock = real_clock
    plane.fake.write_log(cid, "a\nb\nc\n")
    for argv, out in [
        (["talk"], "old\na\nb\nc\n"),
        (["pod/talk", "main"], "old\na\nb\nc\n"),
        (["talk", "--tail=1"], "c\n"),
        (["talk", "--since=10m"], "a\nb\nc\n"),
        (["talk", "--since=2h"], "old\na\nb\nc\n"),
        (["talk", f"--since-time={_rfc3339(timedelta(minutes=10))}"], "a\nb\nc\n"),
    ]:
        res = await plane.atug("logs", *argv)
        assert (res.code, res.out, res.err) == (0, out, ""), argv
    res = await plane.atug("logs", "talk", "--since=soon")
    assert (res.code, res.err) == (1, 'error: invalid argument "soon" for "--since" flag\n')


def _rfc3339(ago: timedelta) -> str:
    return (datetime.now(UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_logs_previous_shows_the_last_instance(plane: Plane) -> None:
    first = await start_pod(plane, "crashy")
    plane.fake.write_log(first, "first run\n")
    res = await plane.atug("logs", "crashy", "--previous")
    assert res.code == 1 and res.err.count("\n") == 1
    assert res.err == (
        "Error from server (BadRequest): previous terminated container "
        '"main" in pod "crashy" not found\n'
    )
    plane.fake.exit_container(first, 1)  # restartPolicy Always: the agent starts it again
    second = await running_container(plane, "crashy", restarts=1)
    assert second != first
    plane.fake.write_log(second, "second run\n")
    assert (await plane.atug("logs", "crashy")).out == "second run\n"
    res = await plane.atug("logs", "crashy", "-p")
    assert (res.code, res.out) == (0, "first run\n"), res.err


async def test_logs_follow_one_pod(plane: Plane) -> None:
    cid = await start_pod(plane, "tail")
    plane.fake.write_log(cid, "before\n")
    out, err = io.StringIO(), io.StringIO()
    argv = ["--kubeconfig", plane.api.kubeconfig, "logs", "-f", "tail"]
    codes: list[int] = []
    runner = threading.Thread(
        target=lambda: codes.append(run(argv, Session(out=out, err=err))), daemon=True
    )
    runner.start()
    await plane.until("the existing line", lambda: out.getvalue() == "before\n")
    plane.fake.write_log(cid, "after\n")  # written while the stream is open
    await plane.until("the new line", lambda: out.getvalue() == "before\nafter\n")
    assert runner.is_alive(), "-f follows while the container runs"
    plane.fake.exit_container(cid, 0)  # the stream ends with the container
    await plane.until("the end of the stream", lambda: not runner.is_alive())
    assert codes == [0] and err.getvalue() == ""


async def test_exec_runs_a_command_and_returns_its_exit_code(plane: Plane) -> None:
    await start_pod(plane, "shell")
    res = await plane.atug("exec", "shell", "--", "sh", "-c", "echo hi; exit 0")
    assert (res.code, res.out, res.err) == (0, "hi\n", "")
    res = await plane.atug("exec", "pod/shell", "-c", "main", "--", "sh", "-c", "exit 7")
    assert (res.code, res.out) == (7, "")
    res = await plane.atug("exec", "shell", "-c", "nope", "--", "ls")
    assert (res.code, res.err) == (1, "error: container nope is not valid for pod shell\n")
    res = await plane.atug("exec", "shell")
    assert res.err == "error: you must specify at least one command for the container\n"
    res = await plane.atug("exec", "ghost", "--", "ls")
    assert (res.code, res.err) == (1, 'Error from server (NotFound): pods "ghost" not found\n')
