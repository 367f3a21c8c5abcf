"""A rider's past rides from a store correct their ETA and feed the route-history score."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg

from server.delivery.eta import rider_history
from server.kit.db import transaction
from tests.helpers import one_row

STORE = "BLR-KOR"


def _past_drops(url: str, rider_id: uuid.UUID, rides: list[tuple[int, int]], now) -> None:
    """Each ride: (planned seconds, actual seconds) from leaving the store to the door."""
    with psycopg.connect(url, autocommit=True) as conn:
        user = one_row(conn.execute("SELECT id FROM users WHERE role = 'customer' LIMIT 1"))[0]
        for planned, actual in rides:
            depart = now - timedelta(hours=2)
            trip, order = uuid.uuid4(), uuid.uuid4()
            conn.execute(
                "INSERT INTO trips (trip_id, store_id, rider_id, status, "
                "planned_depart_at) VALUES (%s, %s, %s, 'COMPLETED', %s)",
                (trip, STORE, rider_id, depart),
            )
            conn.execute(
                "INSERT INTO orders (store_id, order_id, user_id, city_id, status, currency, "
                "subtotal_paise, delivery_fee_paise, handling_fee_paise, discount_paise, "
                "total_amount_paise, delivery_lat, delivery_lng, out_for_delivery_at) VALUES "
                "(%s, %s, %s, 'BLR', 'DELIVERED', 'INR', 0, 0, 0, 0, 0, 12.94, 77.63, %s)",
                (STORE, order, user, depart),
            )
            conn.execute(
                "INSERT INTO trip_stops (store_id, trip_id, order_id, seq, status, "
                "planned_arrival_at, delivered_at, otp_attempts, otp_locked) VALUES "
                "(%s, %s, %s, 1, 'DELIVERED', %s, %s, 0, false)",
                (
                    STORE,
                    trip,
                    order,
                    depart + timedelta(seconds=planned),
                    depart + timedelta(seconds=actual),
                ),
            )


async def test_history_needs_three_drops_then_gives_minutes_and_the_slowness_factor(
    stack,
) -> None:
    with psycopg.connect(stack.database_url) as conn:
        rider = one_row(conn.execute("SELECT rider_id FROM riders LIMIT 1"))[0]
    now = stack.clock.now()
    _past_drops(stack.database_url, rider, [(300, 600), (400, 800)], now)
    async with transaction(stack.sessions) as s:
        assert await rider_history(s, store_id=STORE, rider_ids=[rider], now=now) == {}
    _past_drops(stack.database_url, rider, [(600, 1200)], now)
    async with transaction(stack.sessions) as s:
        past = await rider_history(s, store_id=STORE, rider_ids=[rider], now=now)
    minutes, factor = past[rider]
    assert abs(minutes - (600 + 800 + 1200) / 3 / 60) < 1e-6  # 14.44 minutes
    assert abs(factor - 2.0) < 1e-9  # twice as slow as planned, every time
    async with transaction(stack.sessions) as s:  # another store's history does not count
        assert await rider_history(s, store_id="BLR-IND", rider_ids=[rider], now=now) == {}
