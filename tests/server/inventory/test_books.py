"""The books' balance (``server.inventory.books``): a stock row's reserved units that
disagree with its open holds are found by the reconciler's full pass and mended from the
holds, with the ledger's trail, and Redis follows; a hold the shelf cannot cover is left
and reported; a balanced store is left alone, also while carts change around the pass."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from server.events.service import Event
from server.inventory import books, journal, service
from server.inventory.books import MENDED_REASON
from server.inventory.reconcile import find_drift
from server.inventory.worker import reconcile_and_report
from server.kit.config import Settings
from server.kit.db import transaction
from server.ops.alerts import _drift
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import LiveServer, Services, settings_for
from tests.helpers import login, stocked_skus
from tests.server.inventory.helpers import held_units, ledger_sum, pg_stock, redis_stock

STORE = "BLR-KOR"
POOL = 4  # the live server's connections; more shoppers than that at once
SHOPPERS, CARTS_EACH = 12, 3  # a customer holds at most 3 carts (QC_CART_MAX_HOLDING)
PASSES = 5


@pytest.fixture
def settings(services: Services) -> Settings:
    # the test runs the passes itself (no reconciler of the app's beside them)
    return settings_for(services, background_loops=False, db_pool_size=POOL)


def _books_edit(database_url: str, sku: str, *, d_available: int, d_reserved: int) -> None:
    """What an older release's bug or a hand edit leaves: the row moved, no hold nor ledger."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE store_inventory SET available_qty = available_qty + %s, "
            "reserved_qty = reserved_qty + %s WHERE store_id = %s AND sku_id = %s",
            (d_available, d_reserved, STORE, sku),
        )


def _alerts(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT message FROM ops_alerts WHERE kind = 'reconciliation_drift' ORDER BY message"
            )
        ]


async def _hold(stack, sku: str, qty: int, holder: str = "order-books") -> None:
    async with transaction(stack.sessions) as session:
        await service.reserve_lines(
            session,
            stack.redis,
            store_id=STORE,
            holder=holder,
            lines={sku: qty},
            now=stack.clock.now(),
            hold_s=600,
            mode="HARD",
        )


async def _full_pass(stack) -> None:
    await reconcile_and_report(
        stack.sessions, stack.engine, stack.redis, stack.clock, STORE, balance_books=True
    )


async def test_reserved_units_no_hold_holds_go_back_on_sale(stack) -> None:
    sku, other = stocked_skus(stack.database_url, STORE, 2, at_least=10)
    await _hold(stack, sku, 2)
    _books_edit(stack.database_url, sku, d_available=-3, d_reserved=3)  # 3 stranded units
    _books_edit(stack.database_url, other, d_available=2, d_reserved=0)  # not a hold's matter
    before = pg_stock(stack.database_url, STORE, sku)
    ledger_before = ledger_sum(stack.database_url, STORE, sku)
    async with transaction(stack.sessions) as session:
        assert [str(u) for u in await books.unbalanced(session, store_id=STORE)] == [
            f"{sku} reserved {before[1]}, held {before[1] - 3}"
        ]

    await _full_pass(stack)

    after = pg_stock(stack.database_url, STORE, sku)
    assert after == (before[0] + 3, before[1] - 3, before[2], before[3])
    assert after[1] == held_units(stack.database_url, STORE, sku)
    moved = tuple(
        a - b
        for a, b in zip(ledger_sum(stack.database_url, STORE, sku), ledger_before, strict=True)
    )
    assert moved == (3, -3, 0, 0)  # the ledger explains the move
    assert await redis_stock(stack.redis, STORE, sku) == after  # Redis follows the books
    assert await find_drift(stack.engine, stack.redis, STORE) == []
    async with transaction(stack.sessions) as session:
        assert await books.unbalanced(session, store_id=STORE) == []
    [alert] = _alerts(stack.database_url)
    assert "reserved units mended to the open holds" in alert and sku in alert


async def test_a_hold_the_books_never_reserved_takes_its_units_from_available(stack) -> None:
    [sku] = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    await _hold(stack, sku, 4)
    _books_edit(stack.database_url, sku, d_available=4, d_reserved=-4)  # the hold's units lost
    before = pg_stock(stack.database_url, STORE, sku)

    await _full_pass(stack)

    after = pg_stock(stack.database_url, STORE, sku)
    assert after == (before[0] - 4, before[1] + 4, before[2], before[3])
    assert after[1] == held_units(stack.database_url, STORE, sku)
    assert await redis_stock(stack.redis, STORE, sku) == after
    with psycopg.connect(stack.database_url) as conn:
        [(reason,)] = conn.execute(
            "SELECT reason FROM stock_ledger WHERE store_id = %s AND sku_id = %s "
            "AND movement = 'ADJUSTMENT'",
            (STORE, sku),
        ).fetchall()
    assert reason == MENDED_REASON


