"""A confirmed order's pick task is written by one statement that walks its lines in SQL:
its features, estimate and event must be what ``walk.pick_features`` and the store's
model make of the same lines in Python (lines across aisles, two in one aisle, one with no
bin at the path's start)."""

from __future__ import annotations

import uuid

import psycopg

from server.kit.resources import resources_of
from server.picking.service import pick_time_model, task_lines
from server.picking.walk import PickFeatures, PickLine, pick_features
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login

STORE = "BLR-KOR"
ADDRESS = {"address": {"line1": "5th Block", "lat": 12.9352, "lng": 77.6245}}


def _spread_skus(url: str) -> list[str]:
    """SKUs in stock from several aisles (two from the first), in no walk order."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT i.sku_id, b.aisle FROM store_inventory i JOIN store_bins b "
            "ON b.store_id = i.store_id AND b.bin_code = i.bin_code "
            "WHERE i.store_id = %s AND i.available_qty >= 5 ORDER BY i.sku_id DESC",
            (STORE,),
        ).fetchall()
    by_aisle: dict[str, list[str]] = {}
    for sku, aisle in rows:
        by_aisle.setdefault(aisle, []).append(sku)
    aisles = sorted(by_aisle)
    assert len(aisles) >= 3, "the seed lays several aisles out"
    chosen = by_aisle[aisles[0]][:2] + [by_aisle[a][0] for a in aisles[1:4]]
    return list(reversed(chosen))


async def _order(client, headers, skus: list[str]) -> str:
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    for n, sku in enumerate(skus):
        r = await client.put(
            f"/v1/carts/{cart['cart_id']}/lines/{sku}",
            json={"quantity": 1 + n % 3},
            headers=headers,
        )
        assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/carts/{cart['cart_id']}/checkout",
        json=ADDRESS,
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201 and r.json()["status"] == "CONFIRMED", r.text
    return str(r.json()["order_id"])


async def _expected(app, order_id: str) -> tuple[PickFeatures, float, int]:
    async with resources_of(app).sessions() as session:
        lines = await task_lines(session, STORE, uuid.UUID(order_id))
        model = await pick_time_model(session, store_id=STORE)
    features = pick_features(
        [PickLine(ln.sku_id, ln.quantity, ln.aisle or "", ln.walk_seq or 0) for ln in lines]
    )
    return features, model.features_s(features), len(lines)


async def test_the_pick_tasks_features_estimate_and_event_match_the_python_walk(
    city, app, client
) -> None:
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    skus = _spread_skus(city.database_url)
    with psycopg.connect(city.database_url, autocommit=True) as conn:
        # one line with no bin: walk position 0, aisle '' (the path's start)
        conn.execute(
            "UPDATE store_inventory SET bin_code = NULL WHERE store_id = %s AND sku_id = %s",
            (STORE, skus[1]),
        )
    orders = [await _order(client, headers, skus), await _order(client, headers, skus[2:3])]
    for order_id in orders:
        features, estimate, n_lines = await _expected(app, order_id)
        with psycopg.connect(city.database_url) as conn:
            task = conn.execute(
                "SELECT bin_steps, aisle_changes, units, estimate_s FROM pick_tasks "
                "WHERE store_id = %s AND order_id = %s",
                (STORE, order_id),
            ).fetchone()
            event = conn.execute(
                "SELECT payload FROM outbox WHERE topic = 'picking.queued' AND aggregate_id = %s",
                (order_id,),
            ).fetchone()
        assert task is not None and event is not None
        assert tuple(task[:3]) == features
        assert task[3] == estimate > 0
        payload = event[0]
        assert payload["lines"] == n_lines and payload["units"] == features[2]
        assert payload["estimate_s"] == estimate
        assert payload["order_id"] == order_id and payload["status"] == "WAITING"
    assert (await _expected(app, orders[0]))[0][1] >= 2, "the walk crossed aisles"
