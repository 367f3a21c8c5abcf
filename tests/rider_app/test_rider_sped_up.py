"""People can join the live demo (issue 16 point 5): the rider app on a server whose clock
runs 30x faster than the wall, with no GPS receiver (``qc rider --rider rider.001`` as the
README shows it: no --gps). The handheld sets its clock by the server's, rides its own trip and stamps
its fixes in the server's time, so the server never judges the rider's signal lost: the
trip is kept through pickup and the OTP drop while simulated minutes pass between steps."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
import redis
from textual.pilot import Pilot

from rider_app.app import RiderApp
from rider_app.screens.drop import DropScreen
from rider_app.screens.pickup import PickupScreen
from rider_app.screens.shift import ShiftScreen
from server.delivery.dispatcher import SIGNAL_LOST
from server.delivery.worker import dispatch_all
from server.kit import keys as qc_keys
from server.kit.clock import Clock
from shared.geo import LatLng, haversine_m
from tests.helpers import SteppedClock, scanner_types, wait_for, wait_for_screen
from tests.picker_app.picker_live import order_as_customer
from tests.rider_app.rider_live import (
    KOR,
    db_one,
    packed_order,
    rider_near_store,
)
from tests.rider_app.test_rider_flow import log_in_and_start_shift, trip_shown, trip_status

SPEED = 30.0
SIZE = (100, 36)


@pytest.fixture
def clock() -> Clock:
    # the demo's clock: 30x, started ten real minutes ago (five simulated hours ahead)
    return Clock(speed=SPEED, anchor=time.time())


def rider_fix_at(city, login: str) -> datetime:
    """The server's last fix of the rider (Redis: fixes are not written to PostgreSQL
    on the request path)."""
    rider_id, city_id = db_one(
        city.database_url,
        "SELECT r.rider_id, r.city_id FROM riders r JOIN users u ON u.id = r.rider_id "
        "WHERE u.login = %s",
        login,
    )
    with redis.Redis.from_url(city.redis_url, decode_responses=True) as client:
        at = client.hget(qc_keys.rider_fix(city_id, str(rider_id)), "at")
    assert at is not None, "no fix taken"
    return datetime.fromisoformat(str(at))


async def simulated_minutes_pass(
    pilot: Pilot[None], clock: Clock, since: datetime, what: str
) -> None:
    """Wait until more than the signal-lost limit has passed on the server's clock."""
    await wait_for(
        pilot, lambda: clock.now() > since + SIGNAL_LOST + timedelta(seconds=30), what=what
    )


@pytest.mark.slow
async def test_rider_keeps_the_trip_on_a_sped_up_server(
    city, live_server, stack, tmp_path: Path
) -> None:
    server = live_server.clock
    order_id, bag = await packed_order(live_server.url, city.database_url)
    login = rider_near_store(city.database_url)
    keys = SteppedClock()
    app = RiderApp(
        server_url=live_server.url,
        login=login,
        ride_along=True,  # no --gps
        monotonic=keys,
        buffer_dir=tmp_path,
        push_interval_s=0.2,
        trip_poll_s=0.5,
        retry_delays=(0.05,),
    )
    async with app.run_test(size=SIZE) as pilot:
        await log_in_and_start_shift(pilot, app)
        # the handheld took the server's clock and speed, and its fixes reach the server
        await wait_for(pilot, lambda: app.ctx.clock.speed == SPEED, what="server clock")
        await wait_for(pilot, lambda: app.last_push_at is not None, what="a fix taken")
        lag = server.now() - rider_fix_at(city, login)
        assert timedelta(0) <= lag < timedelta(seconds=60), lag  # server time, not wall

        (trip,) = await dispatch_all(stack.sessions, stack.redis, server)
        await wait_for(pilot, lambda: trip_shown(app), what="offer shown")
        await pilot.press("a")
        await wait_for(pilot, lambda: trip_status(app) == "ACCEPTED", what="accepted")
        accepted = server.now()

        # the handheld rides to the store on its own, at the server's speed
        await wait_for(
            pilot,
            lambda: app.last_fix is not None and haversine_m(app.last_fix.position, KOR) < 1,
            what="rode to the store",
        )
        # more than the signal-lost limit later, the lost-rider sweep keeps the trip (the
        # server saw the rider reach the store: AT_STORE by itself)
        await simulated_minutes_pass(pilot, server, accepted, "simulated minutes")
        assert await dispatch_all(stack.sessions, stack.redis, server) == []
        await wait_for(pilot, lambda: trip_status(app) == "AT_STORE", what="at the store")
        assert db_one(
            city.database_url, "SELECT status FROM trips WHERE trip_id = %s", trip.trip_id
        ) == ("AT_STORE")
        await pilot.press("p")
        await wait_for_screen(pilot, PickupScreen, what="pickup")
        await scanner_types(pilot, keys, bag)
        await wait_for(pilot, lambda: trip_status(app) == "PICKED_UP", what="picked up")
        picked = server.now()
        await pilot.press("d")
        await wait_for(pilot, lambda: trip_status(app) == "OUT", what="departed")

        # it rides to the door; minutes pass there too, the sweep changes nothing
        door_at = LatLng(12.9301, 77.6302)  # the order's address (rider_live.ADDRESS)
        await wait_for(
            pilot,
            lambda: app.last_fix is not None and haversine_m(app.last_fix.position, door_at) < 1,
            what="rode to the door",
        )
        await simulated_minutes_pass(pilot, server, picked, "simulated minutes at the door")
        await dispatch_all(stack.sessions, stack.redis, server)
        lag = server.now() - rider_fix_at(city, login)
        assert lag < SIGNAL_LOST, lag

        await pilot.press("enter")
        await wait_for_screen(pilot, DropScreen, what="drop screen")
        drop = cast(DropScreen, app.screen)
        assert drop.is_active
        otp = (await order_as_customer(live_server.url, order_id))["delivery_otp"]
        await pilot.press(*otp, "enter")
        await wait_for_screen(pilot, ShiftScreen, what="trip done")
    assert (await order_as_customer(live_server.url, order_id))["status"] == "DELIVERED"
    assert db_one(
        city.database_url, "SELECT status FROM trips WHERE trip_id = %s", trip.trip_id
    ) == ("COMPLETED")
