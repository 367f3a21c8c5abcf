"""Real sales into the history: the hourly roll-up of committed order lines.

Every complete local hour (the store's city time zone, so IST hours start at :30 UTC) the
leased ``sales-rollup`` loop writes, for each store x SKU of that hour:

* ``sales_history``: the units ordered on orders confirmed (paid) in that hour. Demand is
  what the customer asked for (``ordered_qty``), not what a short pick delivered.
* ``sales_stockout_hours``: the hours in which the shelf was empty at some moment
  (``available`` was 0 at the hour's start or reached 0 inside it, replayed from the
  append-only ``stock_ledger`` back from the current ``store_inventory``). Their sales are
  censored: the forecast treats them as missing and estimates the lost sales
  (:func:`server.forecast.censoring.impute_censored`), so unserved demand is not read as
  low demand.
* ``flash_sale_schedule``: the flash sales the system runs (``flash_sales`` x
  ``flash_sale_stores``) as ``source = 'system'`` days, from a week back to
  ``FACTOR_LEAD_DAYS`` ahead, so the model sees them as it sees imported sale calendars.

Hours are processed from a watermark kept in Redis up to the current hour; each hour's rows
are replaced, so a retry after a crash rewrites the same rows. The first run starts after
the newest stored sales hour (the seeded history) or a day back, whichever is later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy import CursorResult, text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.forecast.history import IST
from server.forecast.inputs import FACTOR_LEAD_DAYS
from server.kit import keys
from server.kit.clock import Clock
from server.kit.db import transaction

log = logging.getLogger(__name__)

MAX_CATCH_UP_HOURS = 48  # a longer outage restarts a day back (older hours stay missing)
_HOUR = timedelta(hours=1)

# orders that were confirmed (paid) count as demand, even if cancelled afterwards
_SALES_SQL = text(
    """
    INSERT INTO sales_history (store_id, sku_id, hour_start, units)
    SELECT i.store_id, i.sku_id, :lo, sum(i.ordered_qty)
    FROM orders o JOIN order_items i USING (store_id, order_id)
    WHERE o.confirmed_at >= :lo AND o.confirmed_at < :hi
    GROUP BY i.store_id, i.sku_id
    HAVING sum(i.ordered_qty) > 0
    ON CONFLICT (store_id, sku_id, hour_start) DO UPDATE SET units = EXCLUDED.units
    """
)

# available at :lo = available now - every change since :lo; inside the hour, the running
# level after each change. Zero at the start or after any change: a stock-out hour.
_STOCKOUT_SQL = text(
    """
    WITH led AS (
      SELECT store_id, sku_id, entry_id, created_at, d_available
      FROM stock_ledger WHERE created_at >= :lo AND d_available <> 0
    ),
    since AS (
      SELECT store_id, sku_id, sum(d_available) AS d FROM led GROUP BY store_id, sku_id
    ),
    at_lo AS (
      SELECT s.store_id, s.sku_id, s.available_qty - coalesce(since.d, 0) AS avail
      FROM store_inventory s LEFT JOIN since USING (store_id, sku_id)
    ),
    inside AS (
      SELECT led.store_id, led.sku_id, a.avail + sum(led.d_available) OVER (
        PARTITION BY led.store_id, led.sku_id ORDER BY led.created_at, led.entry_id
      ) AS avail
      FROM led JOIN at_lo a USING (store_id, sku_id)
      WHERE led.created_at < :hi
    )
    INSERT INTO sales_stockout_hours (store_id, sku_id, hour_start)
    SELECT store_id, sku_id, :lo FROM at_lo WHERE avail <= 0
    UNION
    SELECT store_id, sku_id, :lo FROM inside WHERE avail <= 0
    ON CONFLICT DO NOTHING
    """
)

_FLASH_SQL = text(
    """
    INSERT INTO flash_sale_schedule (day, sku_id, store_id, source)
    SELECT DISTINCT d::date, f.sku_id, fs.store_id, 'system'
    FROM flash_sales f
    JOIN flash_sale_stores fs USING (sale_id)
    JOIN cities c ON c.city_id = f.city_id
    CROSS JOIN LATERAL generate_series(
      (f.starts_at AT TIME ZONE c.timezone)::date,
      ((f.ends_at - interval '1 microsecond') AT TIME ZONE c.timezone)::date,
      interval '1 day') AS d
    WHERE f.status <> 'STOPPED' AND f.ends_at > :since AND f.starts_at < :until
    ON CONFLICT ON CONSTRAINT uq_flash_sale_day_sku_store DO NOTHING
    """
)


@dataclass(frozen=True)
class Rollup:
    hours: int  # complete hours rolled up
    sales_rows: int
    stockout_rows: int
    flash_days: int
    through: datetime | None  # start of the first hour not yet rolled up


def hour_floor(moment: datetime) -> datetime:
    """The start of the IST hour holding ``moment`` (UTC)."""
    local = moment.astimezone(IST).replace(minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


async def _first_hour(session: AsyncSession, current: datetime) -> datetime:
    newest = (await session.execute(text("SELECT max(hour_start) FROM sales_history"))).scalar()
    start = current - timedelta(hours=24)
    if newest is not None:
        start = max(start, hour_floor(newest) + _HOUR)
    return min(start, current)


async def rollup_hour(session: AsyncSession, *, hour: datetime) -> tuple[int, int]:
    """Replace one local hour's sales and stock-out rows; (sales rows, stock-out rows)."""
    lo, hi = hour, hour + _HOUR
    params = {"lo": lo, "hi": hi}
    await session.execute(
        text("DELETE FROM sales_history WHERE hour_start = :lo"), params
    )  # a late retry must not keep stale counts (a cancelled-before-paid order)
    await session.execute(text("DELETE FROM sales_stockout_hours WHERE hour_start = :lo"), params)
    sales = await session.execute(_SALES_SQL, params)
    outs = await session.execute(_STOCKOUT_SQL, params)
    return _count(sales), _count(outs)


def _count(result: object) -> int:
    return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0


async def record_flash_sales(session: AsyncSession, *, now: datetime) -> int:
    """Copy the system's flash sales near ``now`` into the schedule the model reads."""
    params = {"since": now - timedelta(days=7), "until": now + timedelta(days=FACTOR_LEAD_DAYS)}
    return _count(await session.execute(_FLASH_SQL, params))


async def rollup_sales(
    sessions: async_sessionmaker[AsyncSession], redis: aioredis.Redis, clock: Clock
) -> Rollup:
    """Roll up every complete hour since the watermark, one transaction per hour."""
    now = clock.now()
    current = hour_floor(now)
    mark = await redis.get(keys.sales_rollup_watermark())
    async with transaction(sessions) as session:
        flash = await record_flash_sales(session, now=now)
        if mark is not None:
            start = datetime.fromisoformat(mark if isinstance(mark, str) else mark.decode())
            start = max(start, current - timedelta(hours=MAX_CATCH_UP_HOURS))
        else:
            start = await _first_hour(session, current)
    hours = sales = outs = 0
    hour = start
    while hour < current:
        async with transaction(sessions) as session:
            s, o = await rollup_hour(session, hour=hour)
        hour += _HOUR
        await redis.set(keys.sales_rollup_watermark(), hour.isoformat())
        hours, sales, outs = hours + 1, sales + s, outs + o
    if hours:
        log.info(
            "sales rolled up",
            extra={"hours": hours, "sales_rows": sales, "stockout_rows": outs, "through": hour},
        )
    return Rollup(hours, sales, outs, flash, hour if hours else None)
