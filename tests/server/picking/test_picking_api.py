"""Picking over HTTP: claim, walk-sorted list, scans, wrong items, shorts, substitutes, pack."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import psycopg
import pytest

from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login, one_row
from tests.server.inventory.helpers import ledger_sum, pg_stock

STORE = "BLR-KOR"
ADDRESS = {"address": {"line1": "5th Block", "lat": 12.9352, "lng": 77.6245}}


async def place_confirmed_order(client: httpx.AsyncClient, url: str, lines: int = 3) -> dict:
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    with psycopg.connect(url) as conn:
        skus = [
            r[0]
            for r in conn.execute(
                "SELECT i.sku_id FROM store_inventory i JOIN store_bins b ON b.store_id = i.store_id "
                "AND b.bin_code = i.bin_code WHERE i.store_id = %s AND i.available_qty >= 5 "
                "ORDER BY i.sku_id DESC LIMIT %s",
                (STORE, lines),
            )
        ]
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=customer)).json()
    for n, sku in enumerate(skus):
        await client.put(
            f"/v1/carts/{cart['cart_id']}/lines/{sku}",
            json={"quantity": 1 + n % 2},
            headers=customer,
        )
    r = await client.post(
        f"/v1/carts/{cart['cart_id']}/checkout",
        json=ADDRESS,
        headers={**customer, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201 and r.json()["status"] == "CONFIRMED", r.text
    return r.json()


@pytest.fixture
async def picker(city, client) -> dict[str, str]:
    return await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])


async def _scan(client, headers, order_id: str, code: str, scan_id: str | None = None):
    return await client.post(
        f"/v1/picking/tasks/{order_id}/scans",
        json={"scan_id": scan_id or uuid.uuid4().hex, "code": code},
        headers=headers,
    )


async def test_a_confirmed_order_is_claimed_picked_in_walk_order_and_packed(
    city, client, picker
) -> None:
    order = await place_confirmed_order(client, city.database_url)
    queue = (await client.get(f"/v1/picking/stores/{STORE}/queue", headers=picker)).json()
    assert [t["order_id"] for t in queue] == [order["order_id"]]
    assert queue[0]["seconds_left"] > 0
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    assert task["order_id"] == order["order_id"] and task["status"] == "PICKING"
    seqs = [ln["walk_seq"] for ln in task["lines"]]
    assert seqs == sorted(seqs) and task["estimate_s"] > 0
    for line in task["lines"]:
        for _ in range(line["quantity"]):
            r = await _scan(client, picker, order["order_id"], line["barcode"])
            assert r.status_code == 200, r.text
    assert r.json()["order_complete"] is True
    packed = await client.post(
        f"/v1/picking/tasks/{order['order_id']}/pack", json={"bag_count": 2}, headers=picker
    )
    assert packed.status_code == 200 and packed.json()["bag_label"].startswith("QC-KOR-")
    with psycopg.connect(city.database_url) as conn:
        status, picking_at, packed_at = one_row(
            conn.execute(
                "SELECT status, picking_at, packed_at FROM orders WHERE order_id = %s",
                (order["order_id"],),
            )
        )
        started = one_row(
            conn.execute(
                "SELECT count(*) FROM outbox WHERE topic = 'picking.started' AND aggregate_id = %s",
                (order["order_id"],),
            )
        )[0]
    assert status == "PACKED" and picking_at <= packed_at and started == 1


async def test_wrong_item_over_pick_and_retried_scans(city, client, picker) -> None:
    order = await place_confirmed_order(client, city.database_url, lines=2)
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    first = task["lines"][0]
    wrong = await _scan(client, picker, order["order_id"], "4006381333931")
    assert wrong.status_code == 409 and wrong.json()["code"] == "wrong_item"
    assert wrong.json()["expected_sku"] == first["sku_id"]
    ok = await _scan(client, picker, order["order_id"], first["barcode"], scan_id="s-1")
    again = await _scan(client, picker, order["order_id"], first["barcode"], scan_id="s-1")
    assert (
        again.json()["replayed"] is True and again.json()["picked_qty"] == ok.json()["picked_qty"]
    )
    for _ in range(first["quantity"] - 1):
        await _scan(client, picker, order["order_id"], first["barcode"])
    over = await _scan(client, picker, order["order_id"], first["barcode"])
    assert over.status_code == 409 and over.json()["code"] == "over_pick"
    gs1 = "(01)0" + task["lines"][1]["barcode"] + "(17)271231(10)LOT7"
    assert (await _scan(client, picker, order["order_id"], gs1)).status_code == 200
    early = await client.post(
        f"/v1/picking/tasks/{order['order_id']}/pack", json={"bag_count": 1}, headers=picker
    )
    incomplete = task["lines"][1]["quantity"] > 1
    assert (early.status_code == 409) == incomplete


async def test_short_pick_with_a_substitute_ends_partially_fulfilled_then_packed(
    city, client, picker
) -> None:
    order = await place_confirmed_order(client, city.database_url, lines=2)
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    short_line = next(ln for ln in task["lines"] if ln["quantity"] >= 2)
    ledger_before = ledger_sum(city.database_url, STORE, short_line["sku_id"])
    r = await client.post(
        f"/v1/picking/tasks/{order['order_id']}/short",
        headers=picker,
        json={"sku_id": short_line["sku_id"], "found_qty": 1, "reason": "missing"},
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["short_qty"] == short_line["quantity"] - 1 and result["policy"] == "substitute"
    assert result["substitutes"], "a same-category item in stock should be offered"
    with psycopg.connect(city.database_url) as conn:
        status = one_row(
            conn.execute("SELECT status FROM orders WHERE order_id = %s", (order["order_id"],))
        )[0]
        movements = conn.execute(
            "SELECT movement FROM stock_ledger WHERE reference = %s AND sku_id = %s",
            (order["order_id"], short_line["sku_id"]),
        ).fetchall()
    assert status == "PARTIALLY_FULFILLED" and ("SHORT_PICK",) in movements
    assert ledger_sum(city.database_url, STORE, short_line["sku_id"]) == ledger_before
    sub = result["substitutes"][0]
    before = pg_stock(city.database_url, STORE, sub["sku_id"])
    r = await client.post(
        f"/v1/picking/tasks/{order['order_id']}/substitute",
        headers=picker,
        json={
            "sku_id": short_line["sku_id"],
            "substitute_sku": sub["sku_id"],
            "quantity": result["short_qty"],
        },
    )
    assert r.status_code == 200, r.text
    assert pg_stock(city.database_url, STORE, sub["sku_id"])[0] == before[0] - result["short_qty"]
    for line in r.json()["lines"]:
        for _ in range(line["quantity"] - line["picked_qty"]):
            assert (
                await _scan(client, picker, order["order_id"], line["barcode"])
            ).status_code == 200
    packed = await client.post(
        f"/v1/picking/tasks/{order['order_id']}/pack", json={"bag_count": 1}, headers=picker
    )
    assert packed.status_code == 200
    with psycopg.connect(city.database_url) as conn:
        items: dict[str, str] = dict(
            conn.execute(
                "SELECT sku_id, status FROM order_items WHERE order_id = %s", (order["order_id"],)
            ).fetchall()
        )
        refund = one_row(
            conn.execute(
                "SELECT sum(amount_paise) FROM refunds WHERE order_id = %s", (order["order_id"],)
            )
        )[0]
        status = one_row(
            conn.execute("SELECT status FROM orders WHERE order_id = %s", (order["order_id"],))
        )[0]
    assert items[short_line["sku_id"]] == "SUBSTITUTED" and items[sub["sku_id"]] == "FULFILLED"
    assert status == "PACKED" and refund is not None and refund >= 0


async def test_two_pickers_claiming_at_once_never_share_a_task(city, client) -> None:
    for _ in range(3):
        await place_confirmed_order(client, city.database_url, lines=1)
    a = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    b = await login(client, "picker.kor.2", DEMO_SECRETS[Role.PICKER])
    results = await asyncio.gather(*(client.post("/v1/picking/claim", headers=h) for h in (a, b)))
    claimed = [r.json()["order_id"] for r in results]
    assert all(r.status_code == 200 for r in results) and len(set(claimed)) == 2


async def test_a_picker_of_another_store_sees_nothing(city, client) -> None:
    await place_confirmed_order(client, city.database_url, lines=1)
    other = await login(client, "picker.ind.1", DEMO_SECRETS[Role.PICKER])
    r = await client.get(f"/v1/picking/stores/{STORE}/queue", headers=other)
    assert r.status_code == 403
    r = await client.post("/v1/picking/claim", headers=other)
    assert r.status_code == 404 and r.json()["code"] == "queue_empty"


async def test_a_retried_pack_returns_the_same_bag_label(city, client, picker) -> None:
    order = await place_confirmed_order(client, city.database_url, lines=1)
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    for line in task["lines"]:
        for _ in range(line["quantity"]):
            await _scan(client, picker, order["order_id"], line["barcode"])
    first = await client.post(
        f"/v1/picking/tasks/{order['order_id']}/pack", json={"bag_count": 1}, headers=picker
    )
    again = await client.post(
        f"/v1/picking/tasks/{order['order_id']}/pack", json={"bag_count": 1}, headers=picker
    )
    assert first.status_code == again.status_code == 200
    assert again.json()["bag_label"] == first.json()["bag_label"]


async def test_a_cancelled_order_leaves_the_pick_queue(city, client, picker) -> None:
    order = await place_confirmed_order(client, city.database_url, lines=1)
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    r = await client.post(f"/v1/orders/{order['order_id']}/cancel", json={}, headers=customer)
    assert r.status_code == 200
    queue = (await client.get(f"/v1/picking/stores/{STORE}/queue", headers=picker)).json()
    assert queue == []
    r = await client.post("/v1/picking/claim", headers=picker)
    assert r.status_code == 404 and r.json()["code"] == "queue_empty"


async def test_a_cancelled_order_with_a_refunded_short_is_refunded_once(
    city, client, picker
) -> None:
    """The short line's refund and the cancel's add up to what was paid, not more."""
    with psycopg.connect(city.database_url) as conn:
        conn.execute(
            "UPDATE dark_stores SET substitution_policy = 'never' WHERE store_id = %s", (STORE,)
        )
    order = await place_confirmed_order(client, city.database_url, lines=2)
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    short_line = next(ln for ln in task["lines"] if ln["quantity"] >= 2)
    r = await client.post(
        f"/v1/picking/tasks/{order['order_id']}/short",
        headers=picker,
        json={"sku_id": short_line["sku_id"], "found_qty": 1, "reason": "missing"},
    )
    assert r.status_code == 200 and r.json()["policy"] == "never", r.text
    manager = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    r = await client.post(
        f"/v1/ops/orders/{order['order_id']}/cancel",
        json={"reason": "customer unreachable"},
        headers=manager,
    )
    assert r.status_code == 200, r.text
    with psycopg.connect(city.database_url) as conn:
        rows = conn.execute(
            "SELECT reason, amount_paise FROM refunds WHERE order_id = %s AND status <> 'VOID'",
            (order["order_id"],),
        ).fetchall()
        (paid,) = one_row(
            conn.execute(
                "SELECT amount_paise FROM payments WHERE order_id = %s AND status = 'SUCCEEDED'",
                (order["order_id"],),
            )
        )
    assert len(rows) == 2 and "order_cancelled" in [reason for reason, _ in rows]
    assert sum(amount for _, amount in rows) == paid
