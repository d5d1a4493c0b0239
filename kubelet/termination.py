"""Stopping containers and tearing pods down.

Contracts:

- :func:`stop_container` runs the container's ``preStop`` hook first (exec through CRI
  ExecSync, or an HTTP GET to the pod), then StopContainer with what is left of the grace
  period (at least :data:`MIN_GRACE` seconds): the runtime sends SIGTERM, then SIGKILL.
- :func:`kill_pod` stops every live container concurrently, then every sandbox (which frees the
  pod's IP). It is idempotent; a container or sandbox that vanished meanwhile is not an error.
- :func:`remove_pod` removes containers and sandboxes and the pod's log directory (log files
  outlive RemoveContainer); the pod's cgroup is removed by the pod worker (:mod:`kubelet.cgroups`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from .cri.client import AsyncRuntimeClient
from .cri.errors import CriError, CriNotFound
from .observe import PodRuntime

log = logging.getLogger(__name__)

MIN_GRACE = 2
Obj = dict[str, Any]


async def run_pre_stop(
    runtime: AsyncRuntimeClient, container_id: str, handler: Obj, pod_ip: str, timeout: float
) -> None:
    """Run a ``lifecycle.preStop`` handler, bounded by ``timeout``; failures are logged only."""
    try:
        if "exec" in handler:
            cmd = list((handler.get("exec") or {}).get("command") or [])
            if cmd:
                await runtime.exec_sync(container_id, cmd, timeout=max(1, int(timeout)))
        elif "httpGet" in handler:
            get = handler["httpGet"]
            host = get.get("host") or pod_ip
            url = f"{(get.get('scheme') or 'HTTP').lower()}://{host}:{get.get('port')}"
            url += get.get("path") or "/"
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            async with httpx.AsyncClient(timeout=timeout, verify=False) as http:
                await http.get(url, headers=headers)
        elif "sleep" in handler:
            await asyncio.sleep(min(timeout, float(handler["sleep"].get("seconds") or 0)))
    except (CriError, httpx.HTTPError, OSError, ValueError) as err:
        log.info("preStop hook of %s failed: %s", container_id[:12], err)


async def stop_container(
    runtime: AsyncRuntimeClient,
    container_id: str,
    grace: int,
    *,
    pre_stop: str = "",
    pod_ip: str = "",
) -> None:
    """preStop, then SIGTERM → grace → SIGKILL. A container already gone is fine."""
    started = time.monotonic()
    if pre_stop and grace > 0:
        try:
            handler = json.loads(pre_stop)
        except ValueError:
            handler = {}
        await run_pre_stop(runtime, container_id, handler, pod_ip, grace)
    remaining = max(MIN_GRACE, int(grace - (time.monotonic() - started))) if grace > 0 else 0
    try:
        await runtime.stop_container(container_id, timeout=remaining)
    except CriNotFound:
        pass


async def kill_pod(runtime: AsyncRuntimeClient, rt: PodRuntime, grace: int | None = None) -> None:
    """Stop every live container (concurrently), then every sandbox.

    ``grace`` overrides the grace period each container was created with."""
    ip = rt.sandbox.ip if rt.sandbox is not None else ""
    await asyncio.gather(
        *(
            stop_container(
                runtime,
                c.id,
                grace if grace is not None else (c.grace if c.grace is not None else 30),
                pre_stop=c.pre_stop,
                pod_ip=ip,
            )
            for c in rt.running()
        )
    )
    for s in rt.sandboxes:
        if s.ready:
            try:
                await runtime.stop_pod_sandbox(s.id)
            except CriNotFound:
                pass


async def remove_pod(
    runtime: AsyncRuntimeClient,
    rt: PodRuntime,
    *,
    log_dir: str | None,
) -> None:
    """Remove the pod's containers, sandboxes and logs (after :func:`kill_pod`); the pod's
    cgroup is :class:`kubelet.cgroups.CgroupManager`'s."""
    for c in rt.all_containers():
        try:
            await runtime.remove_container(c.id)
        except CriNotFound:
            pass
    for s in rt.sandboxes:
        try:
            await runtime.stop_pod_sandbox(s.id)
            await runtime.remove_pod_sandbox(s.id)
        except CriNotFound:
            pass
    if log_dir and Path(log_dir).is_dir():
        await asyncio.to_thread(shutil.rmtree, log_dir, True)


async def remove_container(runtime: AsyncRuntimeClient, container_id: str, log_file: str) -> None:
    """Remove one exited container and its log file."""
    try:
        await runtime.remove_container(container_id)
    except CriNotFound:
        pass
    if log_file:
        Path(log_file).unlink(missing_ok=True)
        for rotated in Path(log_file).parent.glob(Path(log_file).name + ".*"):
            rotated.unlink(missing_ok=True)
