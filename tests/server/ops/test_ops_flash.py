"""Flash-sale queues in the control-tower feed, and stopping a sale from it (audited)."""

from __future__ import annotations

import psycopg

from shared.schemas.ops import OpsSnapshot
from tests.server.flash.flash_helpers import (
    STORE,
    create_sale,
    flash_sku,
    manager_headers,
    stock_up,
)


async def test_a_live_sale_shows_its_queue_and_a_stop_is_audited(city, app, client, clock) -> None:
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 50)
    headers = manager_headers(clock, city.database_url)
    sale = await create_sale(client, headers, clock, sku=sku, units=20)
    r = await client.get("/v1/ops/snapshot", params={"city": "BLR"}, headers=headers)
    (queue,) = OpsSnapshot.model_validate(r.json()).city.flash_queues
    assert (str(queue.sale_id), queue.sku_id) == (sale["sale_id"], sku)
    assert (queue.tokens_left, queue.sold, queue.waiting, queue.in_checkout) == (20, 0, 0, 0)

    r = await client.post(
        f"/v1/flash-sales/{sale['sale_id']}/stop", json={"reason": "price error"}, headers=headers
    )
    assert r.status_code == 200, r.text
    r = await client.get("/v1/ops/snapshot", params={"city": "BLR"}, headers=headers)
    assert OpsSnapshot.model_validate(r.json()).city.flash_queues == []
    with psycopg.connect(city.database_url) as conn:
        actions = conn.execute(
            "SELECT action, target, reason FROM ops_audit_log ORDER BY entry_id"
        ).fetchall()
    assert actions[-1] == ("flash.stop", sale["sale_id"], "price error")
