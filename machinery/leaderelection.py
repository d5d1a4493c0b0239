"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it.

Candidates race to write their identity into ``spec.holderIdentity`` with optimistic
concurrency (the update carries the resourceVersion read, so only one writer wins). The holder
renews ``spec.renewTime`` every ``retry_period``; others take over once the lease has not changed
for ``leaseDurationSeconds`` *as measured on their own clock* since they last saw it change (no
cross-machine clock comparison). A leader that cannot renew for ``renew_deadline`` stops leading:
its ``on_started_leading`` task is cancelled before ``lease_duration`` runs out, so two leaders
never act at once as long as clocks run at the same rate.

Timing rule (checked): ``lease_duration > renew_deadline > retry_period * 1.2``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from machinery import errors
from machinery.client import AsyncClient
from machinery.kinds import builtin
from machinery.workqueue import Clock, RealClock

log = logging.getLogger(__name__)

LEASES = builtin("coordination.k8s.io/v1", "Lease")
JITTER = 1.2


def micro_time(when: datetime | None = None) -> str:
    """RFC 3339 with microseconds, UTC (``MicroTime``)."""
    return (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """One candidate for the lease ``namespace/name``; :meth:`run` campaigns and leads."""

    def __init__(
        self,
        client: AsyncClient,
        name: str,
        namespace: str = "kube-system",
        identity: str | None = None,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
        clock: Clock | None = None,
        *,
        release_on_cancel: bool = True,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period * JITTER:
            raise ValueError("need lease_duration > renew_deadline > retry_period * 1.2")
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self._clock: Clock = clock or RealClock()
        self._leader = False
        self._observed: dict[str, Any] | None = None  # the lease spec last seen
        self._observed_at = 0.0  # our clock when it last changed

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def holder(self) -> str | None:
        """The identity that held the lease when last observed."""
        return (self._observed or {}).get("holderIdentity") or None

    async def run(
        self,
        on_started_leading: Callable[[], Awaitable[None]],
        on_stopped_leading: Callable[[], None] | None = None,
    ) -> None:
        """Wait to acquire the lease, then run ``on_started_leading()`` while renewing.

        Returns when leadership is lost (the callback task is cancelled first) or when the
        callback returns (the lease is then released); an exception from the callback is
        re-raised after cleaning up. Cancelling ``run`` releases the lease if held (unless
        ``release_on_cancel`` is False). ``on_stopped_leading`` is called whenever leading
        stops."""
        while not await self._try_acquire_or_renew():
            await self._clock.sleep(self.retry_period * random.uniform(1.0, JITTER))
        self._leader = True
        log.info("%s: %s became leader", self._lease_name, self.identity)
        task = asyncio.ensure_future(on_started_leading())
        release = True
        try:
            release = await self._renew_until_lost(task)
            if task.done():
                task.result()  # re-raise what the leading callback raised
        except asyncio.CancelledError:
            release = self.release_on_cancel
            raise
        finally:
            self._leader = False
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            if release:
                await self._release()
            if on_stopped_leading is not None:
                on_stopped_leading()
            log.info("%s: %s stopped leading", self._lease_name, self.identity)

    async def _renew_until_lost(self, task: asyncio.Future[None]) -> bool:
        """Renew until the task ends (→ True: release) or renewal fails for longer than the
        renew deadline (→ False: the lease is not ours to release)."""
        last_renew = self._clock.now()
        while True:
            sleeper = asyncio.ensure_future(self._clock.sleep(self.retry_period))
            try:
                await asyncio.wait({task, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
            if task.done():
                return True
            if await self._try_acquire_or_renew():
                last_renew = self._clock.now()
            elif self._clock.now() - last_renew >= self.renew_deadline:
                log.warning(
                    "%s: %s failed to renew within %.0fs; stepping down",
                    self._lease_name,
                    self.identity,
                    self.renew_deadline,
                )
                return False

    # -- the lease -----------------------------------------------------------------------------

    @property
    def _lease_name(self) -> str:
        return f"lease {self.namespace}/{self.name}"

    def _observe(self, spec: dict[str, Any]) -> None:
        if spec != self._observed:
            self._observed = spec
            self._observed_at = self._clock.now()

    async def _try_acquire_or_renew(self) -> bool:
        now = micro_time()
        try:
            try:
                lease = await self.client.get(LEASES, self.name, self.namespace)
            except errors.NotFound:
                spec = self._spec(now, now, transitions=0)
                await self.client.create(
                    LEASES,
                    {
                        "apiVersion": LEASES.api_version,
                        "kind": LEASES.kind,
                        "metadata": {"name": self.name, "namespace": self.namespace},
                        "spec": spec,
                    },
                    self.namespace,
                )
                self._observe(spec)
                return True
            spec = dict(lease.get("spec") or {})
            self._observe(spec)
            holder = spec.get("holderIdentity") or ""
            duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
            if (
                holder
                and holder != self.identity
                and (self._observed_at + duration > self._clock.now())
            ):
                return False  # someone else holds a live lease
            mine = holder == self.identity
            new_spec = self._spec(
                (spec.get("acquireTime") or now) if mine else now,
                now,
                transitions=int(spec.get("leaseTransitions") or 0) + (0 if mine else 1),
            )
            await self.client.update(LEASES, {**lease, "spec": {**spec, **new_spec}})
            self._observe({**spec, **new_spec})
            return True
        except asyncio.CancelledError:
            raise
        except (errors.Conflict, errors.AlreadyExists):
            return False  # another candidate wrote first
        except Exception as e:
            log.warning(
                "%s: %s could not read or write the lease: %s", self._lease_name, self.identity, e
            )
            return False

    def _spec(self, acquire: str, renew: str, *, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": acquire,
            "renewTime": renew,
            "leaseTransitions": transitions,
        }

    async def _release(self) -> None:
        """Give the lease up at once (holder cleared, duration 1 s) if it is still ours."""
        with contextlib.suppress(Exception):
            lease = await self.client.get(LEASES, self.name, self.namespace)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            now = micro_time()
            spec.pop("holderIdentity", None)
            spec.update(leaseDurationSeconds=1, acquireTime=now, renewTime=now)
            await self.client.update(LEASES, {**lease, "spec": spec})
