"""Serviceability at the store's own ride pace: a store whose riders ride faster than the
planning pace promises sooner and reaches farther within the same promise; the learned
pace is the median of its recent rides out, kept within a band of the planning pace."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from server.delivery import eta
from server.kit import db
from server.stores.selection import PLANNED_PACE_MIN_PER_M, StoreLoad, door_minutes, reach_m
from shared.geo import destination, haversine_m
from tests.conftest import settings_for
from tests.helpers import another_store
from tests.server.delivery.dispatch_world import KOR, STORE


def _load(pace: float = PLANNED_PACE_MIN_PER_M) -> StoreLoad:
    return StoreLoad(0, 2, 1.5, 0, 2, 2, pace)


def test_a_faster_store_promises_sooner_and_reaches_farther() -> None:
    planned, fast = _load(), _load(PLANNED_PACE_MIN_PER_M * 0.8)
    assert door_minutes(fast, 1500) < door_minutes(planned, 1500)
    promise = 10 * 60
    far, near = (
        reach_m(fast, radius_m=3000, promise_s=promise),
        reach_m(planned, radius_m=3000, promise_s=promise),
    )
    assert far == pytest.approx(near / 0.8)
    # the reach is where the promise is just kept
    assert door_minutes(fast, far) == pytest.approx(10.0)


def _rides(url: str, seconds_per_m: list[float], now: datetime) -> None:
    """Delivered single-drop trips out of Koramangala, 1 km out, at these paces."""
    drop = destination(KOR, 90, 1000)
    metres = haversine_m(KOR, drop)
    with psycopg.connect(url, autocommit=True) as conn:
        user = conn.execute("SELECT id FROM users WHERE role = 'customer' LIMIT 1").fetchone()
        rider = conn.execute("SELECT rider_id FROM riders LIMIT 1").fetchone()
        assert user is not None and rider is not None
        for i, pace in enumerate(seconds_per_m):
            out = now - timedelta(minutes=30 + i)
            order_id, trip_id = uuid.uuid4(), uuid.uuid4()
            conn.execute(
                "INSERT INTO orders (store_id, order_id, user_id, city_id, status, currency, "
                "subtotal_paise, delivery_fee_paise, handling_fee_paise, discount_paise, "
                "total_amount_paise, delivery_lat, delivery_lng, out_for_delivery_at) VALUES "
                "(%s, %s, %s, 'BLR', 'DELIVERED', 'INR', 0, 0, 0, 0, 0, %s, %s, %s)",
                (STORE, order_id, user[0], drop.lat, drop.lng, out),
            )
            conn.execute(
                "INSERT INTO trips (trip_id, store_id, rider_id, status, created_at, updated_at) "
                "VALUES (%s, %s, %s, 'COMPLETED', %s, %s)",
                (trip_id, STORE, rider[0], out, out),
            )
            conn.execute(
                "INSERT INTO trip_stops (store_id, trip_id, order_id, seq, status, otp_attempts, otp_locked, "
                "arrived_at) VALUES (%s, %s, %s, 1, 'DELIVERED', 0, false, %s)",
                (STORE, trip_id, order_id, out + timedelta(seconds=pace * metres)),
            )


async def test_the_pace_is_learned_from_enough_recent_rides(city, services) -> None:
    now = datetime.now(UTC)
    engine = db.create_engine(services.database_url, settings_for(services))
    sessions = db.session_maker(engine)
    try:
        _rides(services.database_url, [0.2] * (eta.PACE_MIN_SAMPLES - 1), now)
        eta._paces.clear()
        async with sessions() as session:
            assert await eta.store_pace(session, store_id=STORE, now=now) is None
        _rides(services.database_url, [0.2, 0.01, 5.0], now)  # two outliers
        eta._paces.clear()
        async with sessions() as session:
            pace = await eta.store_pace(session, store_id=STORE, now=now)
        assert pace == pytest.approx(0.2, rel=0.01)
    finally:
        await engine.dispose()


async def test_a_store_without_rides_of_its_own_takes_its_citys_pace(city, services) -> None:
    now = datetime.now(UTC)
    other = another_store(services.database_url, STORE)
    engine = db.create_engine(services.database_url, settings_for(services))
    sessions = db.session_maker(engine)
    try:
        _rides(services.database_url, [0.2] * eta.PACE_MIN_SAMPLES, now)  # Koramangala's
        eta._paces.clear()
        async with sessions() as session:
            pace = await eta.store_pace(session, store_id=other, now=now)
        assert pace == pytest.approx(0.2, rel=0.01)
    finally:
        await engine.dispose()
