"""The city's nights in a multi-day run, by the server's own jobs on the simulated clock:

* every local hour, the sales roll-up (``server.forecast.rollup``): the hour's confirmed
  order lines into ``sales_history``, its stock-out hours into ``sales_stockout_hours``;
* every night at midnight a forecast per store x SKU (the simulation's own expected demand,
  :mod:`qc.des.expected`: the city's demand is known, so the planner is not what is
  measured here), then at ``replenish_hour_ist`` (02:00) the daily replenishment job
  (``server.forecast.daily``: the seeded reorder rule writes PLANNED orders); the orders
  are dispatched at once and received ``replenish_lead_h`` later (05:00, before the
  stores open at 06:00), through the server's ``dispatch`` and ``receive``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from qc.des.expected import Product, expected_units
from qc.des.world import World
from server.forecast.daily import run_daily_job
from server.forecast.rollup import rollup_sales
from server.forecast.service import dispatch, receive
from server.kit.db import transaction

ROLLUP_AFTER_S = 60.0  # the roll-up runs a minute into each hour (the hour before is whole)

_FORECAST_SQL = text(
    "INSERT INTO demand_forecasts (store_id, sku_id, forecast_at, next_24h, next_72h) "
    "VALUES (:store_id, :sku_id, :at, :f24, :f72) "
    "ON CONFLICT (store_id, sku_id, forecast_at) DO UPDATE "
    "SET next_24h = EXCLUDED.next_24h, next_72h = EXCLUDED.next_72h"
)
_PLANNED_SQL = text(
    "SELECT replenishment_id FROM replenishment_orders WHERE status = 'PLANNED' "
    "ORDER BY store_id, sku_id, replenishment_id"
)


class Nights:
    def __init__(self, world: World, products: dict[str, list[Product]]) -> None:
        self.world = world
        self.products = products
        self.skus = sorted(sku for items in products.values() for sku, _ in items)
        self.tz = ZoneInfo(world.config.timezone)
        self.until = 0.0

    def _local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, tz=self.tz)

    def start(self, until: float) -> None:
        """Hourly roll-ups and nightly jobs from now until ``until`` (Unix time)."""
        self.until = until
        now = self._local(self.world.now())
        hour = now.replace(minute=0, second=0, microsecond=0)
        self.world.at(hour.timestamp() + 3600 + ROLLUP_AFTER_S, self._rollup)
        midnight = hour.replace(hour=0)
        job = midnight + timedelta(hours=self.world.settings.replenish_hour_ist)
        if job <= now:
            job += timedelta(days=1)
        self.world.at(job.timestamp(), self._night)

    def confirmed(self, placed: float) -> None:
        self.world.count(f"day {self._local(placed).date()}: orders confirmed")

    async def rollup(self) -> None:
        """Roll up every complete hour not yet in the history."""
        world = self.world
        done = await rollup_sales(world.sessions, world.redis, world.clock)
        world.count("history_hours_rolled_up", done.hours)

    async def _rollup(self) -> None:
        await self.rollup()
        if self.world.now() + 3600 <= self.until:
            self.world.at(self.world.now() + 3600, self._rollup)

    async def _night(self) -> None:
        world = self.world
        now = world.clock.now()
        day = self._local(world.now()).date()
        await self._forecast(day)
        await run_daily_job(
            world.settings, world.sessions, world.redis, world.clock, database_url=""
        )
        async with world.sessions() as session:
            planned: list[uuid.UUID] = list((await session.execute(_PLANNED_SQL)).scalars())
        for rid in planned:
            async with transaction(world.sessions) as session:
                await dispatch(session, world.redis, replenishment_id=rid, now=now)
        world.count("replenishment_orders", len(planned))
        world.count(f"night {day}: replenishment orders", len(planned))
        if planned:
            lead = world.config.replenish_lead_h * 3600
            world.at(world.now() + lead, lambda: self._receive(day, planned))
        if world.now() + 86400 <= self.until:
            world.at(world.now() + 86400, self._night)

    async def _receive(self, day: date, planned: list[uuid.UUID]) -> None:
        world = self.world
        units = 0
        for rid in planned:
            async with transaction(world.sessions) as session:
                order = await receive(
                    session, world.redis, replenishment_id=rid, now=world.clock.now()
                )
                units += order.quantity
        world.count("replenishment_units_received", units)
        world.count(f"night {day}: units received", units)

    async def _forecast(self, day: date) -> None:
        """Tonight's forecast from midnight: the expected demand of the next 24 h and 72 h."""
        world = self.world
        cells = expected_units(world.config, self.products, self.skus, first=day, days=3)
        f24, f72 = cells[:, :24].sum(axis=1), cells.sum(axis=1)
        at = datetime.combine(day, datetime.min.time(), tzinfo=self.tz)
        rows = [
            {"store_id": store, "sku_id": sku, "at": at, "f24": float(a), "f72": float(b)}
            for store in sorted(world.stores)
            for sku, a, b in zip(self.skus, f24, f72, strict=True)
        ]
        async with transaction(world.sessions) as session:
            await session.execute(_FORECAST_SQL, rows)
