"""A simulated rider: steady speed along great-circle legs between waypoints, in real time.

For demos and development without a receiver. The walk itself (``walk_route``) is pure; the
source only paces it with an injectable clock and sleep.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from itertools import pairwise

from rider_app.gps.base import Clock, Sleep
from rider_app.gps.fix import Fix, utc_now
from shared.geo import LatLng, bearing_deg, haversine_m, interpolate

DEFAULT_SPEED_MPS = 6.0  # about 22 km/h, a scooter's average in city traffic


@dataclass(frozen=True, slots=True)
class RoutePoint:
    position: LatLng
    heading_deg: float | None  # None only for a route that never moves
    distance_m: float  # along the route from its start


def walk_route(waypoints: Sequence[LatLng], step_m: float) -> list[RoutePoint]:
    """Points every ``step_m`` along the route; the last one is exactly the final waypoint."""
    if not waypoints:
        raise ValueError("a route needs at least one point")
    if not (math.isfinite(step_m) and step_m > 0):
        raise ValueError(f"step must be a positive distance, got {step_m!r}")
    legs = [(a, b, d) for a, b in pairwise(waypoints) if (d := haversine_m(a, b)) > 0]
    if not legs:
        return [RoutePoint(waypoints[0], None, 0.0)]
    points = [RoutePoint(legs[0][0], bearing_deg(legs[0][0], legs[0][1]), 0.0)]
    leg_start = 0.0
    k = 1  # next point is at k * step_m; multiplying avoids drift from repeated addition
    for a, b, length in legs:
        while k * step_m < leg_start + length:
            here = interpolate(a, b, (k * step_m - leg_start) / length)
            points.append(RoutePoint(here, bearing_deg(here, b), k * step_m))
            k += 1
        leg_start += length
    last = points[-1]
    if last.distance_m < leg_start:
        arriving = bearing_deg(last.position, waypoints[-1])
        points.append(RoutePoint(waypoints[-1], arriving, leg_start))
    return points


class SimSource:
    """Reports a fix every ``step_s`` while moving at ``speed_mps``; ends at the destination."""

    def __init__(
        self,
        waypoints: Sequence[LatLng],
        *,
        speed_mps: float = DEFAULT_SPEED_MPS,
        step_s: float = 1.0,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not (math.isfinite(speed_mps) and speed_mps > 0):
            raise ValueError(f"speed must be positive m/s, got {speed_mps!r}")
        if not (math.isfinite(step_s) and step_s > 0):
            raise ValueError(f"step must be positive seconds, got {step_s!r}")
        self.route = walk_route(waypoints, speed_mps * step_s)
        self.speed_mps = speed_mps
        self.step_s = step_s
        self._clock = clock
        self._sleep = sleep
        self._closed = False

    async def fixes(self) -> AsyncIterator[Fix]:
        previous: RoutePoint | None = None
        for point in self.route:
            if previous is not None:
                await self._sleep((point.distance_m - previous.distance_m) / self.speed_mps)
            if self._closed:
                return
            arrived = point is self.route[-1]
            yield Fix(
                point.position.lat,
                point.position.lng,
                self._clock(),
                speed_mps=0.0 if arrived else self.speed_mps,
                heading_deg=point.heading_deg,
                source="sim",
            )
            previous = point

    async def close(self) -> None:
        self._closed = True
