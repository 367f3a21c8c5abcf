"""The handheld without a receiver rides its own trip: parked where the server last saw the
rider, toward the goal at a two-wheeler's speed times the server's clock speed, a fix every
step whether moving or not."""

from __future__ import annotations

import pytest

from rider_app.gps.ride import RideAlong
from rider_app.gps.sim import DEFAULT_SPEED_MPS
from shared.geo import LatLng, destination, haversine_m
from tests.rider_app.rider_fakes import NOW, fixed_clock

HOME = LatLng(12.9352, 77.6245)


def test_parked_until_a_goal_then_rides_at_the_servers_speed() -> None:
    start: list[LatLng | None] = [None]
    goal: list[LatLng | None] = [None]
    speed = [10.0]
    ride = RideAlong(
        lambda: start[0], lambda: goal[0], speed_factor=lambda: speed[0], clock=fixed_clock
    )
    assert ride.step() is None  # no position known yet: nothing to report
    start[0] = HOME
    parked = ride.step()
    assert parked is not None and parked.position == HOME and parked.at == NOW
    assert ride.step() == parked  # parked, still reported: the server keeps hearing it

    goal[0] = destination(HOME, 90, 1000)
    moved = ride.step()
    assert moved is not None and moved.heading_deg == pytest.approx(90, abs=0.1)
    # one second at 10x is ten seconds of riding
    assert haversine_m(HOME, moved.position) == pytest.approx(10 * DEFAULT_SPEED_MPS, rel=1e-3)
    assert moved.speed_mps == DEFAULT_SPEED_MPS
    for _ in range(20):
        last = ride.step()
    assert last is not None and last.position == goal[0]  # arrives, does not overshoot
    assert last.speed_mps == 0.0
    arrived = last.position
    goal[0] = None  # the trip is over: parked where it ended
    after = ride.step()
    assert after is not None and after.position == arrived and after.speed_mps == 0.0


async def test_fixes_stream_until_closed() -> None:
    steps = 0
    ride = RideAlong(lambda: HOME, lambda: None, clock=fixed_clock)

    async def sleep(_s: float) -> None:
        nonlocal steps
        steps += 1
        if steps == 3:
            await ride.close()

    ride._sleep = sleep  # a test seam: three steps, then the app closes the source
    seen = [fix async for fix in ride.fixes()]
    assert len(seen) == 3 and {f.source for f in seen} == {"ride-along"}
