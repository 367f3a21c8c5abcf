"""SOFT reservations of one store made in one event-loop turn share one script call: each
caller still gets its own outcome, as if it had called alone, in the order they came;
nothing is oversold and the books are exact once the writer drained the journal."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.inventory import engine, journal, service
from server.inventory.errors import (
    HoldNotActive,
    InsufficientStock,
    StoreNotReady,
    UnknownSku,
)
from server.inventory.reconcile import find_drift, load_store
from server.kit import db, keys
from server.kit import redis as qredis
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.db import transaction
from tests.helpers import stocked_skus
from tests.server.inventory.helpers import (
    ledger_sum,
    pg_stock,
    redis_stock,
    reservation_rows,
    set_stock,
)

STORE = "BLR-KOR"
UNKNOWN = "NO-SUCH-SKU"


async def _stocked(stack, available: dict[str, int]) -> None:
    """Exact stock for the SKUs, loaded into Redis again."""
    await journal.drain(stack.engine, stack.redis, STORE)
    for sku, units in available.items():
        set_stock(stack.database_url, STORE, sku, units)
    await stack.redis.delete(keys.store_ready(STORE))
    await load_store(stack.engine, stack.redis, STORE)


async def _soft(sessions, redis, clock, holder: str, lines: dict[str, int]):
    async with transaction(sessions) as s:
        return await _hold(s, redis, holder, lines, clock.now())


def _hold(session, redis, holder: str, lines: dict[str, int], now: datetime):
    """The holder's SOFT lines in the caller's unit of work, held 10 minutes from ``now``."""
    return service.reserve_lines(
        session, redis, store_id=STORE, holder=holder, lines=lines, now=now, hold_s=600
    )


async def test_one_turn_of_soft_holds_each_get_their_own_outcome(stack) -> None:
    a, b = stocked_skus(stack.database_url, STORE, 2)
    await _stocked(stack, {a: 3, b: 3})
    ledger_before = {s: ledger_sum(stack.database_url, STORE, s) for s in (a, b)}
    hard = f"order-{uuid.uuid4().hex[:8]}"
    async with transaction(stack.sessions) as s:  # a hold already at checkout
        await service.reserve_lines(
            s,
            stack.redis,
            store_id=STORE,
            holder=hard,
            lines={b: 1},
            now=stack.clock.now(),
            hold_s=600,
            mode="HARD",
        )
    asks = [
        ("c1", {a: 1}),
        ("c2", {a: 1, b: 1}),
        ("c3", {a: 2}),  # one unit of a left: short
        ("c4", {a: 1, UNKNOWN: 1}),  # a line not stocked: nothing held
        ("c5", {b: 1}),  # the last unit of b
        ("c6", {b: 1}),  # none left
        (hard, {b: 2}),  # a HARD hold is not a cart's to change
        ("c1", {a: 2}),  # c1 again, after its first change: takes a's last unit
    ]
    done = await asyncio.gather(
        *(_soft(stack.sessions, stack.redis, stack.clock, h, lines) for h, lines in asks),
        return_exceptions=True,
    )
    assert [type(d).__name__ for d in done] == [
        "Reserved",
        "Reserved",
        "InsufficientStock",
        "UnknownSku",
        "Reserved",
        "InsufficientStock",
        "HoldNotActive",
        "Reserved",
    ]
    assert isinstance(done[2], InsufficientStock) and isinstance(done[5], InsufficientStock)
    assert done[2].extra["lines"][0]["sku_id"] == a
    assert isinstance(done[3], UnknownSku) and UNKNOWN in str(done[3])
    assert isinstance(done[6], HoldNotActive)
    first, again = done[0], done[7]
    assert not isinstance(first, BaseException) and not isinstance(again, BaseException)
    assert [(c.old_qty, c.new_qty) for c in first.lines] == [(0, 1)]
    assert [(c.old_qty, c.new_qty) for c in again.lines] == [(1, 2)]
    # a: c1 2 + c2 1, all 3; b: the order 1 + c2 1 + c5 1, all 3
    assert await redis_stock(stack.redis, STORE, a) == (0, 3, 0, 0)
    assert await redis_stock(stack.redis, STORE, b) == (0, 3, 0, 0)
    await journal.drain(stack.engine, stack.redis, STORE)
    for sku in (a, b):
        assert pg_stock(stack.database_url, STORE, sku) == await redis_stock(
            stack.redis, STORE, sku
        )
        assert min(pg_stock(stack.database_url, STORE, sku)) >= 0
    moved = tuple(
        x - y
        for x, y in zip(ledger_sum(stack.database_url, STORE, a), ledger_before[a], strict=True)
    )
    assert moved == (-3, 3, 0, 0)
    assert reservation_rows(stack.database_url, STORE, "c1") == {a: (2, "SOFT")}
    assert reservation_rows(stack.database_url, STORE, "c2") == {a: (1, "SOFT"), b: (1, "SOFT")}
    assert reservation_rows(stack.database_url, STORE, "c3") == {}
    assert reservation_rows(stack.database_url, STORE, "c4") == {}
    assert await find_drift(stack.engine, stack.redis, STORE) == []


class Refused(Exception):
    """The rest of a caller's unit of work failed after its hold was made."""


