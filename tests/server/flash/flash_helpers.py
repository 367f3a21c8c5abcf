"""Shared by the flash-sale tests: customers in bulk, a sale, the books of one SKU."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import psycopg

from server.identity.models import User
from server.identity.service import issue_token
from server.inventory import service as inventory
from server.kit.clock import Clock
from server.kit.db import transaction
from server.kit.resources import resources_of
from shared.enums import Movement, Role
from tests.conftest import TEST_SECRET
from tests.helpers import one_row
from tests.server.inventory.helpers import held_units

STORE = "BLR-KOR"
HOME = {"lat": 12.9352, "lng": 77.6245}  # BLR-KOR delivers here
ADDRESS = {"address": {"line1": "4th Cross, 5th Block", **HOME}, "payment_method": "upi"}


def make_customers(database_url: str, clock: Clock, n: int, prefix: str = "fc") -> list[Any]:
    """``n`` customers inserted directly (no password hashing) with bearer headers."""
    ids = [uuid.uuid4() for _ in range(n)]
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with cur.copy("COPY users (id, login, name, role, secret_hash, is_active) FROM STDIN") as c:
            for i, uid in enumerate(ids):
                c.write_row(
                    (uid, f"{prefix}.{i}.{uid.hex[:6]}", f"Customer {i}", "customer", "x", True)
                )
        conn.commit()
    out = []
    for uid in ids:
        user = User(id=uid, login="x", name="x", role=Role.CUSTOMER, secret_hash="")
        token, _ = issue_token(user, key=TEST_SECRET, now=clock.now(), ttl_s=24 * 3600)
        out.append((uid, {"Authorization": f"Bearer {token}"}))
    return out


def manager_headers(clock: Clock, database_url: str, login: str = "manager.blr") -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        uid, role = one_row(conn.execute("SELECT id, role FROM users WHERE login = %s", (login,)))
    user = User(id=uid, login=login, name=login, role=Role(role), secret_hash="")
    token, _ = issue_token(user, key=TEST_SECRET, now=clock.now(), ttl_s=24 * 3600)
    return {"Authorization": f"Bearer {token}"}


def flash_sku(database_url: str, store: str = STORE) -> str:
    """A stocked SKU of the store (its stock is topped up by ``stock_up``)."""
    with psycopg.connect(database_url) as conn:
        return one_row(
            conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s AND available_qty > 0 "
                "ORDER BY sku_id LIMIT 1",
                (store,),
            )
        )[0]


async def stock_up(app: Any, store: str, sku: str, units: int) -> None:
    """Receive ``units`` more of a SKU through the engine (both books move)."""
    resources = resources_of(app)
    async with transaction(resources.sessions) as s:
        await inventory.move_stock(
            s,
            resources.redis,
            store_id=store,
            sku_id=sku,
            movement=Movement.RECEIPT,
            now=resources.clock.now(),
            d_available=units,
            reason="flash test stock",
        )


async def create_sale(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    clock: Clock,
    *,
    sku: str,
    units: int,
    stores: tuple[str, ...] = (STORE,),
    price: int = 100,
    limit: int = 1,
    minutes: int = 30,
    starts_in_s: int = 0,
) -> dict[str, Any]:
    now = clock.now() + timedelta(seconds=starts_in_s)
    r = await client.post(
        "/v1/flash-sales",
        headers=headers,
        json={
            "sku_id": sku,
            "store_ids": list(stores),
            "sale_price_paise": price,
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(minutes=minutes)).isoformat(),
            "units_per_store": units,
            "per_customer_limit": limit,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def books(database_url: str, store: str, sku: str, sale_id: str | None = None) -> dict[str, int]:
    """One SKU's stock row, its active holds and its tokens (of one sale, if named)."""
    with psycopg.connect(database_url) as conn:
        a, r, d, t = one_row(
            conn.execute(
                "SELECT available_qty, reserved_qty, damaged_qty, in_transit_qty "
                "FROM store_inventory WHERE store_id = %s AND sku_id = %s",
                (store, sku),
            )
        )
        held = held_units(conn, store, sku)
        tokens: dict[str, int] = dict(
            conn.execute(
                "SELECT status, count(*) FROM inventory_tokens WHERE store_id = %s "
                "AND sku_id = %s AND (%s::uuid IS NULL OR sale_id = %s::uuid) GROUP BY status",
                (store, sku, sale_id, sale_id),
            ).fetchall()
        )
    return {
        "available": a,
        "reserved": r,
        "physical": a + r + d + t,
        "held": int(held),
        **{f"tokens_{k.lower()}": int(v) for k, v in tokens.items()},
    }
