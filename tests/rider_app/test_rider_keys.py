"""Keyboard paths the live flow does not take: a bag label typed by hand (and a wrong one
refused), a drop reported failed with a reason, which completes the trip, the shift key
labelled with what it does, the status following the server, and quit shown everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from textual.pilot import Pilot
from textual.widgets import Digits, Input, OptionList, Static

from rider_app.app import RiderApp
from rider_app.gps.fix import Fix
from rider_app.screens.dialogs import CallScreen, FailReasonScreen, TypeLabelScreen
from rider_app.screens.drop import DropScreen
from rider_app.screens.login import LoginScreen
from rider_app.screens.pickup import PickupScreen
from rider_app.screens.shift import ShiftScreen
from rider_app.screens.trip import TripScreen
from tests.helpers import SteppedClock, footer_keys, scanner_types, wait_for, wait_for_screen
from tests.rider_app.rider_fakes import (
    HERE,
    NOW,
    FakeRiderApi,
    QueueSource,
    fixed_clock,
    offered_trip,
)


def fake_app(api: FakeRiderApi, tmp_path: Path, keys: SteppedClock, **options: Any) -> RiderApp:
    defaults: dict[str, Any] = {"trip_poll_s": 3600, "push_interval_s": 3600}
    return RiderApp(
        client=api,
        clock=fixed_clock,
        monotonic=keys,
        buffer_dir=tmp_path,
        socket=False,
        **(defaults | options),
    )


async def person_presses(pilot: Pilot[Any], keys: SteppedClock, key: str) -> None:
    """A person: the key stands alone in time, so the wedge detector hands it back (on its
    next poll) as ordinary typing."""
    keys.advance(1.0)
    await pilot.press(key)
    keys.advance(1.0)


async def test_typed_bag_labels_a_wrong_one_refused(tmp_path: Path) -> None:
    api, keys = FakeRiderApi(), SteppedClock()
    trip = offered_trip().model_copy(update={"status": "AT_STORE"})
    api.trip = trip
    first, second = (str(s.order_id) for s in trip.stops)
    api.bag_labels = {first: "QC-KOR-AAA111", second: "QC-KOR-BBB222"}
    app = fake_app(api, tmp_path, keys)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, TripScreen, what="trip")
        await pilot.press("enter")  # at the store: Enter scans the bags
        await wait_for_screen(pilot, PickupScreen, what="pickup")
        pickup = cast(PickupScreen, app.screen)

        # one label typed by hand (lower case is fine), one read by the scanner
        await person_presses(pilot, keys, "m")
        await wait_for_screen(pilot, TypeLabelScreen, what="dialog")
        # typed once the field is there (keys from before it was shown are not taken)
        await wait_for(pilot, lambda: app.screen.query_one(Input).has_focus, what="field")
        await pilot.press(*"qc-kor-aaa111", "enter")
        await wait_for(pilot, lambda: pickup.labels == ["QC-KOR-AAA111"], what="typed label")
        await scanner_types(pilot, keys, "QC-KOR-XXX999")  # not this trip's bag
        await wait_for(
            pilot,
            lambda: "WRONG BAG" in str(pickup.query_one("#pickup-feedback", Static).content),
            what="wrong bag refused",
        )
        feedback = str(pickup.query_one("#pickup-feedback", Static).content)
        assert "WRONG BAG" in feedback and second[:8] in feedback
        assert pickup.labels == []  # scan again from the start
        assert ("pick_up", ["QC-KOR-AAA111", "QC-KOR-XXX999"]) in api.calls

        for label in ("QC-KOR-BBB222", "QC-KOR-AAA111"):
            await scanner_types(pilot, keys, label)
        await wait_for_screen(pilot, TripScreen, what="picked up")
        assert app.trip is not None and app.trip.status == "PICKED_UP"


async def test_a_failed_drop_with_its_reason_completes_the_trip(tmp_path: Path) -> None:
    api, keys = FakeRiderApi(), SteppedClock()
    trip = offered_trip().model_copy(update={"status": "OUT"})
    first, second = trip.stops
    api.trip = trip.model_copy(
        update={"stops": [first.model_copy(update={"status": "DELIVERED"}), second]}
    )
    app = fake_app(api, tmp_path, keys)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, TripScreen, what="trip")
        await pilot.press("o")
        await wait_for_screen(pilot, DropScreen, what="drop")
        drop = cast(DropScreen, app.screen)
        assert drop.order_id == str(second.order_id)  # the next open drop in route order
        assert drop.query_one(Input).has_focus
        await pilot.press("ctrl+f")
        await wait_for_screen(pilot, FailReasonScreen, what="reasons")
        assert app.screen.query_one(OptionList).option_count >= 3
        await pilot.press("down", "enter")
        await wait_for_screen(pilot, ShiftScreen, what="trip closed")
        assert ("fail_drop", (str(second.order_id), "customer not at the address")) in api.calls
        assert app.trip is None


async def test_the_shift_key_is_labelled_with_what_it_does(tmp_path: Path) -> None:
    api, keys = FakeRiderApi(on_duty=True), SteppedClock()
    api.signal_lost = True  # dispatch set the rider OFFLINE: no fix for 2 minutes
    app = fake_app(api, tmp_path, keys)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.rider_status == "OFFLINE", what="rider loaded")
        screen = app.screen
        duty = str(screen.query_one("#duty", Static).content)
        status = str(screen.query_one("#rider-status", Static).content)
        hint = str(screen.query_one("#shift-hint", Static).content)
        assert duty == "● ON DUTY · no GPS signal at dispatch"
        assert "OFFLINE" not in status and "no offers" in status
        assert "S: end the shift" in hint and "restart" not in hint
        assert footer_keys(app)["s"] == "End shift"
        await pilot.press("s")  # ends the shift, as it says
        await wait_for(pilot, lambda: not app.on_duty, what="off duty")
        assert api.called("set_shift") == [False]
        assert footer_keys(app)["s"] == "Start shift"
        assert "S: start your shift" in str(screen.query_one("#shift-hint", Static).content)
        await pilot.press("s")
        await wait_for(pilot, lambda: app.on_duty, what="on duty")
        assert app.rider_status == "IDLE"
        assert footer_keys(app)["s"] == "End shift"


async def test_a_rider_set_offline_sees_the_server_take_them_back_without_a_key(
    tmp_path: Path,
) -> None:
    api, keys = FakeRiderApi(on_duty=True), SteppedClock()
    api.signal_lost = True
    gps = QueueSource()
    app = fake_app(api, tmp_path, keys, gps=gps, push_interval_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.rider_status == "OFFLINE", what="rider loaded")
        gps.put(Fix(lat=HERE[0], lng=HERE[1], at=NOW))  # the signal is back
        # the server takes the fix and makes the rider IDLE; the app asks by itself
        await wait_for(pilot, lambda: app.rider_status == "IDLE", what="IDLE without r")
        assert api.stored and not api.signal_lost
        hint = str(app.screen.query_one("#shift-hint", Static).content)
        assert "Waiting for an offer" in hint


async def test_every_screen_says_how_to_quit(tmp_path: Path) -> None:
    api, keys = FakeRiderApi(logged_in=False), SteppedClock()
    app = fake_app(api, tmp_path, keys)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, LoginScreen, what="login")
        assert footer_keys(app)["ctrl+q"] == "Quit"
        await pilot.press(*"rider.001", "enter", *"4321", "enter")
        await wait_for_screen(pilot, ShiftScreen, what="shift")
        assert footer_keys(app)["ctrl+q"] == "Quit"
        api.trip = offered_trip()
        app.poll_trip()
        await wait_for_screen(pilot, TripScreen, what="trip")
        assert footer_keys(app)["ctrl+q"] == "Quit"


async def test_the_drop_shows_the_customers_notes_and_c_shows_the_number(tmp_path: Path) -> None:
    api, keys = FakeRiderApi(), SteppedClock()
    api.trip = offered_trip().model_copy(update={"status": "OUT"})
    app = fake_app(api, tmp_path, keys)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, TripScreen, what="trip")
        await pilot.press("o")
        await wait_for_screen(pilot, DropScreen, what="drop")
        notes = str(app.screen.query_one("#drop-notes", Static).render())
        assert "3rd floor, ring twice" in notes
        assert "+919876543201" not in notes and "3201" in notes  # masked until asked
        await pilot.press("c")  # the OTP field has the focus: c still calls
        await wait_for_screen(pilot, CallScreen, what="call")
        assert app.screen.query_one(Digits).value == "+919876543201"
        await pilot.press("escape")
        await wait_for_screen(pilot, DropScreen, what="back")
        assert app.screen.query_one(Input).value == ""
