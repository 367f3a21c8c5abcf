"""A process full of buyers claiming tokens of one sale (run by the claim concurrency test)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from server.flash.admission import claim_token
from server.kit import db
from server.kit.clock import Clock
from server.kit.config import Settings


async def _claim(
    database_url: str, sale_id: str, store_id: str, buyers: int
) -> list[tuple[str, str]]:
    settings = Settings(database_url=database_url, db_pool_size=buyers, db_max_overflow=0)
    engine = db.create_engine(database_url, settings)
    sessions = db.session_maker(engine)
    clock = Clock()
    start = asyncio.Event()

    async def buyer() -> tuple[str, str] | None:
        customer = uuid.uuid4()
        async with sessions() as session:  # its own connection
            await session.connection()
            await start.wait()
            token = await claim_token(
                session,
                sale_id=uuid.UUID(sale_id),
                store_id=store_id,
                customer_id=customer,
                now=clock.now(),
                slot_expires_at=clock.now() + timedelta(seconds=60),
            )
            await session.commit()
        return (str(token), str(customer)) if token else None

    tasks = [asyncio.create_task(buyer()) for _ in range(buyers)]
    await asyncio.sleep(0.5)  # every buyer holds its connection: then all go at once
    start.set()
    won = [r for r in await asyncio.gather(*tasks) if r]
    await engine.dispose()
    return won


def claim(args: tuple[str, str, str, int]) -> list[tuple[str, str]]:
    return asyncio.run(_claim(*args))
