"""A process full of customers racing for one SKU (run by the concurrency test), with a
journal writer of its own racing the other processes' writers."""

from __future__ import annotations

import asyncio

from server.inventory import journal, service
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

    done = asyncio.Event()

    async def writer() -> None:
        # every process also runs a journal writer: they contend for the same batches
        while not done.is_set():
            await journal.write_stores(engine, redis, [store_id])
            await asyncio.sleep(0.01)

    writing = asyncio.create_task(writer())
    results = await asyncio.gather(*(attempt(i) for i in range(attempts)))
    done.set()
    await writing
    won = sum(results)
    lost = len(results) - won
    await redis.aclose()
    await engine.dispose()
    return won, lost


def race(args: tuple[str, str, str, str, int, int]) -> tuple[int, int]:
    return asyncio.run(_race(*args))
