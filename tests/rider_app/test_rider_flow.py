"""The rider app end to end against a live server: log in, start the shift, GPS fixes
reach the server, the offer arrives (pushed over the rider socket, or found by polling),
accept, at the store, bag-label scan, depart, a wrong OTP then the customer's OTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static
from textual.worker import WorkerCancelled, WorkerState

from qc_tui.dialogs import ConfirmScreen
from rider_app.app import RiderApp
from rider_app.gps import open_source
from rider_app.gps.fix import Fix, utc_now
from rider_app.screens.drop import DropScreen
from rider_app.screens.login import LoginScreen
from rider_app.screens.pickup import PickupScreen
from rider_app.screens.shift import ShiftScreen
from rider_app.screens.trip import TripScreen
from server.delivery import locations
from server.delivery.worker import dispatch_all
from server.events.relay import relay_once
from shared.geo import destination
from tests.helpers import SteppedClock, scanner_types, wait_for, wait_for_screen
from tests.picker_app.picker_live import order_as_customer
from tests.rider_app.rider_fakes import QueueSource
from tests.rider_app.rider_live import (
    KOR,
    RIDER_PIN,
    db_one,
    packed_order,
    rider_near_store,
)

SIZE = (100, 36)


def trip_status(app: RiderApp) -> str | None:
    return app.trip.status if app.trip is not None else None


def trip_shown(app: RiderApp) -> bool:
    return isinstance(app.screen, TripScreen) and app.screen.trip is not None


def fixes_acked(app: RiderApp) -> int:
    """Fixes the server acknowledged over the app's socket (none while it has no socket)."""
    return app.link.acked if app.link is not None else 0


async def log_in_and_start_shift(pilot: Pilot[Any], app: RiderApp) -> None:
    await wait_for_screen(pilot, LoginScreen, what="login screen")
    assert app.screen.query_one("#login", Input).value == app.ctx.login_hint
    await pilot.press(*RIDER_PIN, "enter")  # the login is prefilled: the PIN has the focus
    await wait_for_screen(pilot, ShiftScreen, what="shift screen")
    await wait_for(pilot, lambda: app.rider is not None, what="rider loaded")
    assert not app.on_duty
    await pilot.press("s")
    await wait_for(pilot, lambda: app.on_duty, what="on duty")
    assert "ON DUTY" in str(app.screen.query_one("#duty", Static).content)


async def test_full_delivery_offer_pushed_over_the_socket(
    city, live_server, stack, tmp_path: Path
) -> None:
    order_id, bag = await packed_order(live_server.url, city.database_url)
    rider_login = rider_near_store(city.database_url)
    gps = QueueSource()
    keys = SteppedClock()
    app = RiderApp(
        server_url=live_server.url,
        login=rider_login,
        gps=gps,
        monotonic=keys,
        buffer_dir=tmp_path,
        push_interval_s=0.05,
        trip_poll_s=120,  # no poll in this test's lifetime but the first: the offer is pushed
        retry_delays=(0.05,),
    )
    async with app.run_test(size=SIZE) as pilot:
        await log_in_and_start_shift(pilot, app)
        await wait_for(pilot, lambda: app.socket_up, what="rider socket")

        # a fix 400 m east of the store goes out over the socket and is acknowledged
        near = destination(KOR, 90, 400)
        gps.put(Fix(near.lat, near.lng, utc_now(), 6.0, source="test"))
        assert app.link is not None
        await wait_for(pilot, lambda: fixes_acked(app) >= 1, what="fix acknowledged")
        rider_id = db_one(  # the server holds the last fix in Redis
            city.database_url,
            "SELECT r.rider_id FROM riders r JOIN users u ON u.id = r.rider_id WHERE u.login = %s",
            rider_login,
        )
        last = await locations.latest(stack.redis, city_id="BLR", rider_ids=[rider_id])
        assert (last[rider_id].position.lat, last[rider_id].position.lng) == pytest.approx(
            (near.lat, near.lng)
        )
        assert app.buffered_fixes == 0

        # dispatch offers the order to this rider; the relay pushes delivery.offered
        (trip,) = await dispatch_all(stack.sessions, stack.redis, live_server.clock)
        await relay_once(stack.engine, stack.redis)
        await wait_for(pilot, lambda: trip_shown(app), what="offer shown")
        assert any(e.get("type") == "delivery.offered" for e in app.server_events)
        screen = cast(TripScreen, app.screen)
        assert trip_status(app) == "OFFERED" and str(app.trip.trip_id) == str(trip.trip_id)  # type: ignore[union-attr]
        table = screen.query_one(DataTable)
        row = table.get_row(order_id)
        assert row[1] == order_id[:8] and row[2] == "4th Cross, 5th Block"
        store = str(screen.query_one("#store", Static).content)
        assert "BLR-KOR" in store and "400 m away" in store
        assert "NEW OFFER" in str(screen.query_one("#next-step", Static).content)

        await pilot.press("a")
        await wait_for(pilot, lambda: trip_status(app) == "ACCEPTED", what="accepted")
        await pilot.press("t")
        await wait_for(pilot, lambda: trip_status(app) == "AT_STORE", what="at the store")

        # the bag label, read by a (simulated) USB wedge scanner
        await pilot.press("p")
        await wait_for_screen(pilot, PickupScreen, what="pickup")
        await scanner_types(pilot, keys, bag)
        await wait_for(pilot, lambda: trip_status(app) == "PICKED_UP", what="picked up")
        await wait_for_screen(pilot, TripScreen, what="back to trip")
        assert (await order_as_customer(live_server.url, order_id))["status"] == "DISPATCHED"

        await pilot.press("d")
        await wait_for(pilot, lambda: trip_status(app) == "OUT", what="departed")
        await pilot.press("enter")
        await wait_for_screen(pilot, DropScreen, what="drop screen")
        drop = cast(DropScreen, app.screen)

        otp = (await order_as_customer(live_server.url, order_id))["delivery_otp"]
        assert otp and len(otp) == 4
        wrong = f"{(int(otp) + 1) % 10000:04d}"
        await pilot.press(*wrong, "enter")
        await wait_for(pilot, lambda: drop.tries_left is not None, what="wrong OTP refused")
        result = str(drop.query_one("#drop-result", Static).content)
        assert "WRONG OTP" in result and "2 tries left" in result
        assert drop.query_one(Input).value == ""

        await pilot.press(*otp, "enter")
        await wait_for_screen(pilot, ShiftScreen, what="trip done")
        assert app.trip is None
    order = await order_as_customer(live_server.url, order_id)
    assert order["status"] == "DELIVERED"
    assert db_one(
        city.database_url, "SELECT status FROM trips WHERE trip_id = %s", trip.trip_id
    ) == ("COMPLETED")


