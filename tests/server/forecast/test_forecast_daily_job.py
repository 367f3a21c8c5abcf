"""The daily replenishment job: once per IST day after its hour, from the latest forecast."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from server.forecast.daily import run_daily_job
from server.forecast.history import IST
from server.kit.clock import Clock
from tests.server.forecast.forecast_db_helpers import put_forecasts, set_position, skus_of

STORE = "BLR-KOR"


def planned(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT store_id, sku_id, quantity, status FROM replenishment_orders ORDER BY sku_id"
        ).fetchall()


def clock_at(local: datetime) -> Clock:
    clock = Clock()
    clock.advance(local.timestamp() - clock.now().timestamp())
    return clock


async def test_the_daily_job_plans_once_per_day_after_its_hour(city, settings, stack) -> None:
    (sku,) = skus_of(city.database_url, STORE, 1)
    set_position(city.database_url, STORE, sku, available=5, capacity=200, case_pack=1)
    # tomorrow's IST midnight: every clock below is in the future (clocks only step forward)
    midnight = datetime.now(IST).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )
    put_forecasts(city.database_url, midnight, {(STORE, sku): (10.0, 30.0)})
    early = clock_at(midnight + timedelta(hours=settings.replenish_hour_ist) - timedelta(minutes=5))
    args = (settings, stack.sessions, stack.redis)
    assert not await run_daily_job(*args, early, city.database_url)
    assert planned(city.database_url) == []

    due = clock_at(midnight + timedelta(hours=settings.replenish_hour_ist, minutes=1))
    assert await run_daily_job(*args, due, city.database_url)
    # 5 available < 1.5 x 10 for the next 24 h: order up to the 72 h forecast
    assert planned(city.database_url) == [(STORE, sku, 25, "PLANNED")]
    assert not await run_daily_job(*args, due, city.database_url)  # done for today

    tomorrow = clock_at(midnight + timedelta(days=1, hours=settings.replenish_hour_ist))
    assert await run_daily_job(*args, tomorrow, city.database_url)
    # the planned units count as in transit: nothing is ordered twice
    assert len(planned(city.database_url)) == 1
