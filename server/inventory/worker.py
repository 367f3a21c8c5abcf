"""The inventory's background work: write the soft-hold journal to the books, expire due
holds, load lost stores, repair drift, and (each full pass) balance the books' reserved
units with their holds."""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.events.service import alert_topic, emit
from server.inventory import books, journal
from server.inventory.reconcile import (
    Drift,
    load_store,
    reconcile_store,
    repairs_asked,
    store_ids,
)
from server.inventory.sweeper import sweep_store
from server.kit.background import LeasedLoop
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.db import transaction
from shared.enums import AlertKind

STORE_LIST_S = 10.0  # the journal writer re-reads the list of stores this often
REPAIR_TICK_S = 1.0  # the reconciler looks at stores a request asked for this often


class _StoreList:
    def __init__(self, db: AsyncEngine) -> None:
        self.db, self.ids, self.read_at = db, list[str](), float("-inf")

    async def get(self) -> list[str]:
        if time.monotonic() - self.read_at > STORE_LIST_S:
            self.ids, self.read_at = await store_ids(self.db), time.monotonic()
        return self.ids


async def load_missing_stores(db: AsyncEngine, redis: aioredis.Redis) -> None:
    """Start-up: load every store Redis does not hold. Drift is the leased reconciler's
    job; running it here would make every replica compare every store as it starts."""
    for store_id in await store_ids(db):
        await load_store(db, redis, store_id)


async def reconcile_all(db: AsyncEngine, redis: aioredis.Redis) -> int:
    return sum([len(await reconcile_store(db, redis, s)) for s in await store_ids(db)])


def inventory_loops(
    settings: Settings,
    db: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    clock: Clock,
) -> list[LeasedLoop]:
    async def sweep_all() -> None:
        for store_id in await store_ids(db):
            await sweep_store(sessions, redis, clock, store_id)

    full_pass_due = [float("-inf")]

    async def reconcile_and_alert() -> None:
        # every store each interval; between passes, the stores a request asked for
        asked, full = await repairs_asked(redis), time.monotonic() >= full_pass_due[0]
        if full:
            full_pass_due[0] = time.monotonic() + settings.reconcile_interval_s
            asked = await store_ids(db)
        for store_id in asked:
            await reconcile_and_report(sessions, db, redis, clock, store_id, balance_books=full)

    stores = _StoreList(db)

    async def write_journal() -> None:
        await journal.write_stores(db, redis, await stores.get())

    return [
        LeasedLoop(redis, "inventory-journal", settings.journal_interval_s, write_journal),
        LeasedLoop(redis, "inventory-sweeper", settings.sweep_interval_s, sweep_all),
        LeasedLoop(
            redis,
            "inventory-reconciler",
            min(REPAIR_TICK_S, settings.reconcile_interval_s),
            reconcile_and_alert,
            # a full pass may take longer than the lease (three ticks): it renews it
            longest_run_s=3 * settings.reconcile_interval_s,
        ),
    ]


async def reconcile_and_report(
    sessions: async_sessionmaker[AsyncSession],
    db: AsyncEngine,
    redis: aioredis.Redis,
    clock: Clock,
    store_id: str,
    *,
    balance_books: bool = False,
) -> list[Drift]:
    """Repair one store's drift and tell the control tower when there was any; with
    ``balance_books``, first balance the books' reserved units with their holds (the reload that
    follows takes the mended figures to Redis)."""
    unbalanced: list[books.Unbalanced] = []
    if balance_books:
        async with transaction(sessions) as session:
            unbalanced = await books.mend(session, store_id=store_id, now=clock.now())
    drift = await reconcile_store(db, redis, store_id)
    if drift or unbalanced:
        async with transaction(sessions) as session:
            await emit(
                session,
                topic=alert_topic(AlertKind.RECONCILIATION_DRIFT),
                store_id=store_id,
                aggregate_id=store_id,
                now=clock.now(),
                payload={
                    "records": len(drift),
                    "sample": [f"{d.kind}:{d.key}" for d in drift[:3]],
                    "books_mended": [str(u) for u in unbalanced if u.mendable][:3],
                    "books_short": [str(u) for u in unbalanced if not u.mendable][:3],
                },
            )
    return drift
