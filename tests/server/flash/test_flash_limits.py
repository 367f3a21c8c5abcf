"""Rate limits (429 with Retry-After, per client IP and per customer), the bulkhead, and
the manager's rules for creating and stopping a sale."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import psycopg
import pytest

from server.flash.bulkheads import Bulkhead, FlashBusy
from server.kit.resources import resources_of
from tests.server.flash.flash_helpers import (
    ADDRESS,
    STORE,
    create_sale,
    flash_sku,
    make_customers,
    manager_headers,
    stock_up,
)


async def test_checkout_answers_429_with_retry_after_past_the_per_ip_limit(
    city, app, client, clock
):
    resources_of(app).settings.checkout_rate_limit_per_ip = "3/minute"
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 5)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=2
    )
    people = make_customers(city.database_url, clock, 4)
    codes = []
    for _, h in people:  # four customers, one client address
        r = await client.post(
            f"/v1/flash-sales/{sale['sale_id']}/checkout",
            json=ADDRESS,
            headers={**h, "Idempotency-Key": uuid.uuid4().hex},
        )
        codes.append(r.status_code)
    assert codes == [409, 409, 409, 429]  # no slot, no slot, no slot, then limited
    assert (
        r.json()["code"] == "rate_limited"
        and r.headers["content-type"] == "application/problem+json"
    )
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # joining counts against the same per-IP budget; another address is not limited
    other = {"X-Forwarded-For": "203.0.113.7"}  # (the test transport has no proxy: same IP)
    r = await client.post(
        f"/v1/flash-sales/{sale['sale_id']}/queue",
        json={"store_id": STORE},
        headers={**people[0][1], **other},
    )
    assert r.status_code == 429


async def test_a_customer_is_limited_across_addresses(city, app, client, clock):
    resources_of(app).settings.flash_rate_limit_per_customer = "5/minute"
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 5)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=2
    )
    ((_, me),) = make_customers(city.database_url, clock, 1)
    r = await client.post(
        f"/v1/flash-sales/{sale['sale_id']}/queue", json={"store_id": STORE}, headers=me
    )
    assert r.status_code == 200
    codes = [
        (await client.get(f"/v1/flash-sales/{sale['sale_id']}/queue/me", headers=me)).status_code
        for _ in range(5)
    ]
    assert codes == [200, 200, 200, 200, 429]


async def test_the_bulkhead_refuses_at_once_when_full() -> None:
    bulkhead = Bulkhead("queue", limit=2, wait_s=0.05)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with bulkhead.slot():
            entered.set()
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await entered.wait()
    while bulkhead.in_use < 2:
        await asyncio.sleep(0)
    with pytest.raises(FlashBusy) as refused:
        async with bulkhead.slot():
            pass
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
    release.set()
    await asyncio.gather(*holders)
    async with bulkhead.slot():  # free again
        assert bulkhead.in_use == 1


async def test_managers_create_and_stop_only_what_they_may(city, app, client, clock):
    manager = manager_headers(clock, city.database_url)
    sku = flash_sku(city.database_url)
    now = clock.now()
    body = {
        "sku_id": sku,
        "store_ids": [STORE],
        "sale_price_paise": 100,
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(minutes=30)).isoformat(),
        "units_per_store": 100_0,
    }
    r = await client.post("/v1/flash-sales", json=body, headers=manager)
    assert r.status_code == 409 and r.json()["code"] == "insufficient_stock"  # not that much
    bad = {**body, "units_per_store": 1, "ends_at": (now - timedelta(minutes=1)).isoformat()}
    r = await client.post("/v1/flash-sales", json=bad, headers=manager)
    assert r.status_code == 422 and r.json()["code"] == "invalid_sale_window"
    naive = {**body, "units_per_store": 1, "starts_at": "2030-01-01T12:00:00"}
    r = await client.post("/v1/flash-sales", json=naive, headers=manager)
    assert r.status_code == 422
    r = await client.post(
        "/v1/flash-sales",
        json={**body, "units_per_store": 1, "sale_price_paise": 10**7},
        headers=manager,
    )
    assert r.status_code == 422 and r.json()["code"] == "price_above_mrp"
    ((_, customer),) = make_customers(city.database_url, clock, 1)
    r = await client.post("/v1/flash-sales", json={**body, "units_per_store": 1}, headers=customer)
    assert r.status_code == 403
    await stock_up(app, STORE, sku, 2)
    sale = await create_sale(client, manager, clock, sku=sku, units=1)
    r = await client.post("/v1/flash-sales", json={**body, "units_per_store": 1}, headers=manager)
    assert r.status_code == 409 and r.json()["code"] == "flash_overlap"
    # a manager of another city may not stop it
    with psycopg.connect(city.database_url) as conn:
        conn.execute(
            "INSERT INTO cities (city_id, name, timezone) VALUES ('MUM', 'Mumbai', 'Asia/Kolkata')"
        )
        conn.execute(
            "INSERT INTO users (id, login, name, role, city_id, secret_hash, is_active) "
            "VALUES (gen_random_uuid(), 'manager.mum', 'M', 'manager', 'MUM', 'x', true)"
        )
    other = manager_headers(clock, city.database_url, "manager.mum")
    r = await client.post(
        f"/v1/flash-sales/{sale['sale_id']}/stop", json={"reason": "x"}, headers=other
    )
    assert r.status_code == 403 and r.json()["code"] == "not_your_city"
    r = await client.post(
        f"/v1/flash-sales/{sale['sale_id']}/stop", json={"reason": "x"}, headers=manager
    )
    assert r.status_code == 200
    r = await client.post(
        f"/v1/flash-sales/{sale['sale_id']}/stop", json={"reason": "x"}, headers=manager
    )
    assert r.status_code == 409 and r.json()["code"] == "flash_ended"
    listed = (await client.get("/v1/flash-sales", params={"include_finished": True})).json()
    assert [s["sale_id"] for s in listed["items"]] == [sale["sale_id"]]
    assert (await client.get("/v1/flash-sales")).json()["items"] == []  # none live


async def test_product_images_are_cached_for_a_day(city, client) -> None:
    r = await client.get("/v1/products/SKU00001/image")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert r.headers["cache-control"] == "public, max-age=86400, immutable"
    assert (await client.get("/v1/products/NOPE/image")).status_code == 404
