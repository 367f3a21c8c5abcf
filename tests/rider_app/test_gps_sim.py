from __future__ import annotations

from itertools import pairwise

import pytest

from rider_app.gps.sim import SimSource, walk_route
from shared.geo import LatLng, bearing_deg, haversine_m
from tests.rider_app.gps_helpers import T0, FakeTime

STORE = LatLng(12.9352, 77.6245)  # Koramangala
CUSTOMER = LatLng(12.9784, 77.6408)  # Indiranagar, about 5.1 km away
VIA = LatLng(12.9600, 77.6200)


def test_walk_reaches_the_destination_with_even_spacing() -> None:
    points = walk_route([STORE, CUSTOMER], 6.0)
    total = haversine_m(STORE, CUSTOMER)
    assert points[0].position == STORE
    assert points[-1].position == CUSTOMER
    assert points[-1].distance_m == pytest.approx(total)
    assert len(points) == int(total // 6.0) + 2  # start, every 6 m, and the arrival
    gaps = [haversine_m(a.position, b.position) for a, b in pairwise(points)]
    assert gaps[:-1] == pytest.approx([6.0] * (len(gaps) - 1), rel=1e-6)
    assert 0 < gaps[-1] <= 6.0
    heading = bearing_deg(STORE, CUSTOMER)
    assert all(p.heading_deg == pytest.approx(heading, abs=0.05) for p in points)


def test_walk_follows_the_legs_through_waypoints() -> None:
    points = walk_route([STORE, VIA, CUSTOMER], 50.0)
    total = haversine_m(STORE, VIA) + haversine_m(VIA, CUSTOMER)
    assert points[-1].position == CUSTOMER
    assert points[-1].distance_m == pytest.approx(total)
    assert [p.distance_m for p in points[:-1]] == pytest.approx(
        [50.0 * i for i in range(len(points) - 1)]
    )
    # every point lies on one of the two legs: its distance from the corner matches the walk
    first_leg = haversine_m(STORE, VIA)
    for p in points:
        if p.distance_m <= first_leg:
            assert haversine_m(STORE, p.position) == pytest.approx(p.distance_m, abs=1e-3)
        else:
            assert haversine_m(VIA, p.position) == pytest.approx(p.distance_m - first_leg, abs=1e-3)
    headings = {round(p.heading_deg or 0) for p in points}
    assert round(bearing_deg(STORE, VIA)) in headings
    assert round(bearing_deg(VIA, CUSTOMER)) in headings


def test_walk_of_a_route_that_never_moves() -> None:
    (only,) = walk_route([STORE, STORE], 6.0)
    assert (only.position, only.heading_deg, only.distance_m) == (STORE, None, 0.0)


@pytest.mark.parametrize(("waypoints", "step"), [([], 6.0), ([STORE, CUSTOMER], 0.0)])
def test_walk_rejects_bad_input(waypoints: list[LatLng], step: float) -> None:
    with pytest.raises(ValueError):
        walk_route(waypoints, step)


async def test_source_reports_every_step_in_real_time_and_stops_on_arrival() -> None:
    time = FakeTime()
    source = SimSource(
        [STORE, CUSTOMER], speed_mps=6.0, step_s=5.0, clock=time.clock, sleep=time.sleep
    )
    fixes = [fix async for fix in source.fixes()]
    total = haversine_m(STORE, CUSTOMER)
    assert fixes[-1].position == CUSTOMER
    assert fixes[-1].speed_mps == 0.0
    assert {f.speed_mps for f in fixes[:-1]} == {6.0}
    assert time.slept[:-1] == [5.0] * (len(fixes) - 2)
    assert sum(time.slept) == pytest.approx(total / 6.0)
    assert [(f.at - T0).total_seconds() for f in fixes[:3]] == [0.0, 5.0, 10.0]
    assert haversine_m(fixes[0].position, fixes[1].position) == pytest.approx(30.0, rel=1e-6)
    assert {f.source for f in fixes} == {"sim"}


async def test_close_stops_the_simulation() -> None:
    time = FakeTime()
    source = SimSource([STORE, CUSTOMER], clock=time.clock, sleep=time.sleep)
    got = []
    async for fix in source.fixes():
        got.append(fix)
        if len(got) == 3:
            await source.close()
    assert len(got) == 3


@pytest.mark.parametrize(("speed", "step"), [(0.0, 1.0), (6.0, -1.0), (float("nan"), 1.0)])
def test_source_rejects_non_positive_speed_or_step(speed: float, step: float) -> None:
    with pytest.raises(ValueError):
        SimSource([STORE, CUSTOMER], speed_mps=speed, step_s=step)
