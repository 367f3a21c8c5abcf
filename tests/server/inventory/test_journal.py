"""The soft-hold journal: exactly once into the books, summed per SKU, a crashed or fenced
writer applies nothing, and a rebuild waits for the PostgreSQL writes in flight."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from server.inventory import journal, service
from server.inventory.reconcile import find_drift, load_store
from server.kit import fencing, keys
from server.kit.db import transaction
from tests.helpers import stocked_skus, wait_until
from tests.server.inventory.helpers import ledger_sum, pg_stock, redis_stock, reservation_rows

STORE = "BLR-KOR"


def _waiting_for_the_store_lock(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    return bool(row and row[0])


async def _soft(stack, holder: str, lines: dict[str, int]) -> None:
    async with transaction(stack.sessions) as s:
        await service.reserve_lines(
            s,
            stack.redis,
            store_id=STORE,
            holder=holder,
            lines=lines,
            now=stack.clock.now(),
            hold_s=600,
        )


async def test_a_batch_sums_deltas_per_sku_and_writes_one_ledger_row_per_movement(stack) -> None:
    a, b = stocked_skus(stack.database_url, STORE, 2, at_least=10)
    start_a, start_b = (
        pg_stock(stack.database_url, STORE, a),
        pg_stock(stack.database_url, STORE, b),
    )
    ledger_a = ledger_sum(stack.database_url, STORE, a)
    await _soft(stack, "cart-1", {a: 3, b: 1})
    await _soft(stack, "cart-2", {a: 2})
    await _soft(stack, "cart-1", {a: 1, b: 1})  # a down by 2
    async with transaction(stack.sessions) as s:
        await service.settle_hold(
            s,
            stack.redis,
            store_id=STORE,
            holder="cart-2",
            outcome="RELEASED",
            now=stack.clock.now(),
        )
    assert pg_stock(stack.database_url, STORE, a) == start_a  # nothing written yet
    assert await journal.drain(stack.engine, stack.redis, STORE) == 4
    assert pg_stock(stack.database_url, STORE, a)[:2] == (start_a[0] - 1, start_a[1] + 1)
    assert pg_stock(stack.database_url, STORE, b)[:2] == (start_b[0] - 1, start_b[1] + 1)
    with psycopg.connect(stack.database_url) as conn:
        movements = conn.execute(
            "SELECT movement, d_available, reference FROM stock_ledger WHERE store_id = %s "
            "AND sku_id = %s ORDER BY entry_id DESC LIMIT 4",
            (STORE, a),
        ).fetchall()
    assert sorted(movements) == sorted(
        [("RESERVE", -3, "cart-1"), ("RESERVE", -2, "cart-2"), ("RELEASE", 2, "cart-1"),
         ("RELEASE", 2, "cart-2")]
    )  # fmt: skip
    moved = ledger_sum(stack.database_url, STORE, a)
    assert (moved[0] - ledger_a[0], moved[1] - ledger_a[1]) == (-1, 1)
    assert reservation_rows(stack.database_url, STORE, "cart-1") == {a: (1, "SOFT"), b: (1, "SOFT")}
    assert reservation_rows(stack.database_url, STORE, "cart-2") == {a: (2, "RELEASED")}
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_a_line_released_and_held_again_keeps_one_row_with_the_holds_expiry(
    stack,
) -> None:
    """The books keep one row per line: a RELEASED row held again is SOFT again."""
    a, b = stocked_skus(stack.database_url, STORE, 2, at_least=10)
    await _soft(stack, "cart-1", {a: 2, b: 1})
    await _soft(stack, "cart-1", {a: 0})
    assert await journal.drain(stack.engine, stack.redis, STORE) == 2
    assert reservation_rows(stack.database_url, STORE, "cart-1") == {
        a: (0, "RELEASED"), b: (1, "SOFT")
    }  # fmt: skip
    await _soft(stack, "cart-1", {a: 1})  # a new line to Redis, a RELEASED row to the books
    assert await journal.drain(stack.engine, stack.redis, STORE) == 1
    assert reservation_rows(stack.database_url, STORE, "cart-1") == {
        a: (1, "SOFT"), b: (1, "SOFT")
    }  # fmt: skip
    with psycopg.connect(stack.database_url) as conn:
        expiries = conn.execute(
            "SELECT DISTINCT expires_at FROM inventory_reservations WHERE store_id = %s "
            "AND order_id = 'cart-1' AND status = 'SOFT'",
            (STORE,),
        ).fetchall()
    assert len(expiries) == 1  # b took the hold's latest expiry too
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_a_new_holds_entry_says_so_and_every_line_takes_the_holds_expiry(stack) -> None:
    """A new hold's entry says it is new (the writer then skips looking for its other
    lines in the books: there are none); a later change of the hold, in the same batch or
    the next, still moves each of its lines to the hold's latest expiry."""
    a, b, c = stocked_skus(stack.database_url, STORE, 3, at_least=10)
    await _soft(stack, "cart-n", {a: 1})
    stack.clock.advance(30)
    await _soft(stack, "cart-n", {b: 1})  # the same batch: not new
    entries = await stack.redis.xrange(keys.inventory_journal(STORE))
    assert [e[1]["n"] for e in entries] == ["1", "0"]
    assert await journal.drain(stack.engine, stack.redis, STORE) == 2
    stack.clock.advance(30)
    await _soft(stack, "cart-n", {c: 1})  # the next batch: a and b move to its expiry
    await _soft(stack, "cart-m", {c: 1})
    assert await journal.drain(stack.engine, stack.redis, STORE) == 2
    with psycopg.connect(stack.database_url) as conn:
        expiries = conn.execute(
            "SELECT order_id, count(*), count(DISTINCT expires_at) "
            "FROM inventory_reservations WHERE store_id = %s AND status = 'SOFT' "
            "GROUP BY order_id ORDER BY order_id",
            (STORE,),
        ).fetchall()
    assert expiries == [("cart-m", 1, 1), ("cart-n", 3, 1)]
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_the_writers_rows_have_two_indexes_their_line_key_and_age(stack) -> None:
    """Each index costs an entry a row in the writer's ~1,000-row upserts (migration 0022):
    the line's key, and the retention purge's (store, created_at) (0023: a column no
    update changes), and a row still gets its id from the default."""
    (a,) = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    await _soft(stack, "cart-ix", {a: 1})
    assert await journal.drain(stack.engine, stack.redis, STORE) == 1
    with psycopg.connect(stack.database_url) as conn:
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'inventory_reservations'"
        ).fetchall()
        ids = conn.execute(
            "SELECT reservation_id FROM inventory_reservations WHERE store_id = %s "
            "AND order_id = 'cart-ix'",
            (STORE,),
        ).fetchall()
    assert sorted(i[0].split(" USING ")[1] for i in indexes) == [
        "btree (store_id, created_at)",
        "btree (store_id, order_id, sku_id)",
    ]
    assert len(ids) == 1 and ids[0][0] is not None


