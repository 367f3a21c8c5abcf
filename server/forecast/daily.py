"""The daily replenishment job: once per IST day, after ``replenish_hour_ist``, optionally
refit the forecast, then apply the reorder rule and write PLANNED replenishment orders.

It runs under a leased loop, so one replica does it; the day it last completed is kept
in Redis and written only after the plan commits, so a crash means a retry, not a gap.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.forecast.history import IST, ist_midnight
from server.forecast.runs import StaleHistory, run_forecast
from server.forecast.service import plan_replenishment
from server.kit import keys
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.db import transaction

log = logging.getLogger(__name__)


async def run_daily_job(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    clock: Clock,
    database_url: str,
) -> bool:
    """Run today's job if it is due and not done; True when it ran."""
    now = clock.now()
    local = now.astimezone(IST)
    day = local.date().isoformat()
    if local.hour < settings.replenish_hour_ist:
        return False
    if await redis.get(keys.daily_job("replenishment")) == day:
        return False
    if settings.forecast_daily:
        try:
            await asyncio.to_thread(run_forecast, database_url, origin=ist_midnight(now))
        except StaleHistory as exc:  # loud: planning goes on with the last good forecast
            log.error("DAILY FORECAST REFUSED: stale sales history", extra={"reason": str(exc)})
        except ValueError as exc:  # no history yet: plan with what forecasts exist
            log.warning("daily forecast skipped", extra={"reason": str(exc)})
    async with transaction(sessions) as session:
        plan = await plan_replenishment(session, now=now)
    await redis.set(keys.daily_job("replenishment"), day)
    log.info(
        "daily replenishment planned",
        extra={"day": day, "orders": len(plan.lines), "positions": plan.positions},
    )
    return True
