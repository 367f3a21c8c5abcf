"""Helpers for driving the rider app against a live server: a packed order (placed as the
customer, picked and packed through the picker API), the rider seeded near the store, the
customer's OTP, and typing like a USB scanner."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.geo import LatLng
from tests.helpers import pick_and_pack
from tests.picker_app.picker_live import STORE, place_order

KOR = LatLng(12.9352, 77.6245)
RIDER_PIN = DEMO_SECRETS[Role.RIDER]
ADDRESS = {  # a door under a kilometre from the store (the picker tests order to the store)
    "address": {"line1": "4th Cross, 5th Block", "lat": 12.9301, "lng": 77.6302},
    "payment_method": "upi",
}


def in_stock_sku(database_url: str) -> str:
    return str(
        db_one(
            database_url,
            "SELECT sku_id FROM store_inventory WHERE store_id = %s AND available_qty >= 5 "
            "AND bin_code IS NOT NULL ORDER BY sku_id LIMIT 1",
            STORE,
        )
    )


async def packed_order(url: str, database_url: str) -> tuple[str, str]:
    """A one-line order the customer placed and the picker packed: (order id, bag label)."""
    order_id = await place_order(url, {in_stock_sku(database_url): 1}, address=ADDRESS)
    async with httpx.AsyncClient(base_url=url) as client:
        return order_id, await pick_and_pack(client, order_id)


def rider_near_store(database_url: str) -> str:
    """The first rider (by login) whose home store is Koramangala: seeded near it."""
    return str(
        db_one(
            database_url,
            "SELECT u.login FROM riders r JOIN users u ON u.id = r.rider_id "
            "WHERE r.home_store_id = %s ORDER BY u.login LIMIT 1",
            STORE,
        )
    )


def db_one(database_url: str, sql: str, *params: object) -> Any:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row
