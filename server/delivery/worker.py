"""The dispatcher loop: every store's waiting orders are batched and assigned."""

from __future__ import annotations

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.delivery import planning
from server.delivery.dispatcher import DispatchPolicy, dispatch_store, replace_lost_riders
from server.delivery.models import Trip
from server.kit.clock import Clock
from server.kit.db import transaction
from server.stores.models import DarkStore


async def dispatch_all(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    clock: Clock,
    weights: planning.ScoreWeights = planning.DEFAULT_WEIGHTS,
    policy: DispatchPolicy = DispatchPolicy(),
) -> list[Trip]:
    async with transaction(sessions) as session:
        stores = list((await session.exec(select(DarkStore))).all())
    async with transaction(sessions) as session:
        await replace_lost_riders(session, redis, now=clock.now())
    trips: list[Trip] = []
    for store in stores:
        async with transaction(sessions) as session:
            trips += await dispatch_store(
                session, redis, store=store, now=clock.now(), weights=weights, policy=policy
            )
    return trips
