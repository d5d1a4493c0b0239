"""Log rotation by size (fake runtime over gRPC) and following a log across a rotation."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from kubelet.logs import LogOptions, follow, rotate_logs, rotated_files
from kubelet.podworker import PodWorker
from tests.unit.test_kubelet_worker import NODE, Env, env, settle, sleeper  # noqa: F401


async def _log_path(env: Env) -> tuple[str, str]:  # noqa: F811
    pod = env.seed("chatty", [sleeper()])
    await settle(PodWorker(env.context(), pod), env)
    (cid,) = env.running_ids()
    status = await env.runtime.container_status(cid)
    return cid, status.log_path


async def test_big_logs_are_rotated_and_old_copies_pruned(env: Env) -> None:  # noqa: F811
    cid, path = await _log_path(env)
    labels = {"tugboat.io/node": NODE}
    env.fake.write_log(cid, "small\n")
    assert await rotate_logs(env.runtime, labels, max_size=1000, max_files=3) == []
    for i in range(4):
        env.fake.write_log(cid, "x" * 2000 + "\n")
        env.clock.step(1)
        rotated = await rotate_logs(
            env.runtime, labels, max_size=1000, max_files=3, clock=env.clock
        )
        assert rotated == [path]
        assert not os.path.exists(path)  # the fake reopens lazily, on the next write
        env.fake.write_log(cid, f"after {i}\n")
        assert Path(path).read_text().endswith(f"after {i}\n")
    kept = rotated_files(path)
    assert len(kept) == 2  # max_files - 1 rotated copies besides the live file
    assert "after 3" not in kept[-1].read_text() and "after 2" in kept[-1].read_text()
    assert env.fake.calls["ReopenContainerLog"] == 4


async def test_follow_continues_in_the_new_file_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text("2024-01-01T00:00:00Z stdout F one\n")
    alive = asyncio.Event()
    alive.set()

    async def running() -> bool:
        return alive.is_set()

    stream = follow(str(path), LogOptions(follow=True), running, poll=0.01)
    assert await anext(stream) == b"one\n"
    os.replace(path, tmp_path / "0.log.1")
    path.write_text("2024-01-01T00:00:01Z stdout F two\n")
    assert await asyncio.wait_for(anext(stream), 5) == b"two\n"
    alive.clear()
    rest = [chunk async for chunk in stream]
    assert rest == []
