"""Snapshots of every rider screen (login, shift, the assignment: an offer with two drops,
bag pickup, the drop with its OTP) with fixed data and a fixed clock, so the offer and SLA
countdowns, distances and ETAs read the same on every run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from rider_app.app import RiderApp
from rider_app.screens.drop import DropScreen
from rider_app.screens.login import LoginScreen
from rider_app.screens.pickup import PickupScreen
from rider_app.screens.shift import ShiftScreen
from rider_app.screens.trip import TripScreen
from tests.helpers import SteppedClock, wait_for, wait_for_screen
from tests.rider_app.rider_fakes import (
    FakeRiderApi,
    fixed_clock,
    offered_trip,
    open_from_trip,
    trip_api,
)

SIZE = (100, 30)


def rider_app(api: FakeRiderApi, tmp_path: Path) -> RiderApp:
    return RiderApp(
        client=api,
        clock=fixed_clock,
        monotonic=SteppedClock(),  # no real time passes since the payload: fixed countdowns
        battery=lambda: 72.0,  # not this machine's
        buffer_dir=tmp_path,
        socket=False,
        trip_poll_s=3600,
        push_interval_s=3600,
    )


def test_login_snapshot(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    app = rider_app(FakeRiderApi(logged_in=False), tmp_path)

    async def shown(pilot: Pilot[Any]) -> None:
        await wait_for_screen(pilot, LoginScreen, what="login")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)


def test_shift_snapshot(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    """On duty, waiting for an offer."""
    app = rider_app(FakeRiderApi(on_duty=True), tmp_path)

    async def waiting(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: app.rider_status == "IDLE", what="the rider loaded")
        await wait_for_screen(pilot, ShiftScreen, what="shift")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=waiting)


def test_pickup_snapshot(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    """At the store, the bags of both drops to scan."""
    app = rider_app(trip_api("AT_STORE"), tmp_path)

    async def scanning(pilot: Pilot[Any]) -> None:
        await open_from_trip(pilot, app, "enter", PickupScreen)  # at the store: Enter scans
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=scanning)


def test_drop_snapshot(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    """On the road: the first drop, asking for the customer's code."""
    app = rider_app(trip_api("OUT"), tmp_path)

    async def at_the_door(pilot: Pilot[Any]) -> None:
        await open_from_trip(pilot, app, "o", DropScreen)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=at_the_door)


def test_assignment_snapshot(snap_compare: Callable[..., bool], tmp_path: Path) -> None:
    api = FakeRiderApi(on_duty=True)
    api.trip = offered_trip()
    app = rider_app(api, tmp_path)

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
