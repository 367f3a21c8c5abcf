"""The customer journey end to end on a seeded city, and its unhappy paths."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import psycopg
import pytest
import websockets

from server.events.relay import relay_once
from server.inventory import journal
from server.inventory.sweeper import sweep_store
from server.kit.resources import resources_of
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login, one_row, simulated_provider
from tests.server.inventory.helpers import pg_stock

HOME = {"lat": 12.9352, "lng": 77.6245}
ADDRESS: dict[str, Any] = {
    "address": {"line1": "4th Cross, 5th Block", **HOME},
    "payment_method": "upi",
}
STORE = "BLR-KOR"


@pytest.fixture
async def customer(city, client) -> dict[str, str]:
    return await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])


def _in_stock(url: str, n: int = 2) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s AND available_qty >= 5 "
                "ORDER BY sku_id LIMIT %s",
                (STORE, n),
            )
        ]


async def _cart_with(client, headers, skus: dict[str, int]) -> str:
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    for sku, qty in skus.items():
        r = await client.put(
            f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": qty}, headers=headers
        )
        assert r.status_code == 200, r.text
    return cart["cart_id"]


async def _checkout(client, headers, cart_id: str, key: str | None = None, body=None):
    return await client.post(
        f"/v1/carts/{cart_id}/checkout",
        json=body or ADDRESS,
        headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )


async def test_locate_browse_search_cart_checkout_pay_and_track(city, live_server, stack) -> None:
    app = live_server.app
    simulated_provider(app).pending_rate = 1.0  # UPI collect: the webhook settles it
    async with live_server.client() as client:
        headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
        store = (await client.get("/v1/stores/serviceable", params=HOME)).json()["stores"][0]
        assert store["store_id"] == STORE
        products = (await client.get(f"/v1/stores/{STORE}/products")).json()["items"]
        a, b = [p for p in products if p["available_qty"] >= 3][:2]
        hits = (await client.get(f"/v1/stores/{STORE}/search", params={"q": a["brand"]})).json()
        assert a["sku_id"] in [h["sku_id"] for h in hits]
        cart_id = await _cart_with(client, headers, {a["sku_id"]: 2, b["sku_id"]: 1})
        cart = (await client.get(f"/v1/carts/{cart_id}", headers=headers)).json()
        assert [ln["quantity"] for ln in cart["lines"]] == [2, 1]
        assert 590 <= cart["hold_seconds_left"] <= 600
        assert cart["total_paise"] == (
            cart["subtotal_paise"] + cart["delivery_fee_paise"] + cart["handling_fee_paise"]
        )
        r = await _checkout(client, headers, cart_id)
        assert r.status_code == 201, r.text
        order = r.json()
        assert order["status"] == "PLACED" and order["total_amount_paise"] == cart["total_paise"]

        await relay_once(stack.engine, stack.redis)  # PLACED is already out
        ws_url = live_server.url.replace("http", "ws") + f"/ws/orders/{order['order_id']}"
        token = headers["Authorization"].split()[1]
        async with websockets.connect(f"{ws_url}?token={token}") as ws:
            snapshot = json.loads(await ws.recv())
            assert snapshot["type"] == "snapshot" and snapshot["order"]["status"] == "PLACED"
            with psycopg.connect(city.database_url) as conn:
                payment_id = one_row(
                    conn.execute(
                        "SELECT payment_id FROM payments WHERE order_id = %s", (order["order_id"],)
                    )
                )[0]
            delivery = simulated_provider(app).webhook_event(
                str(payment_id), now_ts=live_server.clock.now().timestamp()
            )
            hook = await client.post(
                "/v1/payments/webhook", content=delivery.body, headers=delivery.headers
            )
            assert hook.status_code == 200 and hook.json()["status"] == "applied"
            await relay_once(stack.engine, stack.redis)
            pushed = json.loads(await ws.recv())
            assert pushed["type"] == "order.status" and pushed["status"] == "CONFIRMED"
        final = (await client.get(f"/v1/orders/{order['order_id']}", headers=headers)).json()
        assert final["status"] == "CONFIRMED"
        assert set(final["status_times"]) == {"PLACED", "CONFIRMED"}
    # the units left the books: reserved went back to zero, available stayed reduced
    assert pg_stock(city.database_url, STORE, a["sku_id"])[1] == 0


async def test_tracking_never_pushes_a_state_older_than_the_client_has(
    city, live_server, stack
) -> None:
    """The relay delivers changes made before the socket opened: a client whose snapshot
    shows CONFIRMED gets neither PLACED nor CONFIRMED again, and still gets the next change."""
    async with live_server.client() as client:
        headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
        sku = _in_stock(city.database_url, 1)[0]
        cart_id = await _cart_with(client, headers, {sku: 1})
        order = (await _checkout(client, headers, cart_id)).json()
        assert order["status"] == "CONFIRMED"  # PLACED, then CONFIRMED: neither relayed yet
        oid = order["order_id"]
        ws_url = live_server.url.replace("http", "ws") + f"/ws/orders/{oid}"
        async with websockets.connect(f"{ws_url}?token={headers['Authorization'][7:]}") as ws:
            snapshot = json.loads(await ws.recv())
            assert snapshot["type"] == "snapshot" and snapshot["order"]["status"] == "CONFIRMED"
            assert await relay_once(stack.engine, stack.redis) >= 2  # the old changes go out
            r = await client.post(f"/v1/orders/{oid}/cancel", json={}, headers=headers)
            assert r.status_code == 200, r.text
            await relay_once(stack.engine, stack.redis)
            pushed = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            assert (pushed["type"], pushed["status"]) == ("order.status", "CANCELLED")
            assert pushed["sequence"] > snapshot["sequence"]


async def test_checkout_confirms_at_once_when_the_payment_succeeds(
    city, app, client, customer
) -> None:
    sku = _in_stock(city.database_url, 1)[0]
    before = pg_stock(city.database_url, STORE, sku)
    cart_id = await _cart_with(client, customer, {sku: 3})
    r = await _checkout(client, customer, cart_id)
    assert r.status_code == 201 and r.json()["status"] == "CONFIRMED"
    assert pg_stock(city.database_url, STORE, sku) == (before[0] - 3, 0, 0, 0)
    listed = (await client.get("/v1/orders", headers=customer)).json()["items"]
    assert [o["order_id"] for o in listed] == [r.json()["order_id"]]


async def test_the_delivery_instructions_are_kept_with_the_orders_address(
    city, client, customer
) -> None:
    cart_id = await _cart_with(client, customer, {_in_stock(city.database_url, 1)[0]: 1})
    body = {**ADDRESS, "address": {**ADDRESS["address"], "instructions": "x" * 201}}
    assert (await _checkout(client, customer, cart_id, body=body)).status_code == 422
    body["address"]["instructions"] = "3rd floor, ring twice"
    r = await _checkout(client, customer, cart_id, body=body)
    assert r.status_code == 201, r.text
    with psycopg.connect(city.database_url) as conn:
        [(address,)] = conn.execute(
            "SELECT delivery_address FROM orders WHERE order_id = %s", (r.json()["order_id"],)
        ).fetchall()
    assert address["instructions"] == "3rd floor, ring twice"


async def test_a_replayed_idempotency_key_returns_the_same_order(city, client, customer) -> None:
    sku = _in_stock(city.database_url, 1)[0]
    cart_id = await _cart_with(client, customer, {sku: 1})
    first = await _checkout(client, customer, cart_id, key="k-1")
    again = await _checkout(client, customer, cart_id, key="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["order_id"] == first.json()["order_id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await _checkout(
        client, customer, cart_id, key="k-1", body={**ADDRESS, "payment_method": "card"}
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    with psycopg.connect(city.database_url) as conn:
        assert one_row(conn.execute("SELECT count(*) FROM orders"))[0] == 1


async def test_out_of_zone_address_is_refused_at_checkout(city, client, customer) -> None:
    sku = _in_stock(city.database_url, 1)[0]
    cart_id = await _cart_with(client, customer, {sku: 1})
    far = {"address": {"line1": "Connaught Place", "lat": 28.63, "lng": 77.22}}
    r = await _checkout(client, customer, cart_id, body=far)
    assert r.status_code == 409 and r.json()["code"] == "not_serviceable"
    cart = (await client.get(f"/v1/carts/{cart_id}", headers=customer)).json()
    assert cart["status"] == "ACTIVE" and cart["lines"]  # nothing was lost


async def test_out_of_stock_line_is_refused_with_the_short_line(city, client, customer) -> None:
    sku = _in_stock(city.database_url, 1)[0]
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=customer)).json()
    # a cycle count leaves 4 on the shelf (fewer than a cart may hold of one product)
    with psycopg.connect(city.database_url) as conn:
        version = one_row(
            conn.execute(
                "SELECT version FROM store_inventory WHERE store_id = %s AND sku_id = %s",
                (STORE, sku),
            )
        )[0]
    manager = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    counted = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/count",
        json={"counted": 4, "version": version, "reason": "test"},
        headers=manager,
    )
    assert counted.status_code == 200, counted.text
    available = pg_stock(city.database_url, STORE, sku)[0]
    assert available == 4
    r = await client.put(
        f"/v1/carts/{cart['cart_id']}/lines/{sku}",
        json={"quantity": available + 1},
        headers=customer,
    )
    assert r.status_code == 409 and r.json()["code"] == "insufficient_stock"
    assert r.json()["lines"][0]["sku_id"] == sku


async def test_an_expired_cart_cannot_check_out(city, app, client, customer) -> None:
    sku = _in_stock(city.database_url, 1)[0]
    before = pg_stock(city.database_url, STORE, sku)
    cart_id = await _cart_with(client, customer, {sku: 2})
    resources = resources_of(app)
    resources.clock.advance(601)
    await sweep_store(resources.sessions, resources.redis, resources.clock, STORE)
    assert pg_stock(city.database_url, STORE, sku) == before
    cart = (await client.get(f"/v1/carts/{cart_id}", headers=customer)).json()
    assert cart["status"] == "EXPIRED" and cart["lines"] == []
    r = await _checkout(client, customer, cart_id)
    assert r.status_code == 409 and r.json()["code"] == "cart_expired"


async def test_payment_failure_puts_the_stock_back(city, app, client, customer) -> None:
    simulated_provider(app).failure_rate = 1.0
    sku = _in_stock(city.database_url, 1)[0]
    before = pg_stock(city.database_url, STORE, sku)
    cart_id = await _cart_with(client, customer, {sku: 2})
    r = await _checkout(client, customer, cart_id)
    assert r.status_code == 402 and r.json()["code"] == "payment_failed"
    order = (await client.get(f"/v1/orders/{r.json()['order_id']}", headers=customer)).json()
    assert order["status"] == "CANCELLED" and order["cancel_reason"].startswith("payment_failed")
    assert pg_stock(city.database_url, STORE, sku) == before


async def test_an_open_breaker_answers_fast_with_503_and_reserves_nothing(
    city, app, client, customer
) -> None:
    resources = resources_of(app)
    breaker = resources.payments.breaker
    now = resources.clock.now().timestamp()
    for _ in range(breaker.config.min_calls):
        permit = await breaker.before_call(now)
        await breaker.record(False, now, permit=permit)
    sku = _in_stock(city.database_url, 1)[0]
    cart_id = await _cart_with(client, customer, {sku: 1})
    held = pg_stock(city.database_url, STORE, sku)
    r = await _checkout(client, customer, cart_id)
    assert r.status_code == 503 and r.json()["code"] == "payment_unavailable"
    assert int(r.headers["retry-after"]) >= 1
    assert pg_stock(city.database_url, STORE, sku) == held  # still only the cart's soft hold
    with psycopg.connect(city.database_url) as conn:
        assert one_row(conn.execute("SELECT count(*) FROM orders"))[0] == 0


async def test_payments_unavailable_after_placing_give_the_cart_back(
    city, app, client, customer
) -> None:
    resources = resources_of(app)
    gateway, slots = resources.payments, resources.settings.payment_bulkhead
    sku = _in_stock(city.database_url, 1)[0]
    cart_id = await _cart_with(client, customer, {sku: 2})
    held = pg_stock(city.database_url, STORE, sku)
    for _ in range(slots):  # every provider slot is busy: the charge cannot even be asked
        await gateway._slots.acquire()
    try:
        busy = await _checkout(client, customer, cart_id, key="busy-1")
    finally:
        for _ in range(slots):
            gateway._slots.release()
    assert busy.status_code == 503 and busy.json()["code"] == "payment_unavailable"
    # not the customer's doing: the order is cancelled, the cart is back with its holds
    cart = (await client.get(f"/v1/carts/{cart_id}", headers=customer)).json()
    assert cart["status"] == "ACTIVE"
    assert [(ln["sku_id"], ln["quantity"]) for ln in cart["lines"]] == [(sku, 2)]
    assert pg_stock(city.database_url, STORE, sku) == held
    # the same key again: the compensation dropped its claim, so the retry starts afresh
    # (a new order, not the cancelled one resumed)
    r = await _checkout(client, customer, cart_id, key="busy-1")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "CONFIRMED"
    with psycopg.connect(city.database_url) as conn:
        reasons = sorted(
            str(reason)
            for (reason,) in conn.execute(
                "SELECT cancel_reason FROM orders WHERE cart_id = %s", (cart_id,)
            )
        )
    assert reasons == ["None", "payment_unavailable"]


async def test_cancel_before_picking_returns_stock_and_after_is_409(city, client, customer) -> None:
    sku = _in_stock(city.database_url, 1)[0]
    before = pg_stock(city.database_url, STORE, sku)
    order = (await _checkout(client, customer, await _cart_with(client, customer, {sku: 2}))).json()
    r = await client.post(
        f"/v1/orders/{order['order_id']}/cancel", json={"reason": "oops"}, headers=customer
    )
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
    assert pg_stock(city.database_url, STORE, sku) == before
    with psycopg.connect(city.database_url) as conn:
        refund = conn.execute(
            "SELECT amount_paise FROM refunds WHERE order_id = %s", (order["order_id"],)
        ).fetchone()
    assert refund == (order["total_amount_paise"],)

    second = (
        await _checkout(client, customer, await _cart_with(client, customer, {sku: 1}))
    ).json()
    with psycopg.connect(city.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE orders SET status = 'PICKING' WHERE order_id = %s", (second["order_id"],)
        )
    late = await client.post(f"/v1/orders/{second['order_id']}/cancel", json={}, headers=customer)
    assert late.status_code == 409 and late.json()["code"] == "too_late_to_cancel"


async def test_another_customer_cannot_read_cancel_or_track(city, live_server) -> None:
    async with live_server.client() as client:
        owner = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
        other = await login(client, "customer.002", DEMO_SECRETS[Role.CUSTOMER])
        sku = _in_stock(city.database_url, 1)[0]
        order = (await _checkout(client, owner, await _cart_with(client, owner, {sku: 1}))).json()
        oid = order["order_id"]
        assert (await client.get(f"/v1/orders/{oid}", headers=other)).status_code == 404
        r = await client.post(f"/v1/orders/{oid}/cancel", json={}, headers=other)
        assert r.status_code == 404
        assert (await client.get("/v1/orders", headers=other)).json()["items"] == []
        ws_url = live_server.url.replace("http", "ws") + f"/ws/orders/{oid}"
        async with websockets.connect(f"{ws_url}?token={other['Authorization'][7:]}") as ws:
            refused = json.loads(await ws.recv())
            assert refused["type"] == "error" and refused["error"]["code"] == "order_not_found"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
        # someone else's cart is invisible too
        cart = await _cart_with(client, owner, {sku: 1})
        assert (await client.get(f"/v1/carts/{cart}", headers=other)).status_code == 404


async def test_removing_a_line_releases_its_hold(city, app, client, customer) -> None:
    sku = _in_stock(city.database_url, 1)[0]
    before = pg_stock(city.database_url, STORE, sku)
    resources = resources_of(app)
    cart_id = await _cart_with(client, customer, {sku: 2})
    await journal.drain(resources.engine, resources.redis, STORE)  # the writer's next run
    assert pg_stock(city.database_url, STORE, sku)[1] == before[1] + 2
    r = await client.delete(f"/v1/carts/{cart_id}/lines/{sku}", headers=customer)
    assert r.status_code == 200 and r.json()["lines"] == []
    await journal.drain(resources.engine, resources.redis, STORE)
    assert pg_stock(city.database_url, STORE, sku) == before


async def test_an_order_whose_payment_never_settles_is_cancelled_and_released(
    city, app, client, customer
) -> None:
    """The sweep asks the provider: still pending after the window, the order is
    cancelled and its stock released; money arriving later is owed back."""
    from server.orders.unpaid import settle_unpaid

    resources = resources_of(app)
    simulated_provider(app).pending_rate = 1.0  # the webhook never comes
    sku = _in_stock(city.database_url, 1)[0]
    before = pg_stock(city.database_url, STORE, sku)
    order = (await _checkout(client, customer, await _cart_with(client, customer, {sku: 2}))).json()
    assert order["status"] == "PLACED"
    settings = resources.settings

    async def sweep() -> int:
        return await settle_unpaid(
            resources.sessions,
            resources.redis,
            gateway=resources.payments,
            now=resources.clock.now(),
            window_s=settings.payment_window_s,
        )

    assert await sweep() == 0
    resources.clock.advance(settings.payment_window_s + 1)
    assert await sweep() == 1
    final = (await client.get(f"/v1/orders/{order['order_id']}", headers=customer)).json()
    assert final["status"] == "CANCELLED" and final["cancel_reason"] == "payment_timeout"
    assert pg_stock(city.database_url, STORE, sku) == before

    with psycopg.connect(city.database_url) as conn:
        payment_id = one_row(
            conn.execute(
                "SELECT payment_id FROM payments WHERE order_id = %s", (order["order_id"],)
            )
        )[0]
    late = simulated_provider(app).webhook_event(
        str(payment_id), now_ts=resources.clock.now().timestamp()
    )
    hook = await client.post("/v1/payments/webhook", content=late.body, headers=late.headers)
    assert hook.status_code == 200
    with psycopg.connect(city.database_url) as conn:
        refunds = conn.execute(
            "SELECT amount_paise, reason FROM refunds WHERE order_id = %s", (order["order_id"],)
        ).fetchall()
    assert refunds == [(final["total_amount_paise"], "order_cancelled")]


async def test_an_unpaid_order_the_books_refuse_does_not_hold_up_the_others(
    city, app, client, customer
) -> None:
    """The payment sweep takes the oldest unpaid orders first: one whose settlement the
    books refuse (here its SKU's stock row short of the hold, as a drift would leave it)
    is left for the next sweep, and the orders behind it are still settled."""
    from server.orders.unpaid import settle_unpaid

    resources = resources_of(app)
    simulated_provider(app).pending_rate = 1.0  # the webhook never comes
    stuck_sku, sku = _in_stock(city.database_url, 2)
    stuck = (
        await _checkout(client, customer, await _cart_with(client, customer, {stuck_sku: 2}))
    ).json()
    resources.clock.advance(1)  # placed after it
    behind = (
        await _checkout(client, customer, await _cart_with(client, customer, {sku: 1}))
    ).json()
    assert stuck["status"] == behind["status"] == "PLACED"
    with psycopg.connect(city.database_url) as conn:
        conn.execute(
            "UPDATE store_inventory SET reserved_qty = 0 WHERE store_id = %s AND sku_id = %s",
            (STORE, stuck_sku),
        )
    resources.clock.advance(resources.settings.payment_window_s + 1)
    settled = await settle_unpaid(
        resources.sessions,
        resources.redis,
        gateway=resources.payments,
        now=resources.clock.now(),
        window_s=resources.settings.payment_window_s,
    )
    assert settled == 1
    status = {
        o: (await client.get(f"/v1/orders/{o}", headers=customer)).json()["status"]
        for o in (stuck["order_id"], behind["order_id"])
    }
    assert status == {stuck["order_id"]: "PLACED", behind["order_id"]: "CANCELLED"}


async def test_a_due_hold_the_books_refuse_does_not_hold_up_the_others(
    city, app, client, customer
) -> None:
    """The expiry sweep takes a store's due holds earliest first: one whose end the books
    refuse (its SKU's stock row short of it) is left for the next sweep, and the holds due
    after it are still released."""
    from server.inventory.sweeper import sweep_store

    resources = resources_of(app)
    simulated_provider(app).pending_rate = 1.0  # the orders stay PLACED, their holds HARD
    stuck_sku, sku = _in_stock(city.database_url, 2)
    for skus in ({stuck_sku: 2}, {sku: 1}):
        placed = await _checkout(client, customer, await _cart_with(client, customer, skus))
        assert placed.json()["status"] == "PLACED"
        resources.clock.advance(1)  # the second's hold falls due after the first's
    before = pg_stock(city.database_url, STORE, sku)
    with psycopg.connect(city.database_url) as conn:
        conn.execute(
            "UPDATE store_inventory SET reserved_qty = 0 WHERE store_id = %s AND sku_id = %s",
            (STORE, stuck_sku),
        )
    resources.clock.advance(resources.settings.payment_window_s + 1)
    assert await sweep_store(resources.sessions, resources.redis, resources.clock, STORE) == 1
    after = pg_stock(city.database_url, STORE, sku)
    assert (after[0], after[1]) == (before[0] + 1, before[1] - 1)  # the unit back on the shelf