async def test_a_writer_that_dies_mid_batch_applies_nothing_and_the_next_applies_once(
    stack,
) -> None:
    (a,) = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    start = pg_stock(stack.database_url, STORE, a)
    await _soft(stack, "cart-1", {a: 2})
    with pytest.raises(RuntimeError):
        async with transaction(stack.sessions) as s:
            assert await journal.apply_pending(s, stack.redis, STORE) == 1
            raise RuntimeError("the writer died before its commit")
    assert pg_stock(stack.database_url, STORE, a) == start
    assert await journal.drain(stack.engine, stack.redis, STORE) == 1
    assert await journal.drain(stack.engine, stack.redis, STORE) == 0
    assert pg_stock(stack.database_url, STORE, a)[:2] == (start[0] - 2, start[1] + 2)


async def test_checkout_writes_the_carts_pending_soft_holds_before_the_order_takes_them(
    stack,
) -> None:
    (a,) = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    start = pg_stock(stack.database_url, STORE, a)
    await _soft(stack, "cart-1", {a: 2})  # not applied: the writer has not run
    order = str(uuid.uuid4())
    async with transaction(stack.sessions) as s:
        await service.reserve_lines(
            s,
            stack.redis,
            store_id=STORE,
            holder="cart-1",
            lines={a: 2},
            now=stack.clock.now(),
            hold_s=600,
            mode="HARD",
            new_holder=order,
        )
    assert pg_stock(stack.database_url, STORE, a)[:2] == (start[0] - 2, start[1] + 2)
    assert reservation_rows(stack.database_url, STORE, order) == {a: (2, "HARD")}
    assert reservation_rows(stack.database_url, STORE, "cart-1") == {}
    assert await journal.drain(stack.engine, stack.redis, STORE) == 0  # once, by checkout
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_a_rebuild_waits_for_a_write_in_flight_and_sees_it(stack) -> None:
    """Issue 18 point 2's cause: Redis flushed while a change is between its Redis and
    PostgreSQL writes. The rebuild must wait for that transaction, then load what it
    wrote, so Redis never admits what PostgreSQL refuses."""
    (a,) = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    start = pg_stock(stack.database_url, STORE, a)
    rebuilt = None
    async with transaction(stack.sessions) as s:
        await service.reserve_lines(
            s,
            stack.redis,
            store_id=STORE,
            holder="order-1",
            lines={a: 3},
            now=stack.clock.now(),
            hold_s=600,
            mode="HARD",
        )
        await stack.redis.flushdb()  # this worker's database only (a shared server has others)
        rebuilt = asyncio.create_task(load_store(stack.engine, stack.redis, STORE))
        await wait_until(lambda: _waiting_for_the_store_lock(stack.database_url), timeout=30)
        assert not rebuilt.done()
        assert not await stack.redis.exists(keys.store_ready(STORE))
    await asyncio.wait_for(rebuilt, 30)
    assert await redis_stock(stack.redis, STORE, a) == (start[0] - 3, start[1] + 3, 0, 0)
    assert await redis_stock(stack.redis, STORE, a) == pg_stock(stack.database_url, STORE, a)
    assert (await stack.redis.hgetall(keys.hold(STORE, "order-1")))[a] == "3"