async def test_a_failed_unit_of_work_undoes_its_own_hold_only(stack) -> None:
    (a,) = stocked_skus(stack.database_url, STORE, 1)
    await _stocked(stack, {a: 5})

    async def failing() -> None:
        async with transaction(stack.sessions) as s:
            await _hold(s, stack.redis, "undone", {a: 2}, stack.clock.now())
            raise Refused

    done = await asyncio.gather(
        _soft(stack.sessions, stack.redis, stack.clock, "kept", {a: 1}),
        failing(),
        return_exceptions=True,
    )
    assert isinstance(done[1], Refused) and not isinstance(done[0], BaseException)
    assert await redis_stock(stack.redis, STORE, a) == (4, 1, 0, 0)
    assert await engine.read_hold(stack.redis, store_id=STORE, holder="undone") == {}
    await journal.drain(stack.engine, stack.redis, STORE)
    assert pg_stock(stack.database_url, STORE, a) == (4, 1, 0, 0)
    assert reservation_rows(stack.database_url, STORE, "kept") == {a: (1, "SOFT")}
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_an_undo_leaves_a_line_changed_in_between_as_it_is(stack) -> None:
    """A cart's line changes take no lock: a change of the same line can land between a
    change's script and its rollback. The rollback sets back only the lines that still
    hold what it set (b); the line changed since (a) keeps the later change, and the
    books agree with Redis."""
    a, b = stocked_skus(stack.database_url, STORE, 2)
    await _stocked(stack, {a: 10, b: 10})
    await _soft(stack.sessions, stack.redis, stack.clock, "cart", {a: 1})
    later = stack.clock.now() + timedelta(seconds=5)

    async with asyncio.timeout(30):
        with pytest.raises(Refused):
            async with transaction(stack.sessions) as s:
                await _hold(s, stack.redis, "cart", {a: 3, b: 2}, stack.clock.now())
                async with transaction(stack.sessions) as other:  # lands in between
                    await _hold(other, stack.redis, "cart", {a: 5}, later)
                raise Refused

    hold = await engine.read_hold(stack.redis, store_id=STORE, holder="cart")
    assert {sku: q for sku, q in hold.items() if not sku.startswith("_")} == {a: "5"}
    expires = (later + timedelta(seconds=600)).timestamp()  # the later change's
    assert float(hold["_exp"]) == pytest.approx(expires)
    assert await stack.redis.zscore(keys.hold_expiry(STORE), "cart") == pytest.approx(expires)
    assert await redis_stock(stack.redis, STORE, a) == (5, 5, 0, 0)
    assert await redis_stock(stack.redis, STORE, b) == (10, 0, 0, 0)
    await journal.drain(stack.engine, stack.redis, STORE)
    assert reservation_rows(stack.database_url, STORE, "cart")[a] == (5, "SOFT")
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_a_batch_on_an_unloaded_store_is_refused_then_loaded_by_the_service(stack) -> None:
    (a,) = stocked_skus(stack.database_url, STORE, 1)
    await _stocked(stack, {a: 5})
    await stack.redis.delete(keys.store_ready(STORE))
    now = stack.clock.now().timestamp()
    refused = await asyncio.gather(
        *(
            engine.reserve(
                stack.redis,
                store_id=STORE,
                holder=f"c{i}",
                lines={a: 1},
                mode="SOFT",
                expires_at=now + 600,
                now=now,
            )
            for i in range(3)
        ),
        return_exceptions=True,
    )
    assert [type(r) for r in refused] == [StoreNotReady] * 3
    assert await stack.redis.xlen(keys.inventory_journal(STORE)) == 0
    await asyncio.gather(
        *(_soft(stack.sessions, stack.redis, stack.clock, f"c{i}", {a: 1}) for i in range(3))
    )
    await journal.drain(stack.engine, stack.redis, STORE)
    assert pg_stock(stack.database_url, STORE, a) == (2, 3, 0, 0)
    assert await redis_stock(stack.redis, STORE, a) == (2, 3, 0, 0)


