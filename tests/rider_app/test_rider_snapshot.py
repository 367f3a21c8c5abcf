"""A snapshot of the assignment screen (an offer with two drops) with fixed data and a fixed
clock, so the offer and SLA countdowns, distances and ETAs read the same on every run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from rider_app.app import RiderApp
from rider_app.screens.trip import TripScreen
from tests.helpers import SteppedClock, wait_for
from tests.rider_app.rider_fakes import FakeRiderApi, fixed_clock, offered_trip

SIZE = (100, 30)


def test_assignment_snapshot(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    api = FakeRiderApi(on_duty=True)
    api.trip = offered_trip()
    app = RiderApp(
        client=api,
        clock=fixed_clock,
        monotonic=SteppedClock(),  # no real time passes since the payload: a fixed countdown
        buffer_dir=tmp_path,
        socket=False,
        trip_poll_s=3600,
        push_interval_s=3600,
    )

    async def offered(pilot: Pilot[Any]) -> None:
        def ready() -> bool:
            screen = app.screen
            return (
                isinstance(screen, TripScreen)
                and screen.trip is not None
                and app.rider is not None
                and "away" in str(screen.query_one("#store").render())
            )

        await wait_for(pilot, ready, what="the offer with distances")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=offered)
