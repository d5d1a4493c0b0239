"""The proxy's control loop: watch Services and EndpointSlices, keep the kernel's rules equal to
:func:`~kubelet.proxy.rules.compute_ruleset` of what it sees.

Contract: every informer event marks the state dirty and wakes the sync loop; the loop waits
``min_sync_period`` after a wake (so a burst of events costs one sync), recomputes the whole
ruleset from the caches and hands it to the backend only when it differs from the last one
applied. A failed apply is retried after ``retry_period``; ``sync_period`` forces a periodic
re-apply (repairs rules someone deleted). ``synced_at`` records when each ruleset took effect,
for tests and the benchmark. Rules are only applied once both caches have synced, so a
restarting proxy never programs a half-empty ruleset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from machinery.aio import wait_event
from machinery.informer import InformerFactory
from machinery.kinds import lookup

from .iptables import IptablesConfig, render
from .rules import Ruleset, ServicePortRule, service_rules, slice_service_key

log = logging.getLogger(__name__)

SERVICES = lookup("services")
SLICES = lookup("endpointslices")
Obj = dict[str, Any]


class Backend(Protocol):
    async def apply(self, ruleset: Ruleset) -> None: ...

    async def cleanup(self) -> None: ...


class ComputeOnlyBackend:
    """For hollow nodes: keeps the last ruleset (and, with ``render``, its iptables text)
    without touching the kernel. With ``rules_file`` the text is also written there after each
    apply (replaced atomically, so a reader sees one whole ruleset) and removed on cleanup."""

    def __init__(
        self,
        render_text: bool = True,
        config: IptablesConfig | None = None,
        rules_file: str | None = None,
    ) -> None:
        self.ruleset = Ruleset()
        self.text = ""
        self.applies = 0
        self.render_text = render_text or rules_file is not None
        self.config = config or IptablesConfig()
        self.rules_file = rules_file

    async def apply(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        if self.render_text:
            self.text, _ = render(ruleset, self.config)
        if self.rules_file:
            tmp = f"{self.rules_file}.tmp"
            os.makedirs(os.path.dirname(tmp) or ".", exist_ok=True)
            with open(tmp, "w") as f:
                f.write(self.text)
            os.replace(tmp, self.rules_file)
        self.applies += 1

    async def cleanup(self) -> None:
        self.ruleset = Ruleset()
        self.text = ""
        if self.rules_file:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.rules_file)


class Proxier:
    """Runs until cancelled; on cancellation the backend's rules are removed when
    ``cleanup_on_exit``."""

    def __init__(
        self,
        factory: InformerFactory,
        backend: Backend,
        *,
        min_sync_period: float = 0.05,
        sync_period: float = 30.0,
        retry_period: float = 1.0,
        cleanup_on_exit: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.factory = factory
        self.backend = backend
        self.min_sync_period = min_sync_period
        self.sync_period = sync_period
        self.retry_period = retry_period
        self.cleanup_on_exit = cleanup_on_exit
        self.clock = clock
        svc_inf = factory.informer(SERVICES)
        slice_inf = factory.informer(SLICES, indexers={"proxy-service": _by_service})
        self.services = svc_inf.store
        self.slices = slice_inf.store
        self._dirty = asyncio.Event()
        for inf in (svc_inf, slice_inf):
            inf.add_handler(self._mark, lambda _o, _n: self._mark(), self._mark)
        self.ruleset: Ruleset | None = None
        self._memo: dict[tuple[str, str], tuple[Any, tuple[ServicePortRule, ...]]] = {}
        self.synced_at: float | None = None
        self.syncs = 0
        self.ready = asyncio.Event()  # set after the first successful apply

    def _mark(self, *_: Any) -> None:
        self._dirty.set()

    def compute(self) -> Ruleset:
        """:func:`compute_ruleset` of the caches (equal to it), recomputing only the Services
        whose object or slices changed since the last call (by resourceVersion)."""
        memo: dict[tuple[str, str], tuple[Any, tuple[ServicePortRule, ...]]] = {}
        rules: list[ServicePortRule] = []
        for svc in self.services.list():
            m = svc.get("metadata") or {}
            memo[(m.get("namespace", ""), m.get("name", ""))] = (svc, ())
        for key in sorted(memo):
            svc = memo[key][0]
            slices = self.slices.by_index("proxy-service", f"{key[0]}/{key[1]}")
            fingerprint = (_rv(svc), tuple(sorted(_rv(s) for s in slices)))
            hit = self._memo.get(key)
            if hit is not None and hit[0] == fingerprint and fingerprint[0]:
                own = hit[1]
            else:
                own = tuple(sorted(service_rules(svc, slices)))
            memo[key] = (fingerprint, own)
            rules.extend(own)
        self._memo = memo
        return Ruleset(tuple(rules))

    async def sync_once(self, force: bool = False) -> bool:
        """Recompute and apply if changed (or ``force``); True when the backend was called."""
        ruleset = self.compute()
        if not force and ruleset == self.ruleset:
            return False
        await self.backend.apply(ruleset)
        self.ruleset = ruleset
        self.synced_at = self.clock()
        self.syncs += 1
        self.ready.set()
        return True

    async def run(self) -> None:
        await self.factory.start()
        await self.factory.wait_synced()
        try:
            await self._loop()
        finally:
            if self.cleanup_on_exit:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.backend.cleanup())

    async def _loop(self) -> None:
        force = True
        while True:
            self._dirty.clear()
            try:
                await self.sync_once(force=force)
                force = False
                timeout = self.sync_period
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("applying service rules failed: %s; retrying", e)
                force = True
                timeout = self.retry_period
            if not await wait_event(self._dirty, timeout):
                force = True
                continue
            await asyncio.sleep(self.min_sync_period)


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _by_service(eps: Obj) -> list[str]:
    key = slice_service_key(eps)
    return [key] if key else []
