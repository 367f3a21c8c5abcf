"""No receiver: the handheld rides its own trips (``qc rider`` without ``--gps``).

Parked where the server last saw the rider; once a trip is accepted it rides to the store,
waits there until the bags are on board, then rides each open drop in turn, at a city
two-wheeler's speed in the server's time (a demo's world runs faster than the wall, and so
does this rider). A fix every ``step_s`` real seconds, moving or not: the server keeps
hearing the rider, so a parked rider is never judged to have lost the signal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from rider_app.gps.base import Clock, Sleep
from rider_app.gps.fix import Fix, utc_now
from rider_app.gps.sim import DEFAULT_SPEED_MPS
from shared.geo import LatLng, bearing_deg, destination, haversine_m

Where = Callable[[], LatLng | None]


class RideAlong:
    """``start``: where the rider is before the first fix (the server's last position);
    ``goal``: where the trip wants the rider now (None: stay); ``speed_factor``: server
    seconds per real second."""

    def __init__(
        self,
        start: Where,
        goal: Where,
        *,
        speed_factor: Callable[[], float] = lambda: 1.0,
        speed_mps: float = DEFAULT_SPEED_MPS,
        step_s: float = 1.0,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._start = start
        self._goal = goal
        self._speed_factor = speed_factor
        self.speed_mps = speed_mps
        self.step_s = step_s
        self._clock = clock
        self._sleep = sleep
        self.here: LatLng | None = None
        self._closed = False

    def step(self) -> Fix | None:
        """Move one step toward the goal (or stay) and report where the rider is."""
        if self.here is None:
            self.here = self._start()
            if self.here is None:
                return None
        goal = self._goal()
        heading: float | None = None
        moving = 0.0
        if goal is not None:
            left = haversine_m(self.here, goal)
            reach = self.speed_mps * self.step_s * max(self._speed_factor(), 0.0)
            if left > 0:
                heading = bearing_deg(self.here, goal)
                self.here = goal if left <= reach else destination(self.here, heading, reach)
                moving = self.speed_mps
        return Fix(
            self.here.lat,
            self.here.lng,
            self._clock(),
            moving,
            heading,
            5.0,
            source="ride-along",
        )

    async def fixes(self) -> AsyncIterator[Fix]:
        while not self._closed:
            fix = self.step()
            if fix is not None:
                yield fix
            await self._sleep(self.step_s)

    async def close(self) -> None:
        self._closed = True
