"""What every GPS source offers, and the paced playback of recorded track files."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from rider_app.gps.fix import Fix, utc_now

Clock = Callable[[], datetime]  # UTC-aware wall clock, for stamping fixes
Sleep = Callable[[float], Awaitable[None]]


class GpsUnavailableError(RuntimeError):
    """The source cannot run here at all (e.g. an optional package is missing)."""


@runtime_checkable
class GpsSource(Protocol):
    """A stream of fixes. ``fixes`` is an async generator: iterate it once; it ends when the
    source is exhausted (a file played to its end) and runs until closed for live ones.
    ``close`` releases the device or socket and makes a running ``fixes`` finish; calling it
    again is harmless."""

    def fixes(self) -> AsyncIterator[Fix]: ...

    async def close(self) -> None: ...


class TrackPlayback:
    """Plays a recorded track file with its recorded spacing divided by ``speed``.

    With ``restamp`` each fix gets the time it is played at, so a replayed track looks live to
    the server instead of landing as history from the day it was recorded. Subclasses parse.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float = 1.0,
        restamp: bool = True,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"playback speed must be a positive number, got {speed!r}")
        self.path = Path(path)
        self.speed = speed
        self.restamp = restamp
        self._clock = clock
        self._sleep = sleep
        self._closed = False

    def parse(self, data: bytes) -> list[Fix]:
        raise NotImplementedError

    async def fixes(self) -> AsyncIterator[Fix]:
        recorded = self.parse(await asyncio.to_thread(self.path.read_bytes))
        previous: datetime | None = None
        for fix in recorded:
            if previous is not None:
                gap = (fix.at - previous).total_seconds() / self.speed
                if gap > 0:  # a backwards timestamp is played at once rather than dropped
                    await self._sleep(gap)
            if self._closed:
                return
            previous = fix.at
            yield replace(fix, at=self._clock()) if self.restamp else fix

    async def close(self) -> None:
        # The file is read whole up front, so there is nothing to release: just stop playing.
        self._closed = True
