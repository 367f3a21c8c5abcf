"""Staff stock operations over HTTP: view, receive, damage, cycle count; bad input."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from server.kit import keys
from server.kit.resources import resources_of
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login, one_row
from tests.server.inventory.helpers import ledger_sum, pg_stock, redis_stock

STORE = "BLR-KOR"


@pytest.fixture
async def picker(city, client: httpx.AsyncClient) -> dict[str, str]:
    return await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])


def _sku(url: str, where: str = "available_qty >= 5") -> str:
    with psycopg.connect(url) as conn:
        return one_row(
            conn.execute(
                f"SELECT sku_id FROM store_inventory WHERE store_id = %s AND {where} "
                "ORDER BY sku_id LIMIT 1",
                (STORE,),
            )
        )[0]


async def test_picker_views_own_store_stock_by_pages(city, client, picker) -> None:
    r = await client.get(f"/v1/stores/{STORE}/inventory", params={"limit": 100}, headers=picker)
    assert r.status_code == 200
    body = r.json()
    assert len(body["items"]) == 100 and body["next_cursor"]
    rest = (
        await client.get(
            f"/v1/stores/{STORE}/inventory",
            params={"limit": 100, "cursor": body["next_cursor"]},
            headers=picker,
        )
    ).json()
    assert len(body["items"]) + len(rest["items"]) == 150 and rest["next_cursor"] is None
    low = (
        await client.get(
            f"/v1/stores/{STORE}/inventory", params={"low_stock": True}, headers=picker
        )
    ).json()["items"]
    assert all(i["available_qty"] <= i["reorder_level"] for i in low)


async def test_picker_cannot_touch_another_store(city, client, picker) -> None:
    r = await client.get("/v1/stores/BLR-IND/inventory", headers=picker)
    assert r.status_code == 403 and r.json()["code"] == "not_your_store"


async def test_customer_is_refused(city, client) -> None:
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    r = await client.get(f"/v1/stores/{STORE}/inventory", headers=headers)
    assert r.status_code == 403


async def test_receive_a_transfer_moves_in_transit_to_available(city, app, client, picker) -> None:
    sku = _sku(city.database_url)
    with psycopg.connect(city.database_url) as conn:
        conn.execute(
            "UPDATE store_inventory SET in_transit_qty = 10 WHERE store_id = %s AND sku_id = %s",
            (STORE, sku),
        )
    # reload the store from PostgreSQL
    await resources_of(app).redis.delete(keys.store_ready(STORE))
    before = pg_stock(city.database_url, STORE, sku)
    r = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/receive",
        json={"quantity": 6, "reference": "TRF-1"},
        headers=picker,
    )
    assert r.status_code == 200, r.text
    assert pg_stock(city.database_url, STORE, sku) == (before[0] + 6, before[1], before[2], 4)
    assert ledger_sum(city.database_url, STORE, sku) == (6, 0, 0, -6)
    # more than is in transit: refused, nothing moves
    r = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/receive", json={"quantity": 5}, headers=picker
    )
    assert r.status_code == 409 and r.json()["code"] == "insufficient_stock"
    assert pg_stock(city.database_url, STORE, sku)[3] == 4


async def test_damage_moves_available_to_damaged(city, app, client, picker) -> None:
    sku = _sku(city.database_url)
    before = pg_stock(city.database_url, STORE, sku)
    r = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/damage",
        json={"quantity": 2, "reason": "crushed"},
        headers=picker,
    )
    assert r.status_code == 200
    after = pg_stock(city.database_url, STORE, sku)
    assert after == (before[0] - 2, before[1], before[2] + 2, before[3])
    assert await redis_stock(resources_of(app).redis, STORE, sku) == after
    r = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/damage",
        json={"quantity": after[0] + 1, "reason": "x"},
        headers=picker,
    )
    assert r.status_code == 409
    assert pg_stock(city.database_url, STORE, sku) == after


async def test_cycle_count_uses_the_version_and_refuses_a_stale_one(
    city, app, client, picker
) -> None:
    sku = _sku(city.database_url)
    row = next(
        i
        for i in (
            await client.get(f"/v1/stores/{STORE}/inventory", params={"limit": 500}, headers=picker)
        ).json()["items"]
        if i["sku_id"] == sku
    )
    counted = row["available_qty"] + row["reserved_qty"] - 3
    r = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/count",
        json={"counted": counted, "version": row["version"]},
        headers=picker,
    )
    assert r.status_code == 200, r.text
    assert r.json()["available_qty"] == row["available_qty"] - 3
    assert r.json()["version"] == row["version"] + 1
    stale = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/count",
        json={"counted": 0, "version": row["version"]},
        headers=picker,
    )
    assert stale.status_code == 409 and stale.json()["code"] == "stale_version"
    assert pg_stock(city.database_url, STORE, sku)[0] == row["available_qty"] - 3
    assert (await redis_stock(resources_of(app).redis, STORE, sku))[0] == row["available_qty"] - 3


async def test_falling_to_the_reorder_level_emits_a_low_stock_event(city, client, picker) -> None:
    sku = _sku(city.database_url, "available_qty > reorder_level + 1")
    with psycopg.connect(city.database_url) as conn:
        level, available = one_row(
            conn.execute(
                "SELECT reorder_level, available_qty FROM "
                "store_inventory WHERE store_id = %s AND sku_id = %s",
                (STORE, sku),
            )
        )
    r = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/damage",
        json={"quantity": available - level, "reason": "expired"},
        headers=picker,
    )
    assert r.status_code == 200
    with psycopg.connect(city.database_url) as conn:
        events = conn.execute(
            "SELECT payload FROM outbox WHERE topic = 'inventory.low_stock' AND aggregate_id = %s",
            (sku,),
        ).fetchall()
    assert [e[0]["available"] for e in events] == [level]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/stores/NOPE/inventory/SKU00001/damage", {"quantity": 1, "reason": "x"}, 404),
        ("/v1/stores/BLR-KOR/inventory/SKU99999/damage", {"quantity": 1, "reason": "x"}, 404),
        ("/v1/stores/BLR-KOR/inventory/SKU00001/damage", {"quantity": 0, "reason": "x"}, 422),
        ("/v1/stores/BLR-KOR/inventory/SKU00001/damage", {"quantity": -3, "reason": "x"}, 422),
        ("/v1/stores/BLR-KOR/inventory/SKU00001/receive", {"quantity": 10**9}, 422),
        ("/v1/stores/BLR-KOR/inventory/SKU00001/receive", {"quantity": "many"}, 422),
        ("/v1/stores/BLR-KOR/inventory/SKU%20'1/receive", {"quantity": 1}, 422),
        ("/v1/stores/blr;drop/inventory/SKU00001/receive", {"quantity": 1}, 422),
        ("/v1/stores/BLR-KOR/inventory/SKU00001/count", {"counted": 1}, 422),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_problem_and_changes_nothing(
    city, client, path, body, status
) -> None:
    headers = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    with psycopg.connect(city.database_url) as conn:
        before = conn.execute(
            "SELECT sum(available_qty), sum(damaged_qty), count(*) FROM store_inventory"
        ).fetchone()
        ledger = conn.execute("SELECT count(*) FROM stock_ledger").fetchone()
    r = await client.post(path, json=body, headers=headers)
    assert r.status_code == status, r.text
    problem = r.json()
    assert problem["status"] == status and problem["code"] and problem["detail"]
    with psycopg.connect(city.database_url) as conn:
        assert (
            conn.execute(
                "SELECT sum(available_qty), sum(damaged_qty), count(*) FROM store_inventory"
            ).fetchone()
            == before
        )
        assert conn.execute("SELECT count(*) FROM stock_ledger").fetchone() == ledger
