"""asyncio helpers the apps, the server and the simulation share.

Why not ``asyncio.wait_for``: on Python 3.11, when the awaited thing completes in the same
loop turn as a cancellation of the caller, ``wait_for`` returns normally and the
cancellation is lost. A loop around it ("wait for a wake-up or a timeout, repeat") then
never stops, and the shutdown that cancelled it hangs. ``asyncio.timeout`` counts
cancellations and does not lose one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def wait_event(event: asyncio.Event, timeout_s: float | None) -> bool:
    """Wait until ``event`` is set, at most ``timeout_s`` seconds (None: no limit); True
    if it is set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], *, grace_s: float = 30.0
) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait for them to end; returns those still running after
    ``grace_s`` seconds. A task that shrugs a cancellation off (library code that swallows
    one) gets another every second rather than holding the caller forever."""
    loop = asyncio.get_running_loop()
    pending = {t for t in tasks if not t.done()}
    deadline = loop.time() + grace_s
    while pending:
        left = deadline - loop.time()
        if left <= 0:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(1.0, left))
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: an error on the way out is not worth a warning
    return pending
