"""The alert evaluator: condition alerts of every city from its live figures."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit.clock import Clock
from server.kit.db import transaction
from server.ops import alerts, feed


async def evaluate_all(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> int:
    async with transaction(sessions) as session:
        rows = await session.execute(text("SELECT DISTINCT city_id FROM dark_stores"))
        cities = sorted(r[0] for r in rows)
    held = 0
    for city in cities:  # one transaction per city: a slow city does not hold the others
        async with transaction(sessions) as session:
            now = clock.now()
            snapshot = await feed.build_snapshot(session, city_id=city, now=now)
            held += await alerts.evaluate_city(session, snapshot=snapshot, now=now)
    return held
