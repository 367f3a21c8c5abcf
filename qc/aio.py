"""The event loop qc's own processes run on (the loops' process, the simulation, the
benchmarks' load processes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (it comes with uvicorn[standard]), as granian gives the
    API's workers: every query and Redis call waits on the loop, and uvloop's turn is
    several times cheaper than asyncio's selector loop. None: asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
