"""1,000 customers in 4 processes race for 100 units of one SKU: exactly 100 win."""

from __future__ import annotations

import multiprocessing

import psycopg
import pytest

from server.inventory import journal
from server.inventory.reconcile import find_drift, load_store
from server.kit import keys
from tests.helpers import one_row
from tests.server.inventory.contenders import race
from tests.server.inventory.helpers import pg_stock, redis_stock, set_stock

STORE, PROCESSES, PER_PROCESS, UNITS = "BLR-KOR", 4, 250, 100


def _reserve_rows(database_url: str, sku: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM stock_ledger WHERE store_id = %s AND sku_id = %s "
            "AND movement = 'RESERVE'",
            (STORE, sku),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
async def test_one_hot_sku_is_never_oversold_across_processes(stack) -> None:
    with psycopg.connect(stack.database_url) as conn:
        sku = one_row(
            conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s ORDER BY sku_id LIMIT 1",
                (STORE,),
            )
        )[0]
    set_stock(stack.database_url, STORE, sku, UNITS)
    reserves_before = _reserve_rows(stack.database_url, sku)
    await stack.redis.delete(keys.store_ready(STORE))
    await load_store(stack.engine, stack.redis, STORE)

    ctx = multiprocessing.get_context("spawn")
    jobs = [
        (stack.database_url, stack.redis_url, STORE, sku, w, PER_PROCESS) for w in range(PROCESSES)
    ]
    with ctx.Pool(PROCESSES) as pool:
        results = pool.map(race, jobs)

    won = sum(w for w, _ in results)
    lost = sum(lost for _, lost in results)
    assert won + lost == PROCESSES * PER_PROCESS
    assert won == UNITS
    await journal.drain(stack.engine, stack.redis, STORE)  # what the writers left
    # four writers raced for the same batches: each entry reached the books exactly once
    assert _reserve_rows(stack.database_url, sku) - reserves_before == UNITS
    assert pg_stock(stack.database_url, STORE, sku) == (0, UNITS, 0, 0)
    assert await redis_stock(stack.redis, STORE, sku) == (0, UNITS, 0, 0)
    with psycopg.connect(stack.database_url) as conn:
        holds = conn.execute(
            "SELECT count(*), sum(quantity) FROM inventory_reservations "
            "WHERE store_id = %s AND sku_id = %s AND status = 'SOFT'",
            (STORE, sku),
        ).fetchone()
    assert holds == (UNITS, UNITS)
    assert await find_drift(stack.engine, stack.redis, STORE) == []
