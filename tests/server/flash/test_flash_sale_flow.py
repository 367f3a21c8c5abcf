"""A flash sale end to end: tokens set aside from regular stock, join, slot, checkout at
the sale price, the books of the SKU at every step; the manager's create and stop."""

from __future__ import annotations

import uuid

import psycopg

from server.flash import sales
from server.kit.resources import resources_of
from tests.server.flash.flash_helpers import (
    ADDRESS,
    STORE,
    books,
    create_sale,
    flash_sku,
    make_customers,
    manager_headers,
    stock_up,
)


async def test_a_sale_sets_units_aside_and_sells_one_at_the_sale_price(city, app, client, clock):
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 20)
    before = books(city.database_url, STORE, sku)
    manager = manager_headers(clock, city.database_url)
    sale = await create_sale(client, manager, clock, sku=sku, units=5, price=100)
    assert sale["status"] == "LIVE" and sale["units"] == 5 and sale["stores"][0]["available"] == 5
    after = books(city.database_url, STORE, sku)
    # five units left regular stock for the sale's tokens; physical stock did not move
    assert after["available"] == before["available"] - 5
    assert after["reserved"] == before["reserved"] + 5 == after["held"]
    assert after["physical"] == before["physical"] and after["tokens_available"] == 5

    ((_cid, customer),) = make_customers(city.database_url, clock, 1)
    r = await client.post(
        f"/v1/flash-sales/{sale['sale_id']}/queue", json={"store_id": STORE}, headers=customer
    )
    assert r.status_code == 200, r.text
    entry = r.json()
    assert entry["status"] == "ADMITTED" and 59 <= entry["slot_seconds_left"] <= 60
    assert r.headers["cache-control"] == "no-store"

    r = await client.post(
        f"/v1/flash-sales/{sale['sale_id']}/checkout",
        json=ADDRESS,
        headers={**customer, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "CONFIRMED"
    assert order["items"][0]["unit_price_paise"] == 100 and order["subtotal_paise"] == 100
    sold = books(city.database_url, STORE, sku)
    assert sold["physical"] == before["physical"] - 1  # the unit left with the order
    assert sold["reserved"] == before["reserved"] + 4 == sold["held"]
    assert sold["available"] == after["available"]
    assert sold["tokens_sold"] == 1 and sold["tokens_available"] == 4

    me = await client.get(f"/v1/flash-sales/{sale['sale_id']}/queue/me", headers=customer)
    assert me.status_code == 200 and me.json()["status"] == "PURCHASED"
    again = await client.post(
        f"/v1/flash-sales/{sale['sale_id']}/queue", json={"store_id": STORE}, headers=customer
    )
    assert again.status_code == 409 and again.json()["code"] == "flash_limit_reached"

    view = (await client.get(f"/v1/flash-sales/{sale['sale_id']}")).json()
    assert view["sold"] == 1 and view["stores"][0]["available"] == 4

    # the catalogue shows the live sale's price on the product
    card = (await client.get(f"/v1/stores/{STORE}/products/{sku}")).json()
    assert card["flash"]["sale_id"] == sale["sale_id"] and card["flash"]["price_paise"] == 100

    resources = resources_of(app)
    async with resources.sessions() as s:
        figures = await sales.queue_figures(s, resources.redis, city_id="BLR", now=clock.now())
    assert [(f.sold, f.tokens_left, f.in_checkout) for f in figures] == [(1, 4, 0)]

    stop = await client.post(
        f"/v1/flash-sales/{sale['sale_id']}/stop", json={"reason": "test over"}, headers=manager
    )
    assert stop.status_code == 200, stop.text
    assert stop.json()["status"] == "STOPPED"
    end = books(city.database_url, STORE, sku)
    # the four unsold units are regular stock again
    assert end["available"] == before["available"] - 1 and end["reserved"] == before["reserved"]
    assert end["tokens_returned"] == 4 and end["tokens_sold"] == 1
    with psycopg.connect(city.database_url) as conn:
        actions = conn.execute(
            "SELECT action, target, reason FROM ops_audit_log ORDER BY entry_id"
        ).fetchall()
    assert actions == [
        ("flash.create", sale["sale_id"], None),
        ("flash.stop", sale["sale_id"], "test over"),
    ]
