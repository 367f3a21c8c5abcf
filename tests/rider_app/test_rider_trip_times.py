"""The trip screen judges the server's deadlines by the server's clock (which may run
faster than real time), never by the handheld's: the offer countdown and the ETAs come from
the payload's server_now, moved on by the real time since it arrived x clock_speed. Before
pickup the trip can be given back, with a reason and a confirmation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import cast

from textual.coordinate import Coordinate
from textual.widgets import DataTable, OptionList, Static

from qc_tui.dialogs import ConfirmScreen
from rider_app.app import RiderApp
from rider_app.screens.dialogs import ReleaseReasonScreen
from rider_app.screens.shift import ShiftScreen
from rider_app.screens.trip import TripScreen
from tests.helpers import SteppedClock, wait_for, wait_for_screen
from tests.rider_app.rider_fakes import NOW, FakeRiderApi, fixed_clock, offered_trip, trip_api


def fake_app(api: FakeRiderApi, tmp_path: Path, keys: SteppedClock) -> RiderApp:
    return RiderApp(
        client=api,
        clock=fixed_clock,  # the handheld's wall clock never moves: only the server's does
        monotonic=keys,
        buffer_dir=tmp_path,
        socket=False,
        trip_poll_s=3600,
        push_interval_s=3600,
    )


def next_step(app: RiderApp) -> str:
    return str(app.screen.query_one("#next-step", Static).content)


def eta_cell(app: RiderApp, row: int) -> str:
    return str(app.screen.query_one(DataTable).get_cell_at(Coordinate(row, 4)))


async def test_offer_countdown_and_etas_follow_a_sped_up_server_clock(tmp_path: Path) -> None:
    api, keys = FakeRiderApi(), SteppedClock()
    # a 10x demo clock: the offer lapses 60 server seconds after the payload was built
    api.trip = offered_trip().model_copy(
        update={"clock_speed": 10.0, "offer_expires_at": NOW + timedelta(seconds=60)}
    )
    app = fake_app(api, tmp_path, keys)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, TripScreen, what="trip")
        await wait_for(pilot, lambda: "Answer within 01:00" in next_step(app), what="countdown")
        assert [eta_cell(app, 0), eta_cell(app, 1)] == ["7 min", "11 min"]

        keys.advance(3)  # 3 real seconds are 30 server seconds
        await wait_for(
            pilot, lambda: "Answer within 00:30" in next_step(app), what="countdown at 10x"
        )
        keys.advance(9)  # 12 real seconds in all: 2 server minutes past the payload
        await wait_for(pilot, lambda: eta_cell(app, 0) == "5 min", what="ETA at 10x")
        assert eta_cell(app, 1) == "9 min"
        assert "Answer within 00:00" in next_step(app)  # lapsed: never negative

        # a fresh payload resets the base: the server's clock, not the elapsed time, counts
        api.trip = api.trip.model_copy(
            update={
                "server_now": NOW + timedelta(seconds=20),
                "offer_expires_at": NOW + timedelta(seconds=80),
            }
        )
        app.poll_trip()
        await wait_for(pilot, lambda: "Answer within 01:00" in next_step(app), what="new base")


async def test_an_older_server_without_server_times_shows_no_offer_countdown(
    tmp_path: Path,
) -> None:
    api, keys = FakeRiderApi(), SteppedClock()
    api.trip = offered_trip().model_copy(update={"server_now": None, "offer_expires_at": None})
    app = fake_app(api, tmp_path, keys)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, TripScreen, what="trip")
        await wait_for(pilot, lambda: "NEW OFFER" in next_step(app), what="offer")
        assert "Answer within" not in next_step(app)
        assert app.ctx.clock.now() == NOW  # deadlines fall back to the handheld's clock


async def test_a_trip_stuck_at_the_store_is_given_back_with_a_reason(tmp_path: Path) -> None:
    api, keys = trip_api("AT_STORE"), SteppedClock()
    app = fake_app(api, tmp_path, keys)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, TripScreen, what="trip")
        assert "G: give back" in next_step(app)

        # backing out of the confirmation gives nothing back
        await pilot.press("g")
        await wait_for_screen(pilot, ReleaseReasonScreen, what="why")
        assert app.screen.query_one(OptionList).option_count >= 2
        await pilot.press("enter")  # "bags not ready"
        await wait_for_screen(pilot, ConfirmScreen, what="confirm")
        await pilot.press("n")
        await wait_for_screen(pilot, TripScreen, what="back")
        assert not api.called("release_trip")

        await pilot.press("g")
        await wait_for_screen(pilot, ReleaseReasonScreen, what="why")
        await pilot.press("down", "enter")
        await wait_for_screen(pilot, ConfirmScreen, what="confirm")
        await pilot.press("y")
        await wait_for_screen(pilot, ShiftScreen, what="trip closed")
        assert api.called("release_trip") == ["vehicle problem"]
        assert app.trip is None


async def test_give_back_is_not_offered_once_the_bags_are_on_board(tmp_path: Path) -> None:
    api, keys = trip_api("PICKED_UP"), SteppedClock()
    app = fake_app(api, tmp_path, keys)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, TripScreen, what="trip")
        trip_screen = cast(TripScreen, app.screen)
        assert trip_screen.check_action("release", ()) is False
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, TripScreen)
        assert not api.called("release_trip")
