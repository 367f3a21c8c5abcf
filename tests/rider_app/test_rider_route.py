"""The route view (v on the trip): the stops still to ride to in order, each leg's
distance, heading and riding time, on a plain map; redrawn from what the server pushes,
never by asking it on a timer (issue 22)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from rider_app.messages import ServerPushed
from rider_app.route import heading, stops_in_order
from rider_app.screens.route import RouteScreen
from rider_app.screens.trip import TripScreen
from rider_app.widgets.route_map import RouteMap
from shared.geo import LatLng
from tests.helpers import wait_for, wait_for_screen
from tests.rider_app.rider_fakes import HERE, KOR, offered_trip, open_from_trip, trip_api
from tests.rider_app.test_rider_snapshot import SIZE, rider_app


def _plain(renderable: object) -> str:
    console = Console(width=100, record=True)
    console.print(renderable)
    return console.export_text()


def test_the_stops_in_riding_order_with_legs_and_headings() -> None:
    trip = offered_trip().model_copy(update={"status": "ACCEPTED"})
    stops = stops_in_order(trip, LatLng(*HERE))
    assert [s.mark for s in stops] == ["S", "1", "2"]
    assert stops[0].heading == "south-west"  # HERE is north-east of the store
    assert stops[0].leg.distance_m is not None and 400 < stops[0].leg.distance_m < 600
    assert stops[1].heading == heading(LatLng(*KOR), LatLng(stops[1].at.lat, stops[1].at.lng))
    # bags on board, drop 1 done: only drop 2 is left, from drop 1
    done = trip.stops[0].model_copy(update={"status": "DELIVERED"})
    out = trip.model_copy(update={"status": "OUT", "stops": [done, trip.stops[1]]})
    left = stops_in_order(out, LatLng(*HERE))
    assert [s.mark for s in left] == ["2"]
    assert left[0].heading == heading(LatLng(*HERE), left[0].at)  # from the rider


async def test_v_shows_the_route_and_a_pushed_change_redraws_it(tmp_path: Path) -> None:
    api = trip_api("ACCEPTED")
    app = rider_app(api, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_from_trip(pilot, app, "v", RouteScreen)
        screen = app.screen
        title = screen.query_one("#route-title", Static)
        assert "2 drops to go" in str(title.content)
        turns = _plain(screen.query_one("#turns", Static).content)
        lines = [line.split() for line in turns.splitlines() if line.strip()]
        assert [line[0] for line in lines] == ["S", "1", "2"]
        assert "south-west" in lines[0] and "store" in turns and "4th Cross" in turns
        drawn = _plain(screen.query_one(RouteMap).render())
        assert all(mark in drawn for mark in ("●", "S", "1", "2"))
        asked = len(api.called("my_trip"))
        # the server moves on (bags picked up, drop 1 delivered) and pushes it
        trip = api.trip
        assert trip is not None
        done = trip.stops[0].model_copy(update={"status": "DELIVERED"})
        api.trip = trip.model_copy(update={"status": "OUT", "stops": [done, trip.stops[1]]})
        app.post_message(ServerPushed({"type": "delivery.stop_delivered"}))
        await wait_for(pilot, lambda: "1 drop to go" in str(title.content), what="redrawn")
        turns = _plain(screen.query_one("#turns", Static).content)
        assert [line.split()[0] for line in turns.splitlines() if line.strip()] == ["2"]
        assert len(api.called("my_trip")) == asked + 1  # one, on the push
        await pilot.press("escape")
        await wait_for_screen(pilot, TripScreen, what="back")


def test_route_snapshot(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    """On the way to the store: the rider, the store and both drops."""
    app = rider_app(trip_api("ACCEPTED"), tmp_path)

    async def shown(pilot: Pilot[Any]) -> None:
        await open_from_trip(pilot, app, "v", RouteScreen)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)
