"""Checkout slots: an unused slot expires by the server clock and passes, with its token,
to the next in line; a failed payment returns the token and its unit to the sale; the
line closes when everything is sold; the end of the sale gives unsold units back."""

from __future__ import annotations

import uuid

import psycopg

from server.flash import tick
from server.flash.models import token_holder
from server.inventory import engine
from server.inventory.reconcile import find_drift, reconcile_store, repairs_asked
from server.kit.resources import resources_of
from tests.helpers import one_row, simulated_provider
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


async def _join(client, sale_id: str, headers: dict[str, str]) -> dict:
    r = await client.post(
        f"/v1/flash-sales/{sale_id}/queue", json={"store_id": STORE}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


async def _me(client, sale_id: str, headers: dict[str, str]):
    return await client.get(f"/v1/flash-sales/{sale_id}/queue/me", headers=headers)


async def _checkout(client, sale_id: str, headers: dict[str, str]):
    return await client.post(
        f"/v1/flash-sales/{sale_id}/checkout",
        json=ADDRESS,
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )


def _stock(database_url: str, sku: str) -> tuple[int, int, int, int]:
    b = books(database_url, STORE, sku)
    return b["available"], b["reserved"], b["physical"], b["held"]


def _tokens(database_url: str, sale_id: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT token_id, status, claimed_by FROM inventory_tokens WHERE sale_id = %s "
            "ORDER BY token_id",
            (sale_id,),
        ).fetchall()


async def _tick(app) -> None:
    resources = resources_of(app)
    await tick.tick(
        resources.sessions, resources.redis, clock=resources.clock, settings=resources.settings
    )


async def test_an_unused_slot_expires_and_its_token_passes_to_the_next(city, app, client, clock):
    resources_of(app).settings.flash_max_concurrent_checkouts = 1
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 5)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=1
    )
    sid = sale["sale_id"]
    before = _stock(city.database_url, sku)
    (a_id, a), (b_id, b) = make_customers(city.database_url, clock, 2)
    assert (await _join(client, sid, a))["status"] == "ADMITTED"
    waiting = await _join(client, sid, b)
    assert waiting["status"] == "WAITING" and waiting["position"] == 1
    assert waiting["ticket"] == 2 and waiting["estimated_wait_s"] >= 1
    [(token_id, status, holder)] = _tokens(city.database_url, sid)
    assert (status, holder) == ("CLAIMED", a_id)

    # the clock runs on from the wall (``Clock``): 10 s short of the slot's 60 leaves room
    # for a slow machine between the admission and this tick (at 59 a cluster pass once
    # took over a second and found the slot due)
    clock.advance(50)
    await _tick(app)  # not due yet
    assert _tokens(city.database_url, sid) == [(token_id, "CLAIMED", a_id)]
    clock.advance(11)
    await _tick(app)
    # the unpaid token came back and went to the next customer: same token, same unit
    assert _tokens(city.database_url, sid) == [(token_id, "CLAIMED", b_id)]
    assert (await _me(client, sid, b)).json()["status"] == "ADMITTED"
    late = await _checkout(client, sid, a)
    assert late.status_code == 409 and late.json()["code"] == "no_checkout_slot"
    gone = await _me(client, sid, a)
    assert gone.status_code == 404 and gone.json()["code"] == "not_in_queue"
    assert _stock(city.database_url, sku) == before  # the unit never left the sale
    r = await _checkout(client, sid, b)
    assert r.status_code == 201 and r.json()["status"] == "CONFIRMED", r.text


async def test_a_failed_payment_returns_the_token_and_its_unit_to_the_sale(
    city, app, client, clock
):
    resources_of(app).settings.flash_max_concurrent_checkouts = 1
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 5)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=1
    )
    sid = sale["sale_id"]
    before = _stock(city.database_url, sku)
    (_a_id, a), (b_id, b), (_, c) = make_customers(city.database_url, clock, 3)
    await _join(client, sid, a)
    assert (await _join(client, sid, b))["position"] == 1
    simulated_provider(app).failure_rate = 1.0
    declined = await _checkout(client, sid, a)
    assert declined.status_code == 402 and declined.json()["code"] == "payment_failed"
    # the unit is with the sale again (not regular stock) and the next customer has it
    assert _stock(city.database_url, sku) == before
    [(_, status, holder)] = _tokens(city.database_url, sid)
    assert (status, holder) == ("CLAIMED", b_id)
    with psycopg.connect(city.database_url) as conn:
        cancelled = one_row(
            conn.execute(
                "SELECT status FROM orders WHERE order_id = %s", (declined.json()["order_id"],)
            )
        )[0]
    assert cancelled == "CANCELLED"
    simulated_provider(app).failure_rate = 0.0
    paid = await _checkout(client, sid, b)
    assert paid.status_code == 201 and paid.json()["status"] == "CONFIRMED"
    # everything is sold: the line is closed for everyone
    closed = await client.post(f"/v1/flash-sales/{sid}/queue", json={"store_id": STORE}, headers=c)
    assert closed.status_code == 409 and closed.json()["code"] == "flash_sold_out"
    assert (await client.get(f"/v1/flash-sales/{sid}")).json()["status"] == "SOLD_OUT"
    available, _reserved, physical, held = _stock(city.database_url, sku)
    assert (available, physical, held) == (before[0], before[2] - 1, before[3] - 1)


