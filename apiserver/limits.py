"""Request limits of one API server, as an ASGI middleware in front of everything else.

* **Max in flight** (Kubernetes' ``--max-requests-inflight`` 400 and
  ``--max-mutating-requests-inflight`` 200): requests being served at once, counted separately
  for reads (GET/HEAD) and writes. Long-running requests (watches and the ``log``, ``exec``,
  ``attach``, ``portforward`` and ``proxy`` subresources) and health probes are not counted.
  Beyond a limit the answer is 429 ``TooManyRequests`` with ``Retry-After: 1``, at once.
* **Watches** (``--max-watches``): open watch streams per server; beyond it, 429.
* **Per client** (``--client-qps``/``--client-burst``, off by default): a token bucket per client
  address, so one flooding client is refused while others are still served.
* **Body size**: a declared ``Content-Length`` over 3 MiB is refused with 413 before anything is
  read; a chunked body is counted as it is read and refused once it passes the limit.

The counters are plain ints changed on the event loop thread only: checking them costs a few
comparisons per request and needs no lock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from apiserver import codec
from machinery import errors

MESSAGE = "Too many requests, please try again later."
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "log", "portforward", "proxy"})
EXEMPT_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
MAX_CLIENTS = 10000  # client buckets kept before full (idle) ones are forgotten

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

_READ, _WRITE, _WATCH, _FREE = 0, 1, 2, 3
_KINDS = ("readOnly", "mutating", "watch")

DROPPED = Counter(
    "apiserver_dropped_requests_total",
    "Requests refused with 429, by the limit that refused them",
    ["request_kind"],
)
INFLIGHT = Gauge(
    "apiserver_current_inflight_requests",
    "Requests being served now, by kind (watches: open watches)",
    ["request_kind"],
)


@dataclass
class LimitConfig:
    """The knobs; 0 turns a limit off."""

    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    max_watches: int = 10000
    client_qps: float = 0.0
    client_burst: int = 0
    max_body: int = codec.MAX_BODY


def classify(scope: dict[str, Any]) -> int:
    """Which counter a request goes to: read, write, watch, or none (long-running/probes)."""
    method: str = scope["method"]
    path: str = scope["path"]
    if path in EXEMPT_PATHS or _long_running(path):  # exec and port-forward may be POSTs
        return _FREE
    if method not in ("GET", "HEAD"):
        return _WRITE
    if b"watch=" in scope.get("query_string", b"") and _is_watch(scope["query_string"]):
        return _WATCH
    return _READ


def _is_watch(query: bytes) -> bool:
    return any(p in (b"watch=1", b"watch=true", b"watch=True") for p in query.split(b"&"))


def _long_running(path: str) -> bool:
    """Whether ``path`` addresses a streaming subresource (``pods/NAME/log``, ...)."""
    if path.rpartition("/")[2] not in LONG_RUNNING_SUBRESOURCES and "/proxy/" not in path:
        return False  # the common case, decided without splitting the path
    parts = path.split("/")
    if len(parts) < 6:
        return False
    rest = parts[3:] if parts[1] == "api" else parts[4:]
    if len(rest) > 3 and rest[0] == "namespaces":
        rest = rest[2:]
    return len(rest) > 2 and rest[2] in LONG_RUNNING_SUBRESOURCES


class TokenBuckets:
    """One token bucket per client: ``qps`` tokens a second, at most ``burst`` saved."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.qps = qps
        self.burst = max(burst, 1)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def take(self, client: str) -> float:
        """Take a token for ``client``: 0 when granted, else seconds until one is available."""
        now = self.clock()
        tokens, at = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.qps)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.qps
        if len(self._buckets) >= MAX_CLIENTS and client not in self._buckets:
            self._forget_idle(now)
        self._buckets[client] = (tokens - 1, now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        full = [
            c for c, (t, at) in self._buckets.items() if t + (now - at) * self.qps >= self.burst
        ]
        for c in full:
            del self._buckets[c]


class Limits:
    """ASGI middleware enforcing :class:`LimitConfig` in front of ``app``."""

    def __init__(self, app: ASGIApp, config: LimitConfig | None = None) -> None:
        self.app = app
        self.config = config or LimitConfig()
        c = self.config
        self.caps = (c.max_requests_inflight, c.max_mutating_requests_inflight, c.max_watches)
        self.inflight = [0, 0, 0]  # reads, writes, watches being served now
        self.buckets = TokenBuckets(c.client_qps, c.client_burst) if c.client_qps > 0 else None
        for i, name in enumerate(_KINDS):
            INFLIGHT.labels(name).set_function(lambda i=i: self.inflight[i])

    def __getattr__(self, name: str) -> Any:
        # The wrapped app's attributes (``state``, ...) stay reachable for tests and tools.
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = classify(scope)
        if kind == _FREE:
            await self.app(scope, receive, send)
            return
        if self.buckets is not None:
            client = scope.get("client")
            wait = self.buckets.take(client[0] if client else "")
            if wait:
                DROPPED.labels("client").inc()
                await _refuse(scope, receive, send, math.ceil(wait))
                return
        cap = self.caps[kind]
        if cap and self.inflight[kind] >= cap:
            DROPPED.labels(_KINDS[kind]).inc()
            await _refuse(scope, receive, send, 1)
            return
        if kind == _WRITE:
            declared = _content_length(scope)
            if declared is None:
                receive = self._counting(receive)
            elif declared > self.config.max_body:
                err = errors.RequestEntityTooLarge(
                    f"Request entity too large: limit is {self.config.max_body}"
                )
                await codec.error_response(err)(scope, _no_body, send)
                return
        self.inflight[kind] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight[kind] -= 1

    def _counting(self, receive: Any) -> Any:
        """``receive`` for a body of unknown length: 413 once it passes the limit."""
        limit = self.config.max_body
        seen = 0

        async def counting() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise errors.RequestEntityTooLarge(f"Request entity too large: limit is {limit}")
            return message

        return counting


def _content_length(scope: dict[str, Any]) -> int | None:
    """The declared body length; None when there is none (chunked) or it is malformed (the
    HTTP server refuses those itself)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _refuse(scope: dict[str, Any], receive: Any, send: Any, retry_after: int) -> None:
    err = errors.TooManyRequests(MESSAGE, details={"retryAfterSeconds": retry_after})
    await codec.error_response(err)(scope, receive, send)
