"""The reservations' retention: rows of holds that ended long ago go, nothing else does,
and the books (the drift check, a rebuild of Redis) read the same after a purge."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from server.inventory import journal, service
from server.inventory.engine import Outcome
from server.inventory.reconcile import find_drift, load_store, reconcile_store
from server.inventory.retention import purge_store
from server.kit import keys
from server.kit.background import ShardedLoop
from server.kit.db import transaction
from server.kit.loops import background_loops
from server.kit.resources import resources_of
from tests.helpers import stocked_skus
from tests.server.inventory.helpers import ledger_sum, pg_stock, redis_stock

STORE = "BLR-KOR"
WEEK_S = 7 * 24 * 3600


def _rows(database_url: str) -> dict[str, dict[str, str]]:
    """The store's reservation rows: holder -> sku -> status."""
    found: dict[str, dict[str, str]] = {}
    with psycopg.connect(database_url) as conn:
        for holder, sku, status in conn.execute(
            "SELECT order_id, sku_id, status FROM inventory_reservations WHERE store_id = %s",
            (STORE,),
        ):
            found.setdefault(holder, {})[sku] = status
    return found


async def _reserve(stack: Any, holder: str, lines: dict[str, int], at: datetime, **kw: Any) -> None:
    """A hold made at ``at`` (the server clock's time then), written to the books."""
    async with transaction(stack.sessions) as s:
        await service.reserve_lines(
            s, stack.redis, store_id=STORE, holder=holder, lines=lines, now=at, hold_s=600, **kw
        )
    await journal.drain(stack.engine, stack.redis, STORE)


async def _settle(stack: Any, holder: str, outcome: Outcome, at: datetime) -> None:
    async with transaction(stack.sessions) as s:
        result = await service.settle_hold(
            s, stack.redis, store_id=STORE, holder=holder, outcome=outcome, now=at
        )
    assert result.status == "OK"
    await journal.drain(stack.engine, stack.redis, STORE)


async def _ended(stack: Any, holder: str, sku: str, outcome: Outcome, at: datetime) -> None:
    """A cart hold made at ``at`` and ended a minute later (expired: once due)."""
    await _reserve(stack, holder, {sku: 1}, at)
    await _settle(stack, holder, outcome, at + timedelta(minutes=11 if outcome == "EXPIRED" else 1))


def _purge(stack: Any, batch: int = 100) -> Any:
    return purge_store(stack.sessions, stack.clock, STORE, retention_s=WEEK_S, batch=batch)


async def test_old_ended_rows_go_young_ones_and_live_holds_of_any_age_stay(stack) -> None:
    a, b, c = stocked_skus(stack.database_url, STORE, 3, at_least=10)
    now = stack.clock.now()
    old = now - timedelta(days=10)
    await _ended(stack, "cart-old-released", a, "RELEASED", old)
    await _ended(stack, "cart-old-expired", b, "EXPIRED", old)
    await _reserve(stack, "cart-old-paid", {c: 1}, old)
    await _reserve(stack, "cart-old-paid", {c: 1}, old, mode="HARD", new_holder="order-old-paid")
    await _settle(stack, "order-old-paid", "COMMITTED", old + timedelta(minutes=2))
    await _reserve(stack, "cart-old-dropped", {b: 2}, old)
    await _reserve(stack, "cart-old-dropped", {b: 0}, old + timedelta(minutes=1))  # RELEASED, 0
    # live holds as old (neither swept nor paid): never purged, whatever their age
    await _reserve(stack, "cart-old-soft", {a: 1}, old)
    await _reserve(stack, "cart-old-hard", {b: 1}, old)
    await _reserve(stack, "cart-old-hard", {b: 1}, old, mode="HARD", new_holder="order-old-hard")
    # ended within the retention: kept
    await _ended(stack, "cart-young-released", c, "RELEASED", now - timedelta(days=6))
    await _ended(stack, "cart-young-expired", a, "EXPIRED", now - timedelta(hours=1))
    before = _rows(stack.database_url)
    stock = {sku: pg_stock(stack.database_url, STORE, sku) for sku in (a, b, c)}
    ledger = {sku: ledger_sum(stack.database_url, STORE, sku) for sku in (a, b, c)}

    assert await _purge(stack) == 4
    gone = {"cart-old-released", "cart-old-expired", "order-old-paid", "cart-old-dropped"}
    assert _rows(stack.database_url) == {h: v for h, v in before.items() if h not in gone}
    assert _rows(stack.database_url) == {
        "cart-old-soft": {a: "SOFT"},
        "order-old-hard": {b: "HARD"},
        "cart-young-released": {c: "RELEASED"},
        "cart-young-expired": {a: "EXPIRED"},
    }
    assert await _purge(stack) == 0
    # the books' quantities and ledger are not the purge's: both as they were
    assert {sku: pg_stock(stack.database_url, STORE, sku) for sku in (a, b, c)} == stock
    assert {sku: ledger_sum(stack.database_url, STORE, sku) for sku in (a, b, c)} == ledger