async def test_leaving_passes_the_slot_and_the_end_returns_unsold_units(city, app, client, clock):
    resources_of(app).settings.flash_max_concurrent_checkouts = 1
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 5)
    before = books(city.database_url, STORE, sku)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=3, minutes=10
    )
    sid = sale["sale_id"]
    (_a_id, a), (_b_id, b) = make_customers(city.database_url, clock, 2)
    await _join(client, sid, a)
    await _join(client, sid, b)
    r = await client.delete(f"/v1/flash-sales/{sid}/queue/me", headers=a)
    assert r.status_code == 204, r.text
    assert (await _me(client, sid, b)).json()["status"] == "ADMITTED"
    assert books(city.database_url, STORE, sku)["available"] == before["available"] - 3

    clock.advance(11 * 60)  # past the end: unsold units go back to regular stock
    await _tick(app)
    view = (await client.get(f"/v1/flash-sales/{sid}")).json()
    assert view["status"] == "ENDED" and view["sold"] == 0
    end = books(city.database_url, STORE, sku)
    assert end["available"] == before["available"] and end["held"] == before["held"]
    assert end["tokens_returned"] == 3
    told = await _me(client, sid, b)
    assert told.status_code == 200 and told.json()["status"] == "CLOSED"
    assert told.json()["closed_reason"] == "ended"
    late = await _checkout(client, sid, b)
    assert late.status_code == 409 and late.json()["code"] == "flash_ended"


async def test_payments_unavailable_keep_the_slot_and_the_unit(city, app, client, clock):
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 5)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=1
    )
    sid = sale["sale_id"]
    before = _stock(city.database_url, sku)
    ((a_id, a),) = make_customers(city.database_url, clock, 1)
    await _join(client, sid, a)
    resources = resources_of(app)
    gateway, slots = resources.flash_payments, resources.settings.flash_payment_bulkhead
    for _ in range(slots):  # the flash sale's provider slots are all busy
        await gateway._slots.acquire()
    try:
        busy = await _checkout(client, sid, a)
    finally:
        for _ in range(slots):
            gateway._slots.release()
    assert busy.status_code == 503 and busy.json()["code"] == "payment_unavailable"
    assert "retry-after" in busy.headers
    # not the customer's doing: the order is cancelled, the slot and its unit stay theirs
    assert _tokens(city.database_url, sid)[0][1:] == ("CLAIMED", a_id)
    assert _stock(city.database_url, sku) == before
    r = await _checkout(client, sid, a)
    assert r.status_code == 201 and r.json()["status"] == "CONFIRMED", r.text
    with psycopg.connect(city.database_url) as conn:
        statuses = sorted(
            s for (s,) in conn.execute("SELECT status FROM orders WHERE user_id = %s", (a_id,))
        )
    assert statuses == ["CANCELLED", "CONFIRMED"]


async def test_a_retry_after_a_flash_checkout_died_midway_waits_for_the_repair(
    city, app, client, clock
):
    """A checkout of the slot died after moving the unit's hold to its order in Redis (a
    replica killed): the retry is told to retry and asks for the repair, instead of taking
    a unit from regular stock while the books still hold the moved one; once the
    reconciler has put the hold back, it buys the slot's unit."""
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 5)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=1
    )
    sid = sale["sale_id"]
    ((_, a),) = make_customers(city.database_url, clock, 1)
    await _join(client, sid, a)
    [(token_id, *_)] = _tokens(city.database_url, sid)
    resources = resources_of(app)
    now = clock.now().timestamp()
    await engine.reserve(  # what the dead checkout did in Redis before its commit was lost
        resources.redis,
        store_id=STORE,
        holder=token_holder(token_id),
        lines={sku: 1},
        mode="HARD",
        expires_at=now + 600,
        now=now,
        new_holder=str(uuid.uuid4()),
    )
    retry = {**a, "Idempotency-Key": uuid.uuid4().hex}
    checkout = f"/v1/flash-sales/{sid}/checkout"
    told = await client.post(checkout, json=ADDRESS, headers=retry)
    assert told.status_code == 409 and told.json()["code"] == "request_in_progress", told.text
    assert "stopped midway" in told.json()["detail"]  # says why, and to retry
    assert await repairs_asked(resources.redis) == [STORE]

    await reconcile_store(resources.engine, resources.redis, STORE, quiesce_s=0.2)
    bought = await client.post(checkout, json=ADDRESS, headers=retry)
    assert bought.status_code == 201 and bought.json()["status"] == "CONFIRMED", bought.text
    assert await find_drift(resources.engine, resources.redis, STORE) == []
