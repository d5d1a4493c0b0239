"""The real kubectl's exec and attach on containerd, through the API server and the node agent's
SPDY relay to containerd's streaming server: output streams while the command runs, the end of
stdin reaches the container, ``-it`` gets a terminal of the client's size, attach talks to a
container's shell, and refusals read as Kubernetes words them."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from collections.abc import AsyncIterator

import pytest

from machinery.client import AsyncClient
from tests.conftest import ApiServerProcess
from tests.e2e.conftest import ContainerdRuntime
from tests.e2e.kubelet_env import (
    KUBECTL,
    PODS,
    RealNode,
    container,
    eventually,
    kubectl,
    node_session,
    pod,
    require_kubectl,
    running,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
async def node(
    api: ApiServerProcess, containerd_runtime: ContainerdRuntime
) -> AsyncIterator[tuple[AsyncClient, RealNode]]:
    require_kubectl()
    async with node_session(api, containerd_runtime, "e2e-exec") as pair:
        yield pair


def env(api: ApiServerProcess) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": api.kubeconfig}


async def start_sleeper(client: AsyncClient, n: RealNode, bb: str, name: str) -> None:
    main = container("main", bb, command=["sleep", "3600"])
    await client.create(PODS, pod(name, n.name, [main]), "default")
    await eventually(f"{name} running", lambda: running(client, name))


async def test_exec_streams_output_reads_stdin_to_its_end_and_keeps_exit_code(
    api: ApiServerProcess,
    node: tuple[AsyncClient, RealNode],
    containerd_runtime: ContainerdRuntime,
) -> None:
    client, n = node
    await start_sleeper(client, n, containerd_runtime.busybox_image, "streamer")

    # No -i/-t: the first line arrives while the command still waits for a file only a second
    # exec creates, so the output is streamed, not returned when the command ends.
    script = "echo first; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo second; exit 3"
    proc = await asyncio.create_subprocess_exec(
        str(KUBECTL),
        "exec",
        "streamer",
        "--",
        "sh",
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env(api),
    )
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"first\n"
        assert proc.returncode is None
        out = await asyncio.to_thread(kubectl, api, "exec", "streamer", "--", "touch", "/tmp/go")
        assert out.returncode == 0, out.stderr
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"second\n"
        assert await asyncio.wait_for(proc.wait(), 30) == 3
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    # a few MiB pass (more than any SPDY window)
    out = await asyncio.to_thread(
        kubectl, api, "exec", "streamer", "--", "sh", "-c", "yes abcdefghi | head -n 300000"
    )
    assert (out.returncode, len(out.stdout)) == (0, 3_000_000), out.stderr

    # -i with piped input: kubectl's end of stdin (v5 close) reaches cat, which then exits.
    out = await asyncio.to_thread(
        kubectl, api, "exec", "-i", "streamer", "--", "cat", stdin="hello\nworld\n"
    )
    assert (out.returncode, out.stdout) == (0, "hello\nworld\n"), out.stderr
    out = await asyncio.to_thread(
        kubectl, api, "exec", "-i", "streamer", "--", "wc", "-l", stdin="a\nb\nc\n"
    )
    assert (out.returncode, out.stdout.strip()) == (0, "3"), out.stderr


TUG = [sys.executable, "-c", "from cli.main import main; raise SystemExit(main())"]


def run_in_terminal(
    api: ApiServerProcess, rows: int, cols: int, *args: str, program: list[str] | None = None
) -> tuple[int, str]:
    """Run kubectl (or ``program``) on a pseudo-terminal of ``rows``×``cols``; its exit code
    and output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(
        [*(program or [str(KUBECTL)]), *args], stdin=slave, stdout=slave, stderr=slave, env=env(api)
    )
    os.close(slave)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every writer of the terminal has gone
                break
            if not chunk:
                break
            output += chunk
        return proc.wait(timeout=60), output.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