async def test_the_drift_check_and_a_rebuild_read_the_same_books_after_a_purge(stack) -> None:
    a, b = stocked_skus(stack.database_url, STORE, 2, at_least=10)
    now = stack.clock.now()
    old = now - timedelta(days=8)
    await _ended(stack, "cart-old", a, "EXPIRED", old)
    await _reserve(stack, "cart-old-soft", {a: 2}, old)
    await _reserve(stack, "cart-hard", {b: 1}, old)
    await _reserve(stack, "cart-hard", {b: 1}, old, mode="HARD", new_holder="order-hard")
    await _ended(stack, "cart-young", b, "EXPIRED", now - timedelta(hours=2))
    assert await find_drift(stack.engine, stack.redis, STORE) == []

    assert await _purge(stack) == 1
    assert await find_drift(stack.engine, stack.redis, STORE) == []
    assert await reconcile_store(stack.engine, stack.redis, STORE) == []
    # Redis loses the store (and the young hold's tombstone): the rebuild from the books
    # gives back the same buckets, the live holds and the tombstone of the recent end
    await stack.redis.delete(keys.store_ready(STORE), keys.hold(STORE, "cart-young"))
    await load_store(stack.engine, stack.redis, STORE)
    for sku in (a, b):
        assert await redis_stock(stack.redis, STORE, sku) == pg_stock(
            stack.database_url, STORE, sku
        )
    assert await stack.redis.hget(keys.hold(STORE, "cart-old-soft"), "_state") in (b"SOFT", "SOFT")
    assert await stack.redis.hget(keys.hold(STORE, "order-hard"), "_state") in (b"HARD", "HARD")
    young = await stack.redis.hget(keys.hold(STORE, "cart-young"), "_state")
    assert young in (b"EXPIRED", "EXPIRED")
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_a_run_deletes_at_most_its_batch_oldest_first(stack) -> None:
    skus = stocked_skus(stack.database_url, STORE, 5, at_least=10)
    old = stack.clock.now() - timedelta(days=9)
    await _reserve(stack, "cart-older", dict.fromkeys(skus[:3], 1), old - timedelta(days=1))
    await _settle(stack, "cart-older", "RELEASED", old - timedelta(days=1))
    await _reserve(stack, "cart-newer", dict.fromkeys(skus[3:], 1), old)
    await _settle(stack, "cart-newer", "RELEASED", old)

    assert await _purge(stack, batch=3) == 3
    assert set(_rows(stack.database_url)) == {"cart-newer"}
    assert await _purge(stack, batch=1) == 1
    assert await _purge(stack, batch=1) == 1
    assert await _purge(stack, batch=1) == 0
    assert _rows(stack.database_url) == {}


async def test_a_server_clock_ahead_of_the_database_keeps_the_rebuilds_tombstones(stack) -> None:
    """A sped-up clock (the demo) passes the retention in hours; a hold that ended within
    the rebuild's day of tombstones (the database's clock) is still kept."""
    (a,) = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    await _ended(stack, "cart-1", a, "EXPIRED", stack.clock.now() - timedelta(minutes=11))
    stack.clock.advance(8 * 24 * 3600)
    assert await _purge(stack) == 0
    assert _rows(stack.database_url) == {"cart-1": {a: "EXPIRED"}}


async def test_the_app_purges_each_store_in_its_fenced_retention_loop(stack, app) -> None:
    (a,) = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    old = stack.clock.now() - timedelta(days=8)
    await _ended(stack, "cart-old", a, "COMMITTED", old)
    await _ended(stack, "cart-young", a, "RELEASED", stack.clock.now())
    (loop,) = [x for x in background_loops(resources_of(app)) if x.name == "inventory-retention"]
    assert isinstance(loop, ShardedLoop)
    await loop.tick()
    assert STORE in loop.held
    assert _rows(stack.database_url) == {"cart-young": {a: "RELEASED"}}
    await loop.stop()
