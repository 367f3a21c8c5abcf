"""Helpers for driving the rider app against a live server: a packed order (placed as the
customer, picked and packed through the picker API), the rider seeded near the store, the
customer's OTP, and typing like a USB scanner."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg

from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.geo import LatLng

STORE = "BLR-KOR"
KOR = LatLng(12.9352, 77.6245)
RIDER_PIN = DEMO_SECRETS[Role.RIDER]
CUSTOMER = ("customer.001", DEMO_SECRETS[Role.CUSTOMER])
PICKER = ("picker.kor.1", DEMO_SECRETS[Role.PICKER])
ADDRESS = {
    "address": {"line1": "4th Cross, 5th Block", "lat": 12.9301, "lng": 77.6302},
    "payment_method": "upi",
}


async def headers_for(client: httpx.AsyncClient, login: str, secret: str) -> dict[str, str]:
    r = await client.post("/v1/auth/login", json={"login": login, "secret": secret})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def in_stock_sku(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT sku_id FROM store_inventory WHERE store_id = %s AND available_qty >= 5 "
            "AND bin_code IS NOT NULL ORDER BY sku_id LIMIT 1",
            (STORE,),
        ).fetchone()
    assert row is not None
    return str(row[0])


async def packed_order(url: str, database_url: str) -> tuple[str, str]:
    """A one-line order the customer placed and the picker packed: (order id, bag label)."""
    sku = in_stock_sku(database_url)
    async with httpx.AsyncClient(base_url=url) as client:
        customer = await headers_for(client, *CUSTOMER)
        cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=customer)).json()
        r = await client.put(
            f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 1}, headers=customer
        )
        assert r.status_code == 200, r.text
        r = await client.post(
            f"/v1/carts/{cart['cart_id']}/checkout",
            json=ADDRESS,
            headers={**customer, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201 and r.json()["status"] == "CONFIRMED", r.text
        order_id = str(r.json()["order_id"])
        picker = await headers_for(client, *PICKER)
        task = (await client.post("/v1/picking/claim", headers=picker)).json()
        assert str(task["order_id"]) == order_id, task
        for line in task["lines"]:
            for _ in range(line["quantity"]):
                r = await client.post(
                    f"/v1/picking/tasks/{order_id}/scans",
                    headers=picker,
                    json={"scan_id": uuid.uuid4().hex, "code": line["barcode"]},
                )
                assert r.status_code == 200, r.text
        r = await client.post(
            f"/v1/picking/tasks/{order_id}/pack", json={"bag_count": 1}, headers=picker
        )
        assert r.status_code == 200, r.text
        return order_id, str(r.json()["bag_label"])


async def order_as_customer(url: str, order_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as client:
        r = await client.get(f"/v1/orders/{order_id}", headers=await headers_for(client, *CUSTOMER))
        assert r.status_code == 200, r.text
        return dict(r.json())


def rider_near_store(database_url: str) -> str:
    """The first rider (by login) whose home store is Koramangala: seeded near it."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT u.login FROM riders r JOIN users u ON u.id = r.rider_id "
            "WHERE r.home_store_id = %s ORDER BY u.login LIMIT 1",
            (STORE,),
        ).fetchone()
    assert row is not None
    return str(row[0])


def db_one(database_url: str, sql: str, *params: object) -> Any:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row
