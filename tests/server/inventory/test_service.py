"""Reservations through Redis (Lua) and PostgreSQL together."""

from __future__ import annotations

import uuid

import pytest

from server.inventory import journal, service
from server.inventory.engine import Outcome
from server.inventory.errors import HoldChanged, HoldNotActive, InsufficientStock, UnknownSku
from server.inventory.reconcile import find_drift
from server.inventory.sweeper import sweep_store
from server.kit import keys
from server.kit.db import transaction
from server.kit.errors import Unprocessable
from tests.server.inventory.helpers import (
    ledger_sum,
    pg_stock,
    redis_stock,
    reservation_rows,
)

STORE = "BLR-KOR"


async def _stock_skus(stack, n: int, minimum: int = 5) -> list[str]:
    import psycopg

    with psycopg.connect(stack.database_url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s AND available_qty >= %s "
                "ORDER BY sku_id LIMIT %s",
                (STORE, minimum, n),
            )
        ]


async def reserve(stack, holder: str, lines: dict[str, int], *, written: bool = True, **kw):
    """A reservation; ``written``: and the journal writer's next run after it."""
    async with transaction(stack.sessions) as s:
        result = await service.reserve_lines(
            s,
            stack.redis,
            store_id=STORE,
            holder=holder,
            lines=lines,
            now=stack.clock.now(),
            hold_s=600,
            **kw,
        )
    if written:
        await journal.drain(stack.engine, stack.redis, STORE)
    return result


async def settle(stack, holder: str, outcome: Outcome, hard_skus: list[str] | None = None):
    async with transaction(stack.sessions) as s:
        result = await service.settle_hold(
            s,
            stack.redis,
            store_id=STORE,
            holder=holder,
            outcome=outcome,
            now=stack.clock.now(),
            hard_skus=hard_skus,
        )
    await journal.drain(stack.engine, stack.redis, STORE)
    return result


async def assert_books_agree(stack) -> None:
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_soft_reserve_moves_available_to_reserved_on_both_sides(stack) -> None:
    sku = (await _stock_skus(stack, 1))[0]
    before = pg_stock(stack.database_url, STORE, sku)
    await reserve(stack, "cart-1", {sku: 3}, written=False)
    # the request wrote nothing to PostgreSQL: the hold is in Redis and in the journal
    assert pg_stock(stack.database_url, STORE, sku) == before
    assert await stack.redis.xlen(keys.inventory_journal(STORE)) == 1
    assert await journal.drain(stack.engine, stack.redis, STORE) == 1
    assert await journal.drain(stack.engine, stack.redis, STORE) == 0  # exactly once
    assert await stack.redis.xlen(keys.inventory_journal(STORE)) == 0  # trimmed once applied
    after = pg_stock(stack.database_url, STORE, sku)
    assert after == (before[0] - 3, before[1] + 3, before[2], before[3])
    assert await redis_stock(stack.redis, STORE, sku) == after
    assert reservation_rows(stack.database_url, STORE, "cart-1") == {sku: (3, "SOFT")}
    assert ledger_sum(stack.database_url, STORE, sku) == (-3, 3, 0, 0)
    await assert_books_agree(stack)


async def test_changing_a_line_adjusts_by_the_difference_and_retries_are_idempotent(
    stack,
) -> None:
    sku = (await _stock_skus(stack, 1, minimum=10))[0]
    start = pg_stock(stack.database_url, STORE, sku)[0]
    await reserve(stack, "cart-1", {sku: 5})
    await reserve(stack, "cart-1", {sku: 5})  # a retried request
    assert pg_stock(stack.database_url, STORE, sku)[0] == start - 5
    await reserve(stack, "cart-1", {sku: 2})  # down by 3
    assert pg_stock(stack.database_url, STORE, sku)[:2] == (start - 2, 2)
    await reserve(stack, "cart-1", {sku: 0})  # removal releases
    assert pg_stock(stack.database_url, STORE, sku)[:2] == (start, 0)
    assert reservation_rows(stack.database_url, STORE, "cart-1") == {sku: (0, "RELEASED")}
    assert not await stack.redis.exists(keys.hold(STORE, "cart-1"))
    await assert_books_agree(stack)


async def test_all_lines_or_none(stack) -> None:
    plenty, scarce = await _stock_skus(stack, 2)
    available = pg_stock(stack.database_url, STORE, scarce)[0]
    with pytest.raises(InsufficientStock) as err:
        await reserve(stack, "cart-1", {plenty: 1, scarce: available + 1})
    assert err.value.short == [
        {
            "sku_id": scarce,
            "requested_more": available + 1,
            "available": available,
            "held": 0,
            "reason": "short",
        }
    ]
    assert pg_stock(stack.database_url, STORE, plenty)[1] == 0  # nothing half-done
    assert reservation_rows(stack.database_url, STORE, "cart-1") == {}
    await assert_books_agree(stack)


