"""Kubernetes' WebSocket channel protocol (``v4.channel.k8s.io``, ``v5.channel.k8s.io``) used by
exec, attach and (one stream per port) port-forward: every binary frame starts with its channel
number; v5 adds a frame ``CLOSE, channel`` that half-closes a channel (the end of stdin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


async def received(ws: Any) -> AsyncIterator[bytes]:
    """The payload of every message an ASGI WebSocket (starlette's) receives, text frames
    encoded, until the client disconnects."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        yield data if data is not None else (message.get("text") or "").encode()
