"""Recording core/v1 Events about objects (what ``kubectl describe`` shows under Events).

:meth:`EventRecorder.event` never blocks and never raises: events are queued and written by one
background task, in order. Like client-go's event correlator it

* aggregates: the same (object uid, type, reason, message) seen again within 10 minutes bumps
  ``count`` and ``lastTimestamp`` of the existing Event (a merge PATCH) instead of creating one;
* throttles: a token bucket per object (burst 25, one more every 5 minutes) drops the excess,
  so a hot loop cannot flood the store.

Failures to write are logged and dropped: events are best-effort.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from machinery import errors
from machinery.client import AsyncClient
from machinery.kinds import builtin
from machinery.workqueue import Clock, RealClock

log = logging.getLogger(__name__)

EVENTS = builtin("v1", "Event")
AGGREGATE_WINDOW = 600.0  # seconds
SPAM_BURST = 25
SPAM_QPS = 1.0 / 300.0
MAX_MESSAGE = 1024
CACHE_SIZE = 4096

Object = dict[str, Any]


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    first_timestamp: str
    last_seen: float  # recorder clock


@dataclass
class _Bucket:
    tokens: float
    last: float


class EventRecorder:
    """Posts Events on behalf of ``component`` (``source.component``, ``reportingComponent``)
    running on ``host`` (``source.host``, ``reportingInstance``)."""

    def __init__(
        self, client: AsyncClient, component: str, host: str = "", *, clock: Clock | None = None
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._clock: Clock = clock or RealClock()
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._queue: asyncio.Queue[Object | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.dropped = 0  # events the spam filter or a closed recorder threw away

    def event(self, obj: Object, type: str, reason: str, message: str) -> None:
        """Record that ``reason``/``message`` happened to ``obj`` (``type`` Normal|Warning)."""
        meta = obj.get("metadata") or {}
        subject = meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"
        if not self._allow(subject):
            self.dropped += 1
            log.debug("event for %s dropped by the spam filter: %s", subject, reason)
            return
        try:
            self._ensure_worker()
        except RuntimeError:  # no running event loop: nowhere to send from
            self.dropped += 1
            log.warning("event %s for %s dropped: no running event loop", reason, subject)
            return
        self._queue.put_nowait(
            {
                "obj": obj,
                "type": type,
                "reason": reason,
                "message": message[:MAX_MESSAGE],
                "subject": subject,
                "when": datetime.now(UTC),
            }
        )

    async def flush(self) -> None:
        """Wait until every event recorded so far has been written (or dropped)."""
        if self._worker is not None:
            await self._queue.join()

    async def aclose(self) -> None:
        """Flush and stop the background writer."""
        if self._worker is None:
            return
        self._queue.put_nowait(None)
        await self._worker
        self._worker = None

    # -- internals -----------------------------------------------------------------------------

    def _allow(self, subject: str) -> bool:
        now = self._clock.now()
        bucket = self._buckets.get(subject)
        if bucket is None:
            bucket = self._buckets[subject] = _Bucket(float(SPAM_BURST), now)
            if len(self._buckets) > CACHE_SIZE:
                self._buckets.popitem(last=False)
        bucket.tokens = min(float(SPAM_BURST), bucket.tokens + (now - bucket.last) * SPAM_QPS)
        bucket.last = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if item is None:
                    return
                await self._write(item)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("could not record event %s: %s", item and item["reason"], e)
            finally:
                self._queue.task_done()

    async def _write(self, item: Object) -> None:
        obj, when = item["obj"], item["when"]
        meta = obj.get("metadata") or {}
        key = (item["subject"], item["type"], item["reason"], item["message"])
        now = self._clock.now()
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        seen = self._seen.get(key)
        count, first = 1, stamp
        if seen is not None and now - seen.last_seen < AGGREGATE_WINDOW:
            seen.count += 1
            seen.last_seen = now
            self._seen.move_to_end(key)
            try:
                await self.client.patch(
                    EVENTS,
                    seen.name,
                    {"count": seen.count, "lastTimestamp": stamp},
                    seen.namespace,
                )
                return
            except errors.NotFound:  # expired from the store: create it again, keep the count
                count, first = seen.count, seen.first_timestamp
        namespace = meta.get("namespace") or "default"
        body = self._body(obj, item, namespace, count, first, stamp, when)
        created = await self.client.create(EVENTS, body, namespace)
        self._seen[key] = _Seen(created["metadata"]["name"], namespace, count, first, now)
        self._seen.move_to_end(key)
        if len(self._seen) > CACHE_SIZE:
            self._seen.popitem(last=False)

    def _body(
        self,
        obj: Object,
        item: Object,
        namespace: str,
        count: int,
        first: str,
        last: str,
        when: datetime,
    ) -> Object:
        meta = obj.get("metadata") or {}
        involved = {
            "kind": obj.get("kind"),
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "apiVersion": obj.get("apiVersion"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        source = {"component": self.component}
        if self.host:
            source["host"] = self.host
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta.get('name') or 'object'}.{time.time_ns():x}",
                "namespace": namespace,
            },
            "involvedObject": {k: v for k, v in involved.items() if v is not None},
            "reason": item["reason"],
            "message": item["message"],
            "type": item["type"],
            "count": count,
            "firstTimestamp": first,
            "lastTimestamp": last,
            "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "source": source,
            "action": item["reason"],
            "reportingComponent": self.component,
            "reportingInstance": self.host or self.component,
        }