@pytest.mark.slow
async def test_a_trip_poll_once_the_app_began_to_close_calls_nothing(
    city, live_server, tmp_path: Path
) -> None:
    """Textual closes the screens, then the app's messages, then unmounts the app, which
    closes its client: a worker started in between (a timer's poll, a push's refresh) is
    cancelled before it calls the server (its call would fail on the closed client)."""
    app = RiderApp(
        server_url=live_server.url,
        login=rider_near_store(city.database_url),
        buffer_dir=tmp_path,
        trip_poll_s=0.05,
        socket=False,
    )
    async with app.run_test(size=SIZE) as pilot:
        await log_in_and_start_shift(pilot, app)
        await wait_for(pilot, lambda: app._poll_timer is not None, what="polling")
        app._screens_closing = True  # as Textual's shutdown begins (ClosingApp._close_all)
        poll = app.poll_trip()
        with pytest.raises(WorkerCancelled):
            await poll.wait()
        assert poll.state is WorkerState.CANCELLED


@pytest.mark.slow
async def test_offer_found_by_polling_with_a_simulated_gps_then_rejected(
    city, live_server, stack, tmp_path: Path
) -> None:
    await packed_order(live_server.url, city.database_url)
    rider_login = rider_near_store(city.database_url)
    # a parked rider at the store: the sim's one-point route gives one fix and ends
    gps = open_source(f"sim://?from={KOR.lat},{KOR.lng}&to={KOR.lat},{KOR.lng}")
    app = RiderApp(
        server_url=live_server.url,
        login=rider_login,
        gps=gps,
        buffer_dir=tmp_path,
        push_interval_s=0.05,
        trip_poll_s=0.1,
        retry_delays=(0.05,),
        socket=False,  # no socket: the fix goes through the offline buffer and the batch API
    )
    async with app.run_test(size=SIZE) as pilot:
        await log_in_and_start_shift(pilot, app)
        await wait_for(pilot, lambda: app.gps_state == "GPS source ended", what="sim ran")
        await wait_for(pilot, lambda: app.last_push_at is not None, what="fix replayed")
        assert app.buffered_fixes == 0
        assert app.positions is not None and len(app.positions.buffer) == 0
        (trip,) = await dispatch_all(stack.sessions, stack.redis, live_server.clock)
        await wait_for(pilot, lambda: trip_shown(app), what="offer polled")
        assert app.server_events == []
        store = str(app.screen.query_one("#store", Static).content)
        assert "0 m away" in store

        await pilot.press("x")
        await wait_for_screen(pilot, ConfirmScreen, what="confirm")
        await pilot.press("enter")
        await wait_for_screen(pilot, ShiftScreen, what="handed back")
        assert app.trip is None
    status = db_one(city.database_url, "SELECT status FROM trips WHERE trip_id = %s", trip.trip_id)
    assert status == "CANCELLED"
