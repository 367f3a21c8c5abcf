"""The reconciler under a store's steady load: carts, checkouts and their ends keep
changes in flight at every look, and it must neither pause the store nor reload it for
them, yet still repair a real drift that appears meanwhile."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy import text

from server.inventory import journal, service
from server.inventory.engine import Buckets
from server.inventory.errors import StoreNotReady
from server.inventory.reconcile import (
    DRIFT_REPAIRED,
    LOOKS,
    STORE_LOADS,
    Drift,
    find_drift,
    load_store,
    reconcile_store,
)
from server.kit import db, keys
from server.kit.db import transaction
from tests.helpers import stocked_skus
from tests.server.inventory.helpers import pg_stock, redis_stock, set_stock

STORE = "BLR-KOR"
WORKERS = 10  # each its own transactions, on a pool of POOL connections
POOL = 4
ROUNDS = 8  # reconciler runs at least this many times while the workers work


@dataclass
class Load:
    refused: int = 0  # StoreNotReady seen by any change
    done: int = 0  # checkouts through
    busy: asyncio.Event = field(default_factory=asyncio.Event)  # some work done
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    missing: int = 0  # times the watcher saw no ready marker


async def _worker(stack, sessions, load: Load, w: int, skus: list[str]) -> None:
    """Cart lines (journaled), a checkout moving the cart to a HARD hold whose transaction
    also writes something slow (its order), then the order paid or cancelled (HARD
    ends), and now and then a cart emptied (a journaled end)."""
    i = 0
    while not load.stop.is_set() and i < 500:
        cart, order, i = f"cart-{w}-{i}", f"order-{w}-{i}", i + 1
        lines = {skus[(w + i) % len(skus)]: 1 + i % 2, skus[(w + i + 1) % len(skus)]: 1}
        now = stack.clock.now()
        try:
            async with transaction(sessions) as s:
                await service.reserve_lines(
                    s, stack.redis, store_id=STORE, holder=cart, lines=lines, now=now, hold_s=600
                )
            if i % 4 == 0:
                async with transaction(sessions) as s:
                    await service.settle_hold(
                        s, stack.redis, store_id=STORE, holder=cart, outcome="RELEASED", now=now
                    )
                continue
            async with transaction(sessions) as s:
                await service.reserve_lines(
                    s,
                    stack.redis,
                    store_id=STORE,
                    holder=cart,
                    lines=lines,
                    now=now,
                    hold_s=600,
                    mode="HARD",
                    new_holder=order,
                )
                await s.execute(text("SELECT pg_sleep(0.005)"))  # the order's own rows
            async with transaction(sessions) as s:
                await service.settle_hold(
                    s,
                    stack.redis,
                    store_id=STORE,
                    holder=order,
                    outcome="COMMITTED" if i % 3 else "RELEASED",
                    now=now,
                    hard_skus=sorted(lines),
                )
            load.done += 1
            if load.done >= WORKERS:
                load.busy.set()
        except StoreNotReady:
            load.refused += 1


async def _watch(stack, load: Load) -> None:
    while not load.stop.is_set():
        if not await stack.redis.exists(keys.store_ready(STORE)):
            load.missing += 1
        await asyncio.sleep(0)


async def _under_load(stack, settings, reconcile) -> Load:
    """Run ``reconcile`` (the reconciler's part) while WORKERS hammer the store."""
    engine = db.create_engine(
        stack.database_url, settings.model_copy(update={"db_pool_size": POOL})
    )
    sessions = db.session_maker(engine)
    skus = stocked_skus(stack.database_url, STORE, 3)
    for sku in skus:
        set_stock(stack.database_url, STORE, sku, 100_000)
    await load_store(stack.engine, stack.redis, STORE, why="test")
    load = Load()
    tasks = [asyncio.ensure_future(_worker(stack, sessions, load, w, skus)) for w in range(WORKERS)]
    watcher = asyncio.ensure_future(_watch(stack, load))
    try:
        await asyncio.wait_for(load.busy.wait(), 60)
        await reconcile(engine, skus)
    finally:
        load.stop.set()
        await asyncio.gather(*tasks, watcher)
        await engine.dispose()
    assert load.done > WORKERS
    await journal.drain(stack.engine, stack.redis, STORE)
    for sku in skus:  # the books agree once the load is over
        assert await redis_stock(stack.redis, STORE, sku) == pg_stock(
            stack.database_url, STORE, sku
        )
    assert await find_drift(stack.engine, stack.redis, STORE) == []
    return load


def _counts() -> tuple[float, float, float, float]:
    return (
        STORE_LOADS.labels(STORE, "drift")._value.get(),
        DRIFT_REPAIRED.labels(STORE, "stock")._value.get()
        + DRIFT_REPAIRED.labels(STORE, "hold")._value.get(),
        LOOKS.labels(STORE, "clean")._value.get() + LOOKS.labels(STORE, "busy")._value.get(),
        LOOKS.labels(STORE, "drift")._value.get(),
    )


async def test_changes_in_flight_never_pause_or_reload_a_busy_store(stack, settings) -> None:
    loads, repaired, looks, drifts = _counts()
    found: list[list[Drift]] = []
    epochs: list[object] = []

    async def reconcile(engine, skus: list[str]) -> None:
        epochs.append(await stack.redis.get(keys.store_ready(STORE)))
        for _ in range(ROUNDS):
            found.append(await reconcile_store(engine, stack.redis, STORE))
        epochs.append(await stack.redis.get(keys.store_ready(STORE)))

    load = await _under_load(stack, settings, reconcile)
    assert len(found) == ROUNDS and not any(found)
    assert load.refused == 0 and load.missing == 0
    assert epochs[0] is not None and epochs[0] == epochs[1]  # the store's epoch throughout
    after = _counts()
    assert (after[0], after[1], after[3]) == (loads, repaired, drifts)  # nothing reloaded
    assert after[2] > looks  # the quick look did catch changes in flight


async def test_real_drift_is_repaired_under_load(stack, settings) -> None:
    loads, repaired, _, _ = _counts()
    found: list[list[Drift]] = []

    async def reconcile(engine, skus: list[str]) -> None:
        await stack.redis.hincrby(keys.inventory(STORE, skus[0]), "available", 7)
        for _ in range(ROUNDS):
            found.append(await reconcile_store(engine, stack.redis, STORE))

    load = await _under_load(stack, settings, reconcile)
    repairs = [d for drift in found for d in drift]
    skus = stocked_skus(stack.database_url, STORE, 3)
    assert [(d.kind, d.key) for d in repairs] == [("stock", skus[0])]
    (d,) = repairs
    assert isinstance(d.redis, Buckets) and isinstance(d.postgres, Buckets)
    assert d.redis.available - d.postgres.available == 7
    assert _counts()[:2] == (loads + 1, repaired + 1)
    assert load.refused == 0
