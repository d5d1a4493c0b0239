"""Object-metadata helpers shared by the registry and strategies."""

from __future__ import annotations

import os
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


def new_uid() -> str:
    """A random (version 4) UUID as text, like ``str(uuid.uuid4())`` without building a UUID
    object: the version nibble is 4 and the variant bits are ``10``."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


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
