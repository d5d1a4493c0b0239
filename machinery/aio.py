"""Small asyncio helpers for long-running loops.

Python 3.11's ``asyncio.wait_for`` returns the inner result when the awaiting task is
cancelled at the moment the inner awaitable completes, so the cancellation is lost and a
loop that should stop keeps running (fixed in 3.12). ``asyncio.timeout`` does not have
that flaw; loops that wait on an event with a deadline use :func:`wait_event`.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it was set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
