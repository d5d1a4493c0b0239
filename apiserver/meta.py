"""Object-metadata helpers shared by the registry and strategies."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


_last_stamp: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """The current time as Kubernetes writes timestamps (seconds precision, ``Z``); formatted
    once per second, since strftime showed up in the write path's profile."""
    global _last_stamp
    second = int(time.time())
    if _last_stamp[0] != second:
        stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _last_stamp = (second, stamp)
    return _last_stamp[1]


def random_suffix(n: int = 5) -> str:
    """The random tail ``generateName`` gets (Kubernetes' alphabet avoids vowels and lookalikes)."""
    return "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(n))


def spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything but metadata and status: what ``generation`` tracks."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = obj["metadata"] = {}
    return m
