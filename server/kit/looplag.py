"""How late the process's event loop runs a timer: ``qc_event_loop_lag_seconds``.

A request's time is its own work plus the turns of the others it waits behind. A process
whose loop runs a long callback (a big batch decoded, a socket fan-out, a collection)
makes every request on it wait that long, which no route's own latency shows; a process
whose requests are slow while its loop is prompt waits on something else (Redis,
PostgreSQL, a pool). ``measure_lag`` asks for a wake-up every ``EVERY_S`` and records how
late each came, for the life of the app (its lifespan runs it).
"""

from __future__ import annotations

import asyncio

from prometheus_client import Histogram

# 20 wake-ups a second: ~1-3 ms of a process's CPU a second (a wake-up costs its loop up to
# ~140 µs on the 2-core box under a test run; 7 ms a second at 50 wake-ups),
# and a sample of the wait a request arriving at any moment would have
EVERY_S = 0.05

LAG_METRIC = "qc_event_loop_lag_seconds"  # its name, as the benches read it off /metrics
LAG = Histogram(
    LAG_METRIC,
    "How late a timer on this process's event loop ran (the longest turns others wait behind)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


async def measure_lag(every_s: float = EVERY_S) -> None:
    """Record the loop's lag into ``LAG`` until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + every_s
        await asyncio.sleep(every_s)
        LAG.observe(max(0.0, loop.time() - due))