async def test_tty_and_attach(
    api: ApiServerProcess,
    node: tuple[AsyncClient, RealNode],
    containerd_runtime: ContainerdRuntime,
) -> None:
    client, n = node
    bb = containerd_runtime.busybox_image
    await start_sleeper(client, n, bb, "terminal")

    # -it on a terminal: the command gets a /dev/pts device whose size is the client's
    # (kubectl's resize message reaches containerd; the loop waits for it, and retries an
    # early stty that finds the terminal not set up yet).
    script = (
        "tty; until stty size >/tmp/size 2>/dev/null && grep -q '^[1-9]' /tmp/size; "
        "do sleep 0.1; done; "
        "cat /tmp/size; exit 4"
    )
    code, output = await asyncio.to_thread(
        run_in_terminal, api, 33, 111, "exec", "-it", "terminal", "--", "sh", "-c", script
    )
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    assert code == 4, output
    assert lines[-3].startswith("/dev/pts/") and lines[-2] == "33 111", output
    assert lines[-1] == "command terminated with exit code 4", output

    # the same through tug: a terminal of the client's size in the container, the exit code
    code, output = await asyncio.to_thread(
        run_in_terminal,
        api,
        33,
        111,
        "exec",
        "-it",
        "terminal",
        "--",
        "sh",
        "-c",
        script,
        program=TUG,
    )
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    assert code == 4, output
    assert lines[-2].startswith("/dev/pts/") and lines[-1] == "33 111", output

    # attach to a shell reading its stdin: input goes in, output comes back; the end of input
    # closes the container's stdin (stdinOnce), so the shell and the attach end.
    shell = container("main", bb, command=["sh"], stdin=True, stdinOnce=True)
    await client.create(PODS, pod("listener", n.name, [shell], restartPolicy="Never"), "default")
    await eventually("listener running", lambda: running(client, "listener"))
    out = await asyncio.to_thread(
        kubectl, api, "attach", "-i", "listener", stdin="echo attached-$((40+2))\n"
    )
    assert (out.returncode, out.stdout) == (0, "attached-42\n"), out.stderr


async def test_refusals_read_as_kubernetes_words_them(
    api: ApiServerProcess,
    node: tuple[AsyncClient, RealNode],
    containerd_runtime: ContainerdRuntime,
) -> None:
    client, n = node
    bb = containerd_runtime.busybox_image
    main = container("main", bb, command=["sleep", "3600"])
    done = container("done", bb, command=["true"])
    await client.create(PODS, pod("mixed", n.name, [main, done], restartPolicy="Never"), "default")

    async def done_exited() -> bool:
        status = (await client.get(PODS, "mixed", "default")).get("status") or {}
        statuses = status.get("containerStatuses") or []
        return any(s["name"] == "done" and "terminated" in s["state"] for s in statuses)

    await eventually("done exited", done_exited)
    out = await asyncio.to_thread(kubectl, api, "exec", "mixed", "-c", "nope", "--", "ls")
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "Error from server (BadRequest): container nope is not valid for pod mixed"
    )
    out = await asyncio.to_thread(kubectl, api, "exec", "mixed", "-c", "done", "--", "ls")
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'error: Internal error occurred: unable to upgrade connection: container not found ("done")'
    )

    # logs of a container that cannot start yet: Kubernetes' BadRequest, not a 404
    lost = container("main", "127.0.0.1:1/nothing:1")
    await client.create(PODS, pod("unpulled", n.name, [lost]), "default")
    prefix = (
        'Error from server (BadRequest): container "main" in pod "unpulled" is waiting to start'
    )
    expected = {f"{prefix}: image can't be pulled", f"{prefix}: trying and failing to pull image"}

    async def pull_refused() -> str | None:
        out = await asyncio.to_thread(kubectl, api, "logs", "unpulled")
        return out.stderr.strip() if out.stderr.strip() in expected else None

    assert await eventually("logs refused", pull_refused)
