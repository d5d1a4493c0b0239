"""ServiceAccount tokens for projected volumes: fetched with TokenRequest, cached, refreshed.

A ``serviceAccountToken`` projection of a pod's projected volume becomes a file holding a
token the node agent asks the API server for (``POST .../serviceaccounts/NAME/token``,
authentication.k8s.io/v1 TokenRequest) with the projection's ``audience`` (none: the API
server's own), its ``expirationSeconds`` (default 3600) and a ``boundObjectRef`` naming the pod
(name and uid), so the token stops working once the pod is gone. Contracts (the Kubernetes
kubelet's token manager):

- Tokens are cached per (namespace, ServiceAccount, audience, expirationSeconds, pod uid); a
  pass asks the API server only when there is no cached token or it needs a refresh: once 80%
  of its lifetime has passed (lifetime = ``spec.expirationSeconds`` before
  ``status.expirationTimestamp``, as the server answered), or when it is older than 24 h.
  Kubernetes adds up to 10 s of random jitter to both bounds; tugboat does not.
- A failed refresh keeps the cached token while it is still valid (and is tried again
  :data:`RETRY_SECONDS` later); with no valid token the volume fails (``failed to fetch token:
  ...``) and the pod worker retries with its mount back-off.
- Expired tokens are dropped from the cache on every pass.
- The token is written with the projection's other files in one atomic swap
  (:func:`kubelet.volumes.write_atomic`); :meth:`TokenManager.next_refresh` tells the pod
  worker when to come back, so a token is replaced in place without restarting containers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from machinery import errors
from machinery.kinds import lookup

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SERVICEACCOUNTS = lookup("serviceaccounts")
DEFAULT_EXPIRATION = 3600
MAX_TTL = 24 * 3600.0  # a token older than this is refreshed whatever its lifetime
REFRESH_FRACTION = 0.8  # refresh once this much of the lifetime has passed
RETRY_SECONDS = 10.0  # after a failed refresh, the next attempt is this far away


@dataclass(frozen=True)
class TokenKey:
    """What a cached token is for."""

    namespace: str
    service_account: str
    audience: str
    expiration_seconds: int
    pod_uid: str


@dataclass(frozen=True)
class Token:
    """A token and its validity, in epoch seconds (``issued`` = expiry - lifetime)."""

    token: str
    issued: float
    expires: float

    def refresh_at(self) -> float:
        """When the token should be replaced (80% of its lifetime, or 24 h, whichever is
        first)."""
        return min(
            self.issued + REFRESH_FRACTION * (self.expires - self.issued),
            self.issued + MAX_TTL,
        )


def token_key(pod: Obj, projection: Obj) -> TokenKey:
    """The cache key of ``serviceAccountToken`` projection ``projection`` of ``pod``."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    return TokenKey(
        namespace=meta.get("namespace") or "default",
        service_account=spec.get("serviceAccountName") or spec.get("serviceAccount") or "default",
        audience=str(projection.get("audience") or ""),
        expiration_seconds=int(projection.get("expirationSeconds") or DEFAULT_EXPIRATION),
        pod_uid=meta.get("uid") or "",
    )


def projections(pod: Obj) -> list[Obj]:
    """The pod's ``serviceAccountToken`` projections, in volume order."""
    out = []
    for v in (pod.get("spec") or {}).get("volumes") or []:
        for source in (v.get("projected") or {}).get("sources") or []:
            if source.get("serviceAccountToken"):
                out.append(source["serviceAccountToken"])
    return out


def token_request(pod: Obj, key: TokenKey) -> Obj:
    """The TokenRequest body for ``key``, bound to ``pod``."""
    meta = pod.get("metadata") or {}
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [key.audience] if key.audience else [],
            "expirationSeconds": key.expiration_seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta.get("name", ""),
                "uid": meta.get("uid", ""),
            },
        },
    }


def parse_token(answer: Obj, requested: int) -> Token:
    """A :class:`Token` from a TokenRequest answer (``ValueError`` if it has none)."""
    status = answer.get("status") or {}
    token, expiry = status.get("token"), status.get("expirationTimestamp")
    if not token or not expiry:
        raise ValueError("the TokenRequest answer has no token or expirationTimestamp")
    expires = datetime.fromisoformat(str(expiry).replace("Z", "+00:00")).timestamp()
    lifetime = int((answer.get("spec") or {}).get("expirationSeconds") or requested)
    return Token(str(token), expires - lifetime, expires)


class TokenManager:
    """The node agent's token cache (one per agent, shared by its pod workers)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._tokens: dict[TokenKey, Token] = {}

    async def fetch(self, client: Any, pod: Obj) -> dict[TokenKey, Token | str]:
        """A token (or why there is none) for every ``serviceAccountToken`` projection of
        ``pod``, asking the API server only for missing or due tokens."""
        now = self.clock()
        for key in [k for k, t in self._tokens.items() if t.expires <= now]:
            del self._tokens[key]
        out: dict[TokenKey, Token | str] = {}
        for projection in projections(pod):
            key = token_key(pod, projection)
            if key in out:
                continue
            cached = self._tokens.get(key)
            if cached is not None and now < cached.refresh_at():
                out[key] = cached
                continue
            try:
                answer = await client.create(
                    SERVICEACCOUNTS,
                    token_request(pod, key),
                    key.namespace,
                    subresource="token",
                    name=key.service_account,
                )
                out[key] = self._tokens[key] = parse_token(answer, key.expiration_seconds)
            except (errors.ApiError, httpx.HTTPError, ValueError) as err:
                if cached is not None:
                    log.warning("token refresh for %s failed, keeping the old one: %s", key, err)
                    out[key] = cached
                else:
                    out[key] = str(err)
        return out

    def next_refresh(self, pod: Obj) -> float | None:
        """Seconds until a token of ``pod`` is due for refresh (None: it has none cached);
        :data:`RETRY_SECONDS` when one is overdue (its refresh failed)."""
        due = [
            t.refresh_at()
            for p in projections(pod)
            if (t := self._tokens.get(token_key(pod, p))) is not None
        ]
        if not due:
            return None
        left = min(due) - self.clock()
        return left if left > 0 else RETRY_SECONDS