# a request: (cart number, {sku index or -1 for an unknown SKU: wanted quantity})
REQUESTS = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.dictionaries(st.integers(-1, 2), st.integers(0, 4), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=12,
)


def test_a_turn_of_soft_holds_ends_as_the_same_calls_one_by_one(stack) -> None:
    """Random carts asking at once: each outcome is the one the same asks would get one
    after the other (a model), the stock never goes negative, the books end exact."""
    skus = stocked_skus(stack.database_url, STORE, 3)
    for sku in skus:
        set_stock(stack.database_url, STORE, sku, 5)
    loop = asyncio.new_event_loop()
    cfg = Settings(
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        db_pool_size=4,
        db_max_overflow=12,
    )
    pg_engine = db.create_engine(stack.database_url, cfg)
    sessions = db.session_maker(pg_engine)

    async def client():
        return qredis.create_redis(stack.redis_url)

    redis = loop.run_until_complete(client())
    clock = Clock()
    loop.run_until_complete(redis.delete(keys.store_ready(STORE)))
    loop.run_until_complete(load_store(pg_engine, redis, STORE))
    start = {s: pg_stock(stack.database_url, STORE, s) for s in skus}
    ledger = {s: ledger_sum(stack.database_url, STORE, s) for s in skus}

    async def round_of(requests: list[tuple[int, dict[int, int]]]) -> None:
        tag = uuid.uuid4().hex[:8]
        available = {s: start[s][0] for s in skus}
        held: dict[int, dict[str, int]] = {}
        expected: list[str] = []
        holds: list[dict[str, int]] = []  # each reserved cart's hold after its ask
        for cart, ask in requests:  # the model: one after the other
            lines = {skus[i] if i >= 0 else UNKNOWN: q for i, q in ask.items()}
            mine = held.setdefault(cart, {})
            if UNKNOWN in lines:
                expected.append("UnknownSku")
            elif any(q - mine.get(s, 0) > available[s] for s, q in lines.items()):
                expected.append("InsufficientStock")
            else:
                for s, q in lines.items():
                    available[s] -= q - mine.get(s, 0)
                    mine[s] = q
                expected.append("Reserved")
                holds.append({s: q for s, q in mine.items() if q > 0})
        asks = [
            (f"{tag}-{cart}", {skus[i] if i >= 0 else UNKNOWN: q for i, q in ask.items()})
            for cart, ask in requests
        ]
        done = await asyncio.gather(
            *(_soft(sessions, redis, clock, h, lines) for h, lines in asks),
            return_exceptions=True,
        )
        assert [type(d).__name__ for d in done] == expected
        # each answer carries its cart's hold as that ask left it (a batch's too)
        assert [d.held for d in done if isinstance(d, engine.Reserved)] == holds
        for s in skus:
            assert (await redis_stock(redis, STORE, s))[0] == available[s] >= 0
        # every cart lets go (as an abandoned cart's expiry would), one call per cart
        await asyncio.gather(
            *(
                _soft(sessions, redis, clock, f"{tag}-{cart}", dict.fromkeys(lines, 0))
                for cart, lines in held.items()
                if any(lines.values())
            )
        )
        await journal.drain(pg_engine, redis, STORE)
        for s in skus:
            assert pg_stock(stack.database_url, STORE, s) == start[s]
            assert await redis_stock(redis, STORE, s) == start[s]
            assert ledger_sum(stack.database_url, STORE, s) == ledger[s]  # held, let go

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(REQUESTS)
    def check(requests: list[tuple[int, dict[int, int]]]) -> None:
        loop.run_until_complete(round_of(requests))

    try:
        check()
        assert loop.run_until_complete(find_drift(pg_engine, redis, STORE)) == []
    finally:
        loop.run_until_complete(redis.aclose())
        loop.run_until_complete(pg_engine.dispose())
        loop.close()
