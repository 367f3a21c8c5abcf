"""Fixture helpers for the forecasting DB tests: create the new tables, set exact stock
positions and forecasts."""

from __future__ import annotations

from datetime import datetime

import psycopg

import server.models  # noqa: F401  (the tables the new ones reference)


def set_position(
    database_url: str,
    store_id: str,
    sku_id: str,
    *,
    available: int,
    in_transit: int = 0,
    capacity: int = 100,
    case_pack: int | None = None,
) -> None:
    """Exact stock for one store x SKU (reload the store into Redis afterwards)."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE store_inventory SET available_qty = %s, reserved_qty = 0, damaged_qty = 0, "
            "in_transit_qty = %s, max_capacity = %s WHERE store_id = %s AND sku_id = %s",
            (available, in_transit, capacity, store_id, sku_id),
        )
        if case_pack is not None:
            conn.execute(
                "UPDATE products SET case_pack = %s WHERE sku_id = %s", (case_pack, sku_id)
            )


def put_forecasts(
    database_url: str, at: datetime, rows: dict[tuple[str, str], tuple[float, float]]
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO demand_forecasts (store_id, sku_id, forecast_at, next_24h, next_72h) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(s, k, at, f24, f72) for (s, k), (f24, f72) in rows.items()],
        )


def skus_of(database_url: str, store_id: str, n: int) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s ORDER BY sku_id LIMIT %s",
                (store_id, n),
            )
        ]
