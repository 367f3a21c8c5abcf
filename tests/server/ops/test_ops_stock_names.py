"""The control tower names two "out of stock" apart (issue 22): SKUs a store sold out of
today (customers took the last units) and SKUs empty since before today (never stocked,
or not restocked): the feed counts both, the first apart."""

from __future__ import annotations

import uuid

import psycopg

from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login, one_row
from tests.server.ops.ops_script import MANAGER, STORE
from tests.server.picking.test_picking_api import ADDRESS


def _kor(snapshot: dict) -> dict:
    return next(s for s in snapshot["stores"] if s["store_id"] == STORE)


async def test_sold_out_today_is_counted_apart_from_empty_shelves(city, client) -> None:
    manager = await login(client, *MANAGER)
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    with psycopg.connect(city.database_url, autocommit=True) as conn:
        sku, version = one_row(
            conn.execute(
                "SELECT sku_id, version FROM store_inventory WHERE store_id = %s "
                "AND available_qty >= 5 ORDER BY sku_id LIMIT 1",
                (STORE,),
            )
        )
        (empty,) = one_row(
            conn.execute(
                "SELECT count(*) FROM store_inventory WHERE store_id = %s AND available_qty = 0",
                (STORE,),
            )
        )
    before = _kor((await client.get("/v1/ops/snapshot?city=BLR", headers=manager)).json())
    assert (before["stock_outs"], before["sold_out_today"]) == (empty, 0)  # none sold yet

    counted = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/count",
        json={"counted": 1, "version": version, "reason": "test"},
        headers=manager,
    )
    assert counted.status_code == 200, counted.text
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=customer)).json()
    line = await client.put(
        f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 1}, headers=customer
    )
    assert line.status_code == 200, line.text
    paid = await client.post(
        f"/v1/carts/{cart['cart_id']}/checkout",
        json=ADDRESS,
        headers={**customer, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert paid.status_code == 201, paid.text  # the last unit sold

    after = _kor((await client.get("/v1/ops/snapshot?city=BLR", headers=manager)).json())
    assert after["stock_outs"] == empty + 1
    assert after["sold_out_today"] == 1