async def test_a_batch_the_books_refuse_is_applied_entry_by_entry_and_the_store_reloaded(
    stack,
) -> None:
    """Redis drifted ahead of the books (e.g. an AOF rollback): what the books refuse is
    dropped, the rest of the batch still reaches them, and the store is loaded again."""
    a, b = stocked_skus(stack.database_url, STORE, 2, at_least=10)
    start_b = pg_stock(stack.database_url, STORE, b)
    with psycopg.connect(stack.database_url) as conn:  # the books lose a's stock behind Redis
        conn.execute(
            "UPDATE store_inventory SET available_qty = 0 WHERE store_id = %s AND sku_id = %s",
            (STORE, a),
        )
    await _soft(stack, "cart-1", {a: 2})
    await _soft(stack, "cart-2", {b: 1})
    assert await journal.drain(stack.engine, stack.redis, STORE) == 2
    assert pg_stock(stack.database_url, STORE, a)[:2] == (0, 0)  # refused, nothing moved
    assert pg_stock(stack.database_url, STORE, b)[:2] == (start_b[0] - 1, start_b[1] + 1)
    assert reservation_rows(stack.database_url, STORE, "cart-2") == {b: (1, "SOFT")}
    assert reservation_rows(stack.database_url, STORE, "cart-1") == {}
    assert not await stack.redis.exists(keys.store_ready(STORE))  # to be loaded again


