"""Real sales reach the history: committed order lines roll up hourly, stock-out hours are
censored, flash sales the system runs reach the schedule, and a stale history refuses the
refit."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from qc.forecast_cli import forecast_app
from server.forecast import runs
from server.forecast.censoring import impute_censored
from server.forecast.history import IST
from server.forecast.inputs import load_entities
from server.forecast.rollup import hour_floor, rollup_sales
from server.forecast.sales_history import load_history, read_history, with_stockouts
from server.inventory.reconcile import load_store
from server.kit.clock import Clock
from server.kit.config import get_settings
from tests.picker_app.picker_live import place_order
from tests.server.forecast.forecast_db_helpers import set_position, skus_of
from tests.server.forecast.forecast_world import TEST_CONFIG

STORE = "BLR-KOR"


def _rows(url: str, sql: str) -> set[tuple]:
    with psycopg.connect(url) as conn:
        return {tuple(r) for r in conn.execute(sql)}


async def test_real_orders_reach_the_history_and_a_stockout_hour_is_censored(
    city, live_server, clock: Clock, stack
) -> None:
    url = city.database_url
    plenty, last_two = skus_of(url, STORE, 2)
    set_position(url, STORE, plenty, available=50)
    set_position(url, STORE, last_two, available=2)
    await load_store(stack.engine, stack.redis, STORE, why="test")
    # a customer's paid order over HTTP takes the last two units of last_two
    await place_order(live_server.url, {plenty: 3, last_two: 2})
    hour = hour_floor(clock.now())

    clock.advance(3600)  # the hour is complete
    result = await rollup_sales(stack.sessions, stack.redis, clock)
    assert result.hours >= 1 and result.through == hour_floor(clock.now())

    sales = _rows(url, "SELECT store_id, sku_id, hour_start, units FROM sales_history")
    assert (STORE, plenty, hour, 3) in sales
    assert (STORE, last_two, hour, 2) in sales
    outs = _rows(url, "SELECT store_id, sku_id, hour_start FROM sales_stockout_hours")
    assert (STORE, last_two, hour) in outs  # the shelf went empty inside the hour
    assert (STORE, plenty, hour) not in outs

    # a second run has nothing new to do and leaves the rows as they are
    again = await rollup_sales(stack.sessions, stack.redis, clock)
    assert again.hours == 0
    assert _rows(url, "SELECT store_id, sku_id, hour_start, units FROM sales_history") == sales

    # read back, the stock-out hour is censored and its sales are not taken as demand
    with psycopg.connect(url) as conn:
        entities = load_entities(conn, stores=[STORE])
        day = hour.astimezone(IST).date()
        history = read_history(conn, entities, start=day, days=1)
        history = with_stockouts(conn, history, until=hour + timedelta(hours=1))
    idx = history.series_index()
    t = history.hour_index(hour)
    assert history.censored is not None
    assert history.censored[idx[STORE, last_two], t]
    assert not history.censored[idx[STORE, plenty], t]
    assert int(history.units[idx[STORE, last_two], t]) == 2
    filled = impute_censored(history)
    assert int(filled.units[idx[STORE, last_two], t]) >= 2


async def test_flash_sales_the_system_runs_reach_the_schedule(city, stack, clock) -> None:
    url = city.database_url
    (sku,) = skus_of(url, STORE, 1)
    start = clock.now() + timedelta(days=1)
    with psycopg.connect(url) as conn:
        user = conn.execute("SELECT id FROM users LIMIT 1").fetchone()
        assert user is not None
        sale = uuid.uuid4()
        conn.execute(
            "INSERT INTO flash_sales (sale_id, city_id, sku_id, sale_price_paise, "
            "per_customer_limit, starts_at, ends_at, status, created_by, created_at) "
            "VALUES (%s, 'BLR', %s, 100, 1, %s, %s, 'ACTIVE', %s, now())",
            (sale, sku, start, start + timedelta(hours=2), user[0]),
        )
        conn.execute(
            "INSERT INTO flash_sale_stores (sale_id, store_id, units) VALUES (%s, %s, 20)",
            (sale, STORE),
        )
    result = await rollup_sales(stack.sessions, stack.redis, clock)
    assert result.flash_days >= 1
    rows = _rows(url, "SELECT day, sku_id, store_id, source FROM flash_sale_schedule")
    assert (start.astimezone(IST).date(), sku, STORE, "system") in rows


def test_a_stale_history_refuses_the_refit(city, settings, monkeypatch) -> None:
    url = city.database_url
    last_day = date(2024, 8, 4)
    load_history(url, start=last_day - timedelta(days=13), days=14, stores=1, skus=20)
    fresh = datetime(2024, 8, 5, tzinfo=IST)  # the midnight right after the history
    runs.run_forecast(url, origin=fresh, config=TEST_CONFIG, stores=1, skus=20)
    late = fresh + timedelta(days=2)
    with pytest.raises(runs.StaleHistory, match="sales roll-up"):
        runs.run_forecast(url, origin=late, config=TEST_CONFIG, stores=1, skus=20)
    assert _rows(url, "SELECT forecast_at FROM demand_forecasts") == {(fresh,)}

    # the operator's command says why, and can force it
    monkeypatch.setenv("QC_DATABASE_URL", url)
    monkeypatch.setenv("QC_REDIS_URL", city.redis_url)
    monkeypatch.setenv("QC_HOME", str(settings.home))
    get_settings.cache_clear()
    args = ["run", "--origin", "2024-08-07", "--threads", "1", "--train-rows", "20000"]
    args += ["--stores", "1", "--skus", "20"]
    try:
        res = CliRunner().invoke(forecast_app, args)
        assert res.exit_code == 2 and "sales roll-up" in " ".join(res.output.split())
        res = CliRunner().invoke(forecast_app, [*args, "--allow-stale"])
        assert res.exit_code == 0, res.output
    finally:
        get_settings.cache_clear()
    assert _rows(url, "SELECT forecast_at FROM demand_forecasts") == {(fresh,), (late,)}


def test_imputing_censored_hours_recovers_the_lost_demand(world) -> None:
    """Censor the evenings of the busiest series for the last two weeks: the raw sales
    lose them, the imputed history gets them back within 20 %."""
    history = world.history
    busy = np.argsort(history.units.sum(1))[-20:]
    mask = np.zeros(history.units.shape, dtype=bool)
    lo = history.hours - 14 * 24
    evenings = np.array([t for t in range(lo, history.hours) if 18 <= t % 24 < 23])
    mask[np.ix_(busy, evenings)] = True
    true_units = history.units[np.ix_(busy, evenings)].sum()
    censored_units = history.units.copy()
    censored_units[mask] = 0  # the shelf was empty: nothing sold
    from dataclasses import replace

    censored = replace(history, units=censored_units, censored=mask)
    filled = impute_censored(censored)
    got = filled.units[np.ix_(busy, evenings)].sum()
    assert abs(got / true_units - 1) < 0.2, (got, true_units)
    uncensored = ~mask
    assert np.array_equal(filled.units[uncensored], censored_units[uncensored])