async def test_hard_reserve_moves_the_hold_to_the_order_and_commit_removes_units(stack) -> None:
    a, b = await _stock_skus(stack, 2)
    start_a = pg_stock(stack.database_url, STORE, a)
    await reserve(stack, "cart-1", {a: 2, b: 1})
    order = str(uuid.uuid4())
    await reserve(stack, "cart-1", {a: 2, b: 1}, mode="HARD", new_holder=order)
    assert reservation_rows(stack.database_url, STORE, order) == {a: (2, "HARD"), b: (1, "HARD")}
    assert reservation_rows(stack.database_url, STORE, "cart-1") == {}
    result = await settle(stack, order, "COMMITTED")
    assert result.lines == {a: 2, b: 1}
    assert pg_stock(stack.database_url, STORE, a) == (start_a[0] - 2, 0, 0, 0)
    assert reservation_rows(stack.database_url, STORE, order)[a] == (2, "COMMITTED")
    # a late release of a committed hold is a no-op: no stock comes back
    assert (await settle(stack, order, "RELEASED")).status == "NOOP"
    assert pg_stock(stack.database_url, STORE, a)[0] == start_a[0] - 2
    await assert_books_agree(stack)


@pytest.mark.parametrize("told", [["a", "b"], ["a"]])
async def test_a_hard_hold_settled_by_the_skus_its_maker_knows_is_checked_by_the_script(
    stack, told: list[str]
) -> None:
    """The caller names the HARD hold's SKUs instead of reading the hold first; wrong
    ones (the hold changed) make the script answer RETRY and the hold is read."""
    a, b = await _stock_skus(stack, 2)
    named = {"a": a, "b": b}
    await reserve(stack, "cart-1", {a: 2, b: 1})
    order = str(uuid.uuid4())
    await reserve(stack, "cart-1", {a: 2, b: 1}, mode="HARD", new_holder=order)
    result = await settle(stack, order, "COMMITTED", hard_skus=[named[k] for k in told])
    assert result.status == "OK" and result.lines == {a: 2, b: 1}
    assert result.previous_state == "HARD" and result.previous_expires_at is not None
    assert reservation_rows(stack.database_url, STORE, order) == {
        a: (2, "COMMITTED"),
        b: (1, "COMMITTED"),
    }
    await assert_books_agree(stack)


async def test_checkout_retried_after_the_hold_moved_does_not_touch_it(stack) -> None:
    (a,) = await _stock_skus(stack, 1)
    order = str(uuid.uuid4())
    await reserve(stack, "cart-1", {a: 2})
    await reserve(stack, "cart-1", {a: 2}, mode="HARD", new_holder=order)
    with pytest.raises(HoldNotActive) as err:
        await reserve(stack, "cart-1", {a: 2}, mode="HARD", new_holder=order)
    assert err.value.extra["state"] == "MOVED"
    assert pg_stock(stack.database_url, STORE, a)[1] == 2
    await assert_books_agree(stack)


async def test_a_move_takes_the_hold_only_as_its_caller_read_it(stack) -> None:
    """A cart's line changes take no lock against its checkout: a move given lines the
    hold no longer has (a line added, set or removed since it was read) is refused and
    nothing moves; given the hold as it is, it moves."""
    a, b, c = await _stock_skus(stack, 3)
    await reserve(stack, "cart-1", {a: 2, c: 1})
    await reserve(stack, "cart-1", {b: 1, c: 0})  # after the checkout read {a: 2, c: 1}
    before = [await redis_stock(stack.redis, STORE, s) for s in (a, b, c)]
    order = str(uuid.uuid4())
    for read in ({a: 2, c: 1}, {a: 2}, {a: 1, b: 1}, {a: 2, b: 1, c: 1}):
        with pytest.raises(HoldChanged):
            await reserve(stack, "cart-1", read, mode="HARD", new_holder=order)
    assert [await redis_stock(stack.redis, STORE, s) for s in (a, b, c)] == before
    held = await stack.redis.hgetall(keys.hold(STORE, "cart-1"))
    assert {k: v for k, v in held.items() if not k.startswith("_")} == {a: "2", b: "1"}
    assert held["_state"] == "SOFT" and not await stack.redis.exists(keys.hold(STORE, order))
    await reserve(stack, "cart-1", {a: 2, b: 1}, mode="HARD", new_holder=order)
    assert reservation_rows(stack.database_url, STORE, order) == {a: (2, "HARD"), b: (1, "HARD")}
    await assert_books_agree(stack)


