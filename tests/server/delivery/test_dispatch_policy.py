"""The dispatcher as the seed has it: busy riders free within 3 minutes are candidates with
their real free-in time, a batch must meet the SLA counting the rider's ride to the store,
and a rider pre-assigned to a bag still being picked is offered it in time to be there
when it is packed, not long before. Each lever can be switched off."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest

from server.delivery import candidates
from server.delivery.dispatcher import DispatchPolicy
from server.delivery.worker import dispatch_all
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.geo import destination
from tests.helpers import login, one_row
from tests.server.delivery.dispatch_world import (
    KOR,
    add_order,
    kor_riders,
    put_on_duty,
    send_out,
    trips_of,
)


@pytest.mark.parametrize("busy", [True, False])
async def test_a_rider_free_within_3_minutes_beats_a_far_idle_one(stack, busy: bool) -> None:
    now = stack.clock.now()
    near_busy, far_idle = kor_riders(stack.database_url, 2)
    # 150 m north, handing over 100 m further on: free in ~90 s, ~250 m from the store
    await put_on_duty(stack.database_url, stack.redis, near_busy, destination(KOR, 0, 150), now)
    send_out(stack.database_url, near_busy, destination(KOR, 0, 250), now - timedelta(minutes=6))
    await put_on_duty(stack.database_url, stack.redis, far_idle, destination(KOR, 180, 1800), now)
    order = add_order(stack.database_url, drop=destination(KOR, 90, 1000), placed=now)

    trips = await dispatch_all(
        stack.sessions, stack.redis, stack.clock, policy=DispatchPolicy(busy_candidates=busy)
    )
    assert [(r, orders) for _, r, orders in trips_of(stack.database_url)] == [
        (near_busy if busy else far_idle, [order])
    ]
    assert len(trips) == 1
    with psycopg.connect(stack.database_url) as conn:
        status, next_trip = one_row(
            conn.execute(
                "SELECT status, next_trip_id FROM riders WHERE rider_id = %s",
                (trips[0].rider_id,),
            )
        )
    # the busy rider keeps delivering; the offer is their next trip
    assert status == ("DELIVERING" if busy else "ASSIGNED") and next_trip == trips[0].trip_id


async def test_a_busy_rider_with_a_next_trip_or_far_from_free_is_not_offered_more(stack) -> None:
    now = stack.clock.now()
    (rider,) = kor_riders(stack.database_url, 1)
    await put_on_duty(stack.database_url, stack.redis, rider, destination(KOR, 0, 150), now)
    # the last drop is 2 km away: free in well over 3 minutes
    send_out(stack.database_url, rider, destination(KOR, 0, 2150), now - timedelta(minutes=3))
    add_order(stack.database_url, drop=destination(KOR, 90, 800), placed=now)
    assert await dispatch_all(stack.sessions, stack.redis, stack.clock) == []


@pytest.mark.parametrize(("rider_m", "expected"), [(100, 2), (1200, 1)])
async def test_batching_counts_the_riders_ride_to_the_store(
    stack, rider_m: float, expected: int
) -> None:
    """Two doors one behind the other, placed 2 minutes ago. Leaving at once, both are
    delivered within 15 minutes (B at ~11 min); a rider 1.2 km away needs 5.4 minutes to
    reach the store, after which B would arrive at ~16 min: only A goes with that rider."""
    now = stack.clock.now()
    a = add_order(
        stack.database_url,
        drop=destination(KOR, 0, 1000),
        placed=now - timedelta(minutes=2, seconds=10),
    )
    b = add_order(
        stack.database_url, drop=destination(KOR, 0, 1500), placed=now - timedelta(minutes=2)
    )
    (rider,) = kor_riders(stack.database_url, 1)
    await put_on_duty(stack.database_url, stack.redis, rider, destination(KOR, 180, rider_m), now)

    assert len(await dispatch_all(stack.sessions, stack.redis, stack.clock)) == 1
    [(_, _, orders)] = trips_of(stack.database_url)
    assert orders == [a, b][:expected]
    # without batching each order rides alone whatever the distance
    if expected == 2:
        return
    with psycopg.connect(stack.database_url) as conn:
        assert (
            one_row(conn.execute("SELECT rider_id FROM orders WHERE order_id = %s", (b,)))[0]
            is None
        )


async def test_batching_off_sends_one_order_per_trip(stack) -> None:
    now = stack.clock.now()
    a = add_order(stack.database_url, drop=destination(KOR, 0, 1000), placed=now)
    b = add_order(stack.database_url, drop=destination(KOR, 0, 1200), placed=now)
    for rider, bearing in zip(kor_riders(stack.database_url, 2), (90, 270), strict=True):
        await put_on_duty(
            stack.database_url, stack.redis, rider, destination(KOR, bearing, 200), now
        )
    trips = await dispatch_all(
        stack.sessions, stack.redis, stack.clock, policy=DispatchPolicy(batching=False)
    )
    assert len(trips) == 2
    assert sorted(o for *_, orders in trips_of(stack.database_url) for o in orders) == sorted(
        [a, b]
    )
    assert all(len(orders) == 1 for *_, orders in trips_of(stack.database_url))


@pytest.mark.parametrize("preassign", [True, False])
async def test_the_rider_is_offered_a_picking_bag_in_time_to_meet_it(
    stack, preassign: bool
) -> None:
    """A bag due in 5 minutes, a rider 300 m (~80 s) away: offering it now would leave the
    rider waiting; offered once the bag is due within the ride + 90 s lead. With
    pre-assignment off the bag waits to be packed before anyone is asked."""
    now = stack.clock.now()
    order = add_order(
        stack.database_url,
        drop=destination(KOR, 45, 900),
        placed=now,
        status="PICKING",
        claimed=now,
        estimate_s=300,
    )
    (rider,) = kor_riders(stack.database_url, 1)
    await put_on_duty(stack.database_url, stack.redis, rider, destination(KOR, 270, 300), now)
    policy = DispatchPolicy(preassign=preassign)
    assert await dispatch_all(stack.sessions, stack.redis, stack.clock, policy=policy) == []
    stack.clock.advance(150)  # due in 150 s: within ~80 s of riding + 90 s
    await put_on_duty(
        stack.database_url, stack.redis, rider, destination(KOR, 270, 300), stack.clock.now()
    )
    trips = await dispatch_all(stack.sessions, stack.redis, stack.clock, policy=policy)
    if not preassign:
        assert trips == []
        return
    (trip,) = trips
    assert trip.rider_id == rider
    # the rider is planned to leave when the bag is ready, and arrives before it is
    ready = now + timedelta(seconds=300)
    assert abs((trip.planned_depart_at - ready).total_seconds()) < 1
    [(_, _, orders)] = trips_of(stack.database_url)
    assert orders == [order]


async def test_battery_comes_from_the_handhelds_fixes(stack, client) -> None:
    """Two riders alike but for the battery their handhelds report: the fuller one goes."""
    now = stack.clock.now()
    low, full = kor_riders(stack.database_url, 2)
    with psycopg.connect(stack.database_url) as conn:
        logins: dict[uuid.UUID, str] = dict(
            conn.execute("SELECT id, login FROM users WHERE id = ANY(%s)", ([low, full],))
        )
        conn.execute("UPDATE riders SET battery_pct = 100 WHERE rider_id = %s", (low,))
    for rider, battery, bearing in ((low, 12, 90), (full, 96, 270)):
        headers = await login(client, logins[rider], DEMO_SECRETS[Role.RIDER])
        assert (
            await client.post("/v1/riders/me/shift", json={"on_duty": True}, headers=headers)
        ).status_code == 200
        spot = destination(KOR, bearing, 400)
        fix = {"lat": spot.lat, "lng": spot.lng, "at": now.isoformat(), "battery_pct": battery}
        r = await client.post("/v1/riders/me/locations", headers=headers, json={"fixes": [fix]})
        assert r.status_code == 200, r.text
    assert await candidates.batteries(stack.redis, [low, full], city_id="BLR") == {
        low: 12.0,
        full: 96.0,
    }
    add_order(stack.database_url, drop=destination(KOR, 0, 800), placed=now)
    (trip,) = await dispatch_all(stack.sessions, stack.redis, stack.clock)
    assert trip.rider_id == full


async def test_rating_is_earned_from_deliveries(stack) -> None:
    now = stack.clock.now()
    late, new = kor_riders(stack.database_url, 2)
    for _ in range(5):  # five drops delivered 20 minutes after placing: all late
        trip = send_out(
            stack.database_url, late, destination(KOR, 0, 500), now - timedelta(hours=1)
        )
        with psycopg.connect(stack.database_url) as conn:
            conn.execute(
                "UPDATE trip_stops SET status = 'DELIVERED', delivered_at = %s WHERE trip_id = %s",
                (now - timedelta(minutes=40), trip),
            )
            conn.execute("UPDATE trips SET status = 'COMPLETED' WHERE trip_id = %s", (trip,))
    async with stack.sessions() as session:
        stars = await candidates.ratings(session, rider_ids=[late, new], now=now)
    assert stars[new] == pytest.approx(4.5)  # the prior: 10 drops at 90 % on time
    assert stars[late] == pytest.approx(5 * 9 / 15)  # 0 of 5 on time pulls it to 3.0
