"""Shorts and substitutes sent again after a lost answer: applied once, answered again; the
ordered quantity survives a short and shows on the pick list and the customer's order."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
import redis.asyncio as aioredis

from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login, one_row
from tests.server.inventory.helpers import pg_stock, redis_stock
from tests.server.picking.test_picking_api import STORE, place_confirmed_order


@pytest.fixture
async def redis(city) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(city.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def claimed(city, client) -> tuple[dict, dict[str, str], dict]:
    """A claimed order whose first line with two units is the one to short."""
    order = await place_confirmed_order(client, city.database_url, lines=2)
    picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    line = next(ln for ln in task["lines"] if ln["quantity"] == 2)
    assert line["ordered_qty"] == 2
    return order, picker, line


def books(url: str, order_id: str, sku_id: str) -> dict[str, object]:
    """What a short or a substitute writes for one line, counted in PostgreSQL."""
    with psycopg.connect(url) as conn:

        def one(sql: str, *args: object) -> object:
            return conn.execute(sql, args).fetchone()[0]  # type: ignore[index]

        return {
            "short_entries": one(
                "SELECT count(*) FROM stock_ledger WHERE movement = 'SHORT_PICK' "
                "AND reference = %s AND sku_id = %s",
                order_id,
                sku_id,
            ),
            "refunds": one(
                "SELECT count(*) FROM refunds WHERE order_id = %s AND sku_id = %s",
                order_id,
                sku_id,
            ),
            "refunded": one(
                "SELECT coalesce(sum(amount_paise), 0) FROM refunds WHERE order_id = %s",
                order_id,
            ),
            "transitions": one(
                "SELECT count(*) FROM order_events WHERE order_id = %s "
                "AND to_status = 'PARTIALLY_FULFILLED'",
                order_id,
            ),
            "items": one("SELECT count(*) FROM order_items WHERE order_id = %s", order_id),
            "line": conn.execute(
                "SELECT quantity, ordered_qty, status FROM order_items "
                "WHERE order_id = %s AND sku_id = %s",
                (order_id, sku_id),
            ).fetchone(),
        }


async def short(client, picker, order_id: str, sku_id: str, found: int):
    return await client.post(
        f"/v1/picking/tasks/{order_id}/short",
        headers=picker,
        json={"sku_id": sku_id, "found_qty": found, "reason": "missing"},
    )


async def substitute(client, picker, order_id: str, sku_id: str, sub: str, quantity: int):
    return await client.post(
        f"/v1/picking/tasks/{order_id}/substitute",
        headers=picker,
        json={"sku_id": sku_id, "substitute_sku": sub, "quantity": quantity},
    )


async def test_a_retried_short_is_answered_again_and_applied_once(
    city, client, redis, claimed
) -> None:
    order, picker, line = claimed
    oid, sku = order["order_id"], line["sku_id"]
    stock = pg_stock(city.database_url, STORE, sku), await redis_stock(redis, STORE, sku)
    first = await short(client, picker, oid, sku, 1)
    assert first.status_code == 200, first.text
    once = books(city.database_url, oid, sku)
    retried = await short(client, picker, oid, sku, 1)
    assert retried.status_code == 200, retried.text
    assert retried.json() == first.json() and first.json()["short_qty"] == 1
    assert books(city.database_url, oid, sku) == once
    assert once["short_entries"] == once["refunds"] == once["transitions"] == 1
    assert once["line"] == (1, 2, "PENDING")
    # a short moves no stock between buckets (the units had left the books at payment)
    assert (pg_stock(city.database_url, STORE, sku), await redis_stock(redis, STORE, sku)) == stock

    pick = (await client.get(f"/v1/picking/tasks/{oid}", headers=picker)).json()
    picked = next(ln for ln in pick["lines"] if ln["sku_id"] == sku)
    assert (picked["quantity"], picked["ordered_qty"]) == (1, 2)
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    mine = (await client.get(f"/v1/orders/{oid}", headers=customer)).json()
    item = next(i for i in mine["items"] if i["sku_id"] == sku)
    assert (item["quantity"], item["ordered_qty"]) == (1, 2)
    assert all(i["ordered_qty"] == i["quantity"] for i in mine["items"] if i["sku_id"] != sku)


async def test_a_further_short_on_the_same_line_still_counts(city, client, claimed) -> None:
    order, picker, line = claimed
    oid, sku = order["order_id"], line["sku_id"]
    assert (await short(client, picker, oid, sku, 1)).status_code == 200
    further = await short(client, picker, oid, sku, 0)
    assert further.status_code == 200, further.text
    assert further.json()["short_qty"] == 2  # the line's units short in all
    twice = books(city.database_url, oid, sku)
    assert twice["short_entries"] == twice["refunds"] == 2 and twice["transitions"] == 1
    assert twice["line"] == (0, 2, "CANCELLED")
    assert twice["refunded"] == 2 * line_price(city.database_url, oid, sku)
    # the retry of the further short is answered again; the stale first one is refused
    assert (await short(client, picker, oid, sku, 0)).json() == further.json()
    stale = await short(client, picker, oid, sku, 1)
    assert stale.status_code == 422 and stale.json()["code"] == "invalid_quantity"
    assert books(city.database_url, oid, sku) == twice


async def test_a_retried_substitute_takes_stock_and_adds_the_item_once(
    city, client, redis, claimed
) -> None:
    order, picker, line = claimed
    oid, sku = order["order_id"], line["sku_id"]
    offers = (await short(client, picker, oid, sku, 1)).json()["substitutes"]
    assert offers, "a same-category item in stock should be offered"
    sub = offers[0]["sku_id"]
    stock = pg_stock(city.database_url, STORE, sub), await redis_stock(redis, STORE, sub)
    first = await substitute(client, picker, oid, sku, sub, 1)
    assert first.status_code == 200, first.text
    once = books(city.database_url, oid, sub)
    retried = await substitute(client, picker, oid, sku, sub, 1)
    assert retried.status_code == 200, retried.text
    assert retried.json() == first.json()
    assert books(city.database_url, oid, sub) == once and once["items"] == 3
    assert once["line"] == (1, 1, "PENDING")
    # one unit left the books once, in PostgreSQL and in Redis, with one committed hold
    pg, live = pg_stock(city.database_url, STORE, sub), await redis_stock(redis, STORE, sub)
    assert pg == live == (stock[0][0] - 1, *stock[0][1:])
    with psycopg.connect(city.database_url) as conn:
        holds = conn.execute(
            "SELECT quantity, status FROM inventory_reservations WHERE order_id = %s",
            (f"sub:{oid}:{sub}",),
        ).fetchall()
        commits = one_row(
            conn.execute(
                "SELECT count(*) FROM stock_ledger WHERE reference = %s AND movement = 'COMMIT'",
                (f"sub:{oid}:{sub}",),
            )
        )[0]
    assert holds == [(1, "COMMITTED")] and commits == 1

    # another substitution on the substituted line is still refused
    for other, quantity in [(sub, 2), *((o["sku_id"], 1) for o in offers[1:2])]:
        again = await substitute(client, picker, oid, sku, other, quantity)
        assert again.status_code == 409 and again.json()["code"] == "already_substituted"
    assert books(city.database_url, oid, sub) == once


def line_price(url: str, order_id: str, sku_id: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT unit_price_paise FROM order_items WHERE order_id = %s AND sku_id = %s",
            (order_id, sku_id),
        ).fetchone()[0]  # type: ignore[index]
