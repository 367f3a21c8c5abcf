"""Reading both sides of the inventory books for assertions."""

from __future__ import annotations

from contextlib import nullcontext as _nullcontext

import psycopg

from server.kit import keys


def _one(db: str | psycopg.Connection, query: str, params: tuple[object, ...]) -> tuple:
    """The query's one row, on ``db`` (a URL: a short-lived connection; an open connection
    is reused: hot loops)."""
    conn = psycopg.connect(db, autocommit=True) if isinstance(db, str) else db
    with conn if isinstance(db, str) else _nullcontext():
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row


def pg_stock(db: str | psycopg.Connection, store_id: str, sku_id: str) -> tuple[int, int, int, int]:
    available, reserved, damaged, in_transit = _one(
        db,
        "SELECT available_qty, reserved_qty, damaged_qty, in_transit_qty "
        "FROM store_inventory WHERE store_id = %s AND sku_id = %s",
        (store_id, sku_id),
    )
    return available, reserved, damaged, in_transit


async def redis_stock(redis, store_id: str, sku_id: str) -> tuple[int, int, int, int]:
    values = await redis.hmget(
        keys.inventory(store_id, sku_id), "available", "reserved", "damaged", "in_transit"
    )
    available, reserved, damaged, in_transit = (int(v or 0) for v in values)
    return available, reserved, damaged, in_transit


def held_units(db: str | psycopg.Connection, store_id: str, sku_id: str) -> int:
    """The units the SKU's open holds (SOFT and HARD reservation rows) hold in the books."""
    return int(
        _one(
            db,
            "SELECT coalesce(sum(quantity), 0) FROM inventory_reservations "
            "WHERE store_id = %s AND sku_id = %s AND status IN ('SOFT', 'HARD')",
            (store_id, sku_id),
        )[0]
    )


def ledger_sum(
    db: str | psycopg.Connection, store_id: str, sku_id: str
) -> tuple[int, int, int, int]:
    available, reserved, damaged, in_transit = (
        int(v)
        for v in _one(
            db,
            "SELECT coalesce(sum(d_available), 0), coalesce(sum(d_reserved), 0), "
            "coalesce(sum(d_damaged), 0), coalesce(sum(d_in_transit), 0) FROM stock_ledger "
            "WHERE store_id = %s AND sku_id = %s",
            (store_id, sku_id),
        )
    )
    return available, reserved, damaged, in_transit


def reservation_rows(database_url: str, store_id: str, holder: str) -> dict[str, tuple[int, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT sku_id, quantity, status FROM inventory_reservations "
            "WHERE store_id = %s AND order_id = %s",
            (store_id, holder),
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def set_stock(database_url: str, store_id: str, sku_id: str, available: int) -> None:
    """Fixture helper: give a SKU exact stock (before Redis loads the store)."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE store_inventory SET available_qty = %s, reserved_qty = 0, damaged_qty = 0, "
            "in_transit_qty = 0 WHERE store_id = %s AND sku_id = %s",
            (available, store_id, sku_id),
        )