async def test_a_hold_larger_than_the_shelf_is_left_and_reported(stack) -> None:
    [sku] = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    await _hold(stack, sku, 5)
    available, reserved, *_ = pg_stock(stack.database_url, STORE, sku)
    # the books lost the hold's units and the shelf emptied: nothing to move them from
    _books_edit(stack.database_url, sku, d_available=-available, d_reserved=-reserved)
    before = pg_stock(stack.database_url, STORE, sku)
    ledger_before = ledger_sum(stack.database_url, STORE, sku)

    await _full_pass(stack)

    assert pg_stock(stack.database_url, STORE, sku) == before  # nothing half-mended
    assert ledger_sum(stack.database_url, STORE, sku) == ledger_before
    [alert] = _alerts(stack.database_url)
    # Redis still had the edited-away units (reloaded); nothing was mended, and not said
    assert alert.endswith(
        f"; holds need more units than the shelf has, count them ({sku} reserved 0, held 5)"
    )
    assert "mended" not in alert


async def test_a_balanced_store_is_left_alone_while_carts_change(
    stack, live_server: LiveServer
) -> None:
    """Full passes while customers hold and release lines over real HTTP (more at once
    than the server's pool has connections) and the journal writer applies them: every
    committed state balances, so nothing is ever mended."""
    skus = stocked_skus(stack.database_url, STORE, 4, at_least=40)
    stop = asyncio.Event()

    async def shopper(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> int:
        made = await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)
        assert made.status_code == 201, made.text
        cart, changes = made.json()["cart_id"], 0
        while not stop.is_set() or changes < 3:
            sku = skus[(n + changes) % len(skus)]
            r = await client.put(
                f"/v1/carts/{cart}/lines/{sku}", json={"quantity": changes % 3}, headers=headers
            )
            assert r.status_code == 200, r.text
            changes += 1
        return changes

    async with live_server.client() as client:
        customers = [
            await login(client, f"customer.{i:03d}", DEMO_SECRETS[Role.CUSTOMER])
            for i in range(1, SHOPPERS // CARTS_EACH + 1)
        ]
        shoppers = [
            asyncio.create_task(shopper(client, customers[n // CARTS_EACH], n))
            for n in range(SHOPPERS)
        ]
        try:
            for _ in range(PASSES):
                await journal.drain(stack.engine, stack.redis, STORE)  # the writer's run
                async with transaction(stack.sessions) as session:
                    assert await books.mend(session, store_id=STORE, now=stack.clock.now()) == []
        finally:
            stop.set()
            changes = await asyncio.gather(*shoppers)
    await journal.drain(stack.engine, stack.redis, STORE)
    async with transaction(stack.sessions) as session:
        assert await books.unbalanced(session, store_id=STORE) == []
    with psycopg.connect(stack.database_url) as conn:
        [(adjusted,)] = conn.execute(
            "SELECT count(*) FROM stock_ledger WHERE store_id = %s AND movement = 'ADJUSTMENT'",
            (STORE,),
        ).fetchall()
        [(held,)] = conn.execute(
            "SELECT count(*) FROM inventory_reservations WHERE store_id = %s AND sku_id = ANY(%s)",
            (STORE, skus),
        ).fetchall()
    assert adjusted == 0
    assert held >= SHOPPERS and min(changes) >= 3  # the passes ran among the carts' changes


@pytest.mark.parametrize(
    ("records", "mended", "short", "told"),
    [
        (0, [], ["S1 reserved 0, held 5"], "S: holds need more units than the shelf has, count "
         "them (S1 reserved 0, held 5)"),
        (0, ["S1 reserved 5, held 2"], [], "S: reserved units mended to the open holds "
         "(S1 reserved 5, held 2)"),
        (2, [], [], "S: Redis and PostgreSQL disagreed on 2 stock record(s); reloaded from "
         "PostgreSQL (stock:S1, hold:c1)"),
    ],
)  # fmt: skip
async def test_the_alert_says_only_what_the_pass_found(
    records: int, mended: list[str], short: list[str], told: str
) -> None:
    payload = {
        "records": records,
        "sample": ["stock:S1", "hold:c1"][:records],
        "books_mended": mended,
        "books_short": short,
    }
    event = Event("alert.reconciliation_drift", payload, datetime.now(UTC), "S", "S")
    subject, message = await _drift(None, event)  # type: ignore[arg-type]  # reads no rows
    assert message == told
    assert subject == (f"{records} keys" if records else f"{len(mended) + len(short)} SKUs")
