"""A process full of customers racing for one SKU (run by the concurrency test)."""

from __future__ import annotations

import asyncio

from server.inventory import service
from server.inventory.errors import InsufficientStock
from server.kit import db
from server.kit import redis as qredis
from server.kit.clock import Clock
from server.kit.config import Settings


async def _race(
    database_url: str, redis_url: str, store_id: str, sku_id: str, worker: int, attempts: int
) -> tuple[int, int]:
    settings = Settings(
        database_url=database_url, redis_url=redis_url, db_pool_size=8, db_max_overflow=4
    )
    engine = db.create_engine(database_url, settings)
    sessions = db.session_maker(engine)
    redis = qredis.create_redis(redis_url)
    clock = Clock()
    won = lost = 0

    async def attempt(i: int) -> bool:
        try:
            async with db.transaction(sessions) as s:
                await service.reserve_lines(
                    s,
                    redis,
                    store_id=store_id,
                    holder=f"cart-{worker}-{i}",
                    lines={sku_id: 1},
                    now=clock.now(),
                    hold_s=600,
                )
            return True
        except InsufficientStock:
            return False

    results = await asyncio.gather(*(attempt(i) for i in range(attempts)))
    won = sum(results)
    lost = len(results) - won
    await redis.aclose()
    await engine.dispose()
    return won, lost


def race(args: tuple[str, str, str, str, int, int]) -> tuple[int, int]:
    return asyncio.run(_race(*args))