async def test_the_writer_starts_at_the_hint_and_skips_what_the_books_already_hold(
    stack,
) -> None:
    """The writer reads after the applied-id hint; entries the offset already covers (a
    writer whose trim and hint were lost after its commit) are not applied again."""
    a, b = stocked_skus(stack.database_url, STORE, 2, at_least=10)
    start_a, start_b = (
        pg_stock(stack.database_url, STORE, a),
        pg_stock(stack.database_url, STORE, b),
    )
    await _soft(stack, "cart-1", {a: 2})
    await _soft(stack, "cart-2", {a: 1})
    async with AsyncSession(stack.engine, expire_on_commit=False) as s:
        assert await journal.apply_pending(s, stack.redis, STORE) == 2
        await s.commit()  # the commit, without the hooks that trim and move the hint
    await stack.redis.delete(keys.journal_applied(STORE))
    await _soft(stack, "cart-3", {b: 1})
    assert await journal.write_stores(stack.engine, stack.redis, [STORE]) == 1
    assert pg_stock(stack.database_url, STORE, a)[:2] == (start_a[0] - 3, start_a[1] + 3)
    assert pg_stock(stack.database_url, STORE, b)[:2] == (start_b[0] - 1, start_b[1] + 1)
    assert await stack.redis.xlen(keys.inventory_journal(STORE)) == 0  # trimmed
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_a_hint_ahead_of_the_books_sends_the_writer_to_the_offset(stack) -> None:
    (a,) = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    start = pg_stock(stack.database_url, STORE, a)
    await _soft(stack, "cart-1", {a: 2})
    await stack.redis.set(keys.journal_applied(STORE), "99999999999999-0")
    assert await journal.write_stores(stack.engine, stack.redis, [STORE]) == 1
    assert pg_stock(stack.database_url, STORE, a)[:2] == (start[0] - 2, start[1] + 2)
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_a_writer_that_lost_its_lease_applies_nothing(stack) -> None:
    """The writer's commit is fenced: once a newer holder of the lease has written, the
    old holder's batch is rolled back; the new holder applies it, once."""
    (a,) = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    start = pg_stock(stack.database_url, STORE, a)
    await _soft(stack, "cart-1", {a: 2})
    newer = fencing.Fence("inventory-journal", 2, "replica-b")
    async with transaction(stack.sessions) as s:
        await fencing.check(s, newer)  # the newer holder wrote first
    for write in (journal.write_stores, _drain_all):
        entered = fencing.enter(fencing.Fence("inventory-journal", 1, "replica-a"))
        try:
            with pytest.raises(fencing.Fenced):
                await write(stack.engine, stack.redis, [STORE])
        finally:
            fencing.leave(entered)
        assert pg_stock(stack.database_url, STORE, a) == start
    entered = fencing.enter(newer)
    try:
        assert await journal.write_stores(stack.engine, stack.redis, [STORE]) == 1
    finally:
        fencing.leave(entered)
    assert pg_stock(stack.database_url, STORE, a)[:2] == (start[0] - 2, start[1] + 2)
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def _drain_all(engine, redis, store_ids: list[str]) -> int:
    return sum([await journal.drain(engine, redis, s) for s in store_ids])


async def test_a_soft_hold_down_across_the_reorder_level_emits_one_low_stock_event(
    stack,
) -> None:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT sku_id, reorder_level, available_qty FROM store_inventory "
            "WHERE store_id = %s AND available_qty BETWEEN reorder_level + 2 AND "
            "reorder_level + 50 ORDER BY sku_id LIMIT 1",
            (STORE,),
        ).fetchone()
    assert row is not None
    sku, level, available = row
    await _soft(stack, "cart-1", {sku: available - level})
    await _soft(stack, "cart-2", {sku: 1})  # below the level already: no second event
    assert await journal.write_stores(stack.engine, stack.redis, [STORE]) == 2
    with psycopg.connect(stack.database_url) as conn:
        events = conn.execute(
            "SELECT payload FROM outbox WHERE topic = 'inventory.low_stock' AND aggregate_id = %s",
            (sku,),
        ).fetchall()
    assert [e[0]["available"] for e in events] == [level - 1]