async def test_a_change_after_the_move_is_refused_until_the_cart_is_given_back(stack) -> None:
    """The move's mark refuses a SOFT change of the cart (a line change racing its
    checkout) and nothing moves; once the order gave the hold back, a change naming the
    mark as one it starts over from (the cart reopened) holds again."""
    (a,) = await _stock_skus(stack, 1)
    order = str(uuid.uuid4())
    await reserve(stack, "cart-1", {a: 2})
    await reserve(stack, "cart-1", {a: 2}, mode="HARD", new_holder=order)
    before = await redis_stock(stack.redis, STORE, a)
    with pytest.raises(HoldNotActive) as err:
        await reserve(stack, "cart-1", {a: 3})
    assert err.value.extra["state"] == "MOVED"
    assert await redis_stock(stack.redis, STORE, a) == before
    assert (await stack.redis.hgetall(keys.hold(STORE, order)))[a] == "2"
    assert (await settle(stack, order, "RELEASED")).status == "OK"
    await reserve(stack, "cart-1", {a: 2}, over=("MOVED",))
    assert reservation_rows(stack.database_url, STORE, "cart-1")[a] == (2, "SOFT")
    await assert_books_agree(stack)


async def test_release_returns_exactly_once(stack) -> None:
    (a,) = await _stock_skus(stack, 1)
    start = pg_stock(stack.database_url, STORE, a)
    await reserve(stack, "cart-1", {a: 4})
    assert (await settle(stack, "cart-1", "RELEASED")).status == "OK"
    assert (await settle(stack, "cart-1", "RELEASED")).status == "NOOP"
    assert (await settle(stack, "never-existed", "RELEASED")).status == "NOOP"
    assert pg_stock(stack.database_url, STORE, a) == start
    with pytest.raises(HoldNotActive):  # a released cart cannot be topped up again
        await reserve(stack, "cart-1", {a: 1})
    await assert_books_agree(stack)


async def test_expired_holds_return_stock_by_the_server_clock(stack) -> None:
    a, b = await _stock_skus(stack, 2)
    start = pg_stock(stack.database_url, STORE, a)
    await reserve(stack, "cart-old", {a: 1})
    stack.clock.advance(300)
    await reserve(stack, "cart-new", {b: 1})
    assert await sweep_store(stack.sessions, stack.redis, stack.clock, STORE) == 0
    stack.clock.advance(301)  # cart-old is 601 s old, cart-new 301 s
    assert await sweep_store(stack.sessions, stack.redis, stack.clock, STORE) == 1
    await journal.drain(stack.engine, stack.redis, STORE)  # a soft hold's expiry is journaled
    assert pg_stock(stack.database_url, STORE, a) == start
    assert reservation_rows(stack.database_url, STORE, "cart-old") == {a: (1, "EXPIRED")}
    assert reservation_rows(stack.database_url, STORE, "cart-new")[b] == (1, "SOFT")
    await assert_books_agree(stack)


async def test_touching_a_cart_extends_its_hold(stack) -> None:
    (a,) = await _stock_skus(stack, 1)
    await reserve(stack, "cart-1", {a: 1})
    stack.clock.advance(500)
    await reserve(stack, "cart-1", {a: 2})
    stack.clock.advance(200)
    assert await sweep_store(stack.sessions, stack.redis, stack.clock, STORE) == 0


@pytest.mark.parametrize("lines", [{"X": -1}, {"X": 51}, {}, {"X": 1.5}])
async def test_bad_quantities_are_refused_before_anything_moves(stack, lines) -> None:
    (a,) = await _stock_skus(stack, 1)
    lines = {a if k == "X" else k: v for k, v in lines.items()}
    before = pg_stock(stack.database_url, STORE, a)
    with pytest.raises(Unprocessable):
        await reserve(stack, "cart-1", lines)
    assert pg_stock(stack.database_url, STORE, a) == before
    await assert_books_agree(stack)


async def test_unknown_sku_is_refused_and_nothing_moves(stack) -> None:
    (a,) = await _stock_skus(stack, 1)
    before = pg_stock(stack.database_url, STORE, a)
    with pytest.raises(UnknownSku):
        await reserve(stack, "cart-1", {a: 1, "SKU99999": 1})
    assert pg_stock(stack.database_url, STORE, a) == before
    await assert_books_agree(stack)


async def test_a_failed_postgres_write_puts_redis_back(stack) -> None:
    a, b = await _stock_skus(stack, 2)
    await reserve(stack, "cart-1", {a: 1})
    before = await redis_stock(stack.redis, STORE, a), await redis_stock(stack.redis, STORE, b)
    with pytest.raises(RuntimeError):
        async with transaction(stack.sessions) as s:
            await service.reserve_lines(
                s,
                stack.redis,
                store_id=STORE,
                holder="cart-1",
                lines={a: 3, b: 2},
                now=stack.clock.now(),
                hold_s=600,
            )
            raise RuntimeError("the order insert failed after the reservation")
    after = await redis_stock(stack.redis, STORE, a), await redis_stock(stack.redis, STORE, b)
    assert after == before
    held = await stack.redis.hgetall(keys.hold(STORE, "cart-1"))
    assert held[a] == "1" and b not in held and held["_state"] == "SOFT"
    assert int(await stack.redis.get(keys.inflight(STORE))) == 0
    await assert_books_agree(stack)
