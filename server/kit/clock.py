"""The one clock every time-dependent piece reads (TTLs, SLA timers, sweepers, ETAs).

Simulated time runs ``speed`` times faster than real time from ``anchor`` on, plus an
``offset`` that tests step forward. Every API replica and the demo's simulation build
the clock from the same settings, so they agree on "now" without talking to each other.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime


class Clock:
    def __init__(self, *, speed: float = 1.0, anchor: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self.anchor = time.time() if anchor is None else anchor
        self.offset_s = 0.0

    def timestamp(self) -> float:
        """Simulated Unix time in seconds."""
        real = time.time()
        return self.anchor + (real - self.anchor) * self.speed + self.offset_s

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), tz=UTC)

    def advance(self, seconds: float) -> None:
        """Move simulated time forward (tests, replay)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self.offset_s += seconds

    def real_seconds(self, sim_seconds: float) -> float:
        """How long, in wall-clock seconds, ``sim_seconds`` of simulated time take."""
        return sim_seconds / self.speed

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(sim_seconds))


class ManualClock(Clock):
    """Simulated time that moves only when told (the deterministic simulation, ``qc
    simulate``): ``set`` jumps to an event's time; the wall clock is never read."""

    def __init__(self, start: float) -> None:
        super().__init__(speed=1.0, anchor=start)
        self._now = start

    def timestamp(self) -> float:
        return self._now

    def set(self, timestamp: float) -> None:
        if timestamp < self._now:
            raise ValueError("time only moves forward")
        self._now = timestamp

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    async def sleep(self, sim_seconds: float) -> None:
        raise RuntimeError("a manual clock is moved by its owner, never slept on")
