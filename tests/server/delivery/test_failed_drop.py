"""A failed drop: the bag comes back to the store (sellable or damaged) and the money back."""

from __future__ import annotations

import uuid

import psycopg

from server.kit.resources import resources_of
from server.payments.refunds import pay_refunds
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login, one_row, pick_and_pack
from tests.server.delivery.test_delivery_api import STORE, out_for_delivery
from tests.server.inventory.helpers import ledger_sum, pg_stock, redis_stock
from tests.server.picking.test_picking_api import ADDRESS


def _binned_sku(url: str, chilled: bool) -> str:
    """A pickable SKU of a chilled category (dairy, meat/fish) or of a shelf-stable one."""
    with psycopg.connect(url) as conn:
        return one_row(
            conn.execute(
                "SELECT i.sku_id FROM store_inventory i JOIN store_bins b ON b.store_id = i.store_id "
                "AND b.bin_code = i.bin_code JOIN products p ON p.sku_id = i.sku_id "
                "WHERE i.store_id = %s AND i.available_qty >= 5 "
                f"AND p.category_id {'' if chilled else 'NOT'} IN ('dairy-bread-eggs', 'meat-fish') "
                "ORDER BY i.sku_id LIMIT 1",
                (STORE,),
            )
        )[0]


async def test_a_failed_drop_returns_the_bag_and_owes_the_refund(city, live_server, stack) -> None:
    url = city.database_url
    chilled, sealed = _binned_sku(url, True), _binned_sku(url, False)
    before = {sku: pg_stock(url, STORE, sku) for sku in (chilled, sealed)}
    ledger_before = {sku: ledger_sum(url, STORE, sku) for sku in (chilled, sealed)}
    async with live_server.client() as client:
        customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
        cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=customer)).json()
        for sku, qty in ((chilled, 2), (sealed, 1)):
            r = await client.put(
                f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": qty}, headers=customer
            )
            assert r.status_code == 200, r.text
        order = (
            await client.post(
                f"/v1/carts/{cart['cart_id']}/checkout",
                json=ADDRESS,
                headers={**customer, "Idempotency-Key": uuid.uuid4().hex},
            )
        ).json()
        assert order["status"] == "CONFIRMED"
        bag = await pick_and_pack(client, order["order_id"])
        rider, tid = await out_for_delivery(client, live_server, stack, bag)
        r = await client.post(
            f"/v1/trips/{tid}/stops/{order['order_id']}/fail",
            headers=rider,
            json={"reason": "customer not at the address"},
        )
        assert r.status_code == 200, r.text
        view = (await client.get(f"/v1/orders/{order['order_id']}", headers=customer)).json()

    assert view["status"] == "CANCELLED"
    (refund,) = view["refunds"]
    assert (refund["amount_paise"], refund["reason"], refund["status"]) == (
        order["total_amount_paise"],
        "delivery_failed",
        "PENDING",
    )
    # the sealed unit is sellable again; the chilled ones came back damaged
    a, r_, d, t = before[sealed]
    assert pg_stock(url, STORE, sealed) == (a, r_, d, t)
    a, r_, d, t = before[chilled]
    assert pg_stock(url, STORE, chilled) == (a - 2, r_, d + 2, t)
    for sku in (chilled, sealed):
        # conservation: the books moved by the ledger's sum, and Redis agrees with them
        moved = tuple(n - o for n, o in zip(pg_stock(url, STORE, sku), before[sku], strict=True))
        booked = tuple(
            n - o for n, o in zip(ledger_sum(url, STORE, sku), ledger_before[sku], strict=True)
        )
        assert moved == booked
        assert await redis_stock(stack.redis, STORE, sku) == pg_stock(url, STORE, sku)
    with psycopg.connect(url) as conn:
        movements = conn.execute(
            "SELECT sku_id, d_available, d_damaged FROM stock_ledger "
            "WHERE reference = %s AND movement = 'RETURN' ORDER BY sku_id",
            (order["order_id"],),
        ).fetchall()
    assert sorted(movements) == sorted([(chilled, 0, 2), (sealed, 1, 0)])

    resources = resources_of(live_server.app)
    await pay_refunds(stack.sessions, gateway=resources.payments, now=live_server.clock.now())
    with psycopg.connect(url) as conn:
        status = one_row(
            conn.execute("SELECT status FROM refunds WHERE order_id = %s", (order["order_id"],))
        )[0]
    assert status == "SUCCEEDED"
