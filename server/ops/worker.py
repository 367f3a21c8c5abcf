"""The alert evaluator: condition alerts of every city from its live figures."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.kit.clock import Clock
from server.kit.db import transaction
from server.ops import alerts, feed


async def evaluate_all(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> int:
    async with transaction(sessions) as session:
        rows = await session.exec(text("SELECT DISTINCT city_id FROM dark_stores"))  # type: ignore[attr-defined,call-overload]
        cities = sorted(r[0] for r in rows)
    held = 0
    for city in cities:  # one transaction per city: a slow city does not hold the others
        async with transaction(sessions) as session:
            now = clock.now()
            snapshot = await feed.build_snapshot(session, city_id=city, now=now)  # type: ignore[arg-type]
            held += await alerts.evaluate_city(session, snapshot=snapshot, now=now)  # type: ignore[arg-type]
    return held
