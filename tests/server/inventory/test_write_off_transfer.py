"""Damaged stock leaves the books (WRITE_OFF) and stock moves between stores (TRANSFER):
version checks like a cycle count, both stores or neither, the ledger conserves stock."""

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


@pytest.fixture
async def manager(city, client: httpx.AsyncClient) -> dict[str, str]:
    return await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])


def _sku(url: str) -> str:
    with psycopg.connect(url) as conn:
        return one_row(
            conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s AND available_qty >= 8 "
                "ORDER BY sku_id LIMIT 1",
                (STORE,),
            )
        )[0]


def _other_store(url: str) -> str:
    with psycopg.connect(url) as conn:
        return one_row(
            conn.execute(
                "SELECT store_id FROM dark_stores WHERE city_id = "
                "(SELECT city_id FROM dark_stores WHERE store_id = %s) AND store_id <> %s "
                "ORDER BY store_id LIMIT 1",
                (STORE, STORE),
            )
        )[0]


def _version(url: str, store_id: str, sku: str) -> int:
    with psycopg.connect(url) as conn:
        return one_row(
            conn.execute(
                "SELECT version FROM store_inventory WHERE store_id = %s AND sku_id = %s",
                (store_id, sku),
            )
        )[0]


def _minus(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x - y for x, y in zip(a, b, strict=True))


async def _conserved(app, url: str, store_id: str, sku: str, before, ledger_before) -> None:
    """The books moved exactly by what the ledger records, and Redis agrees with them."""
    assert _minus(pg_stock(url, store_id, sku), before) == _minus(
        ledger_sum(url, store_id, sku), ledger_before
    )
    assert await redis_stock(resources_of(app).redis, store_id, sku) == pg_stock(url, store_id, sku)


async def test_damaged_units_are_written_off_with_the_version(city, app, client, picker) -> None:
    url = city.database_url
    sku = _sku(url)
    before, ledger_before = pg_stock(url, STORE, sku), ledger_sum(url, STORE, sku)
    base = f"/v1/stores/{STORE}/inventory/{sku}"
    r = await client.post(f"{base}/damage", json={"quantity": 3, "reason": "x"}, headers=picker)
    assert r.status_code == 200
    version = r.json()["version"]

    r = await client.post(
        f"{base}/write-off",
        json={"quantity": 2, "version": version, "reason": "binned"},
        headers=picker,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["damaged_qty"], r.json()["version"]) == (before[2] + 1, version + 1)

    stale = await client.post(
        f"{base}/write-off",
        json={"quantity": 1, "version": version, "reason": "again"},
        headers=picker,
    )
    assert stale.status_code == 409 and stale.json()["code"] == "stale_version"
    too_many = await client.post(
        f"{base}/write-off",
        json={"quantity": 5, "version": version + 1, "reason": "all"},
        headers=picker,
    )
    assert too_many.status_code == 409 and too_many.json()["code"] == "insufficient_stock"

    a, r_, d, t = before
    assert pg_stock(url, STORE, sku) == (a - 3, r_, d + 1, t)
    await _conserved(app, url, STORE, sku, before, ledger_before)
    with psycopg.connect(url) as conn:
        (entry,) = conn.execute(
            "SELECT d_damaged, reason FROM stock_ledger WHERE store_id = %s AND sku_id = %s "
            "AND movement = 'WRITE_OFF'",
            (STORE, sku),
        ).fetchall()
    assert entry == (-2, "binned")

    other = await login(client, "picker.ind.1", DEMO_SECRETS[Role.PICKER])
    refused = await client.post(
        f"{base}/write-off",
        json={"quantity": 1, "version": version + 1, "reason": "x"},
        headers=other,
    )
    assert refused.status_code == 403


async def test_a_transfer_leaves_one_store_and_is_received_at_the_other(
    city, app, client, picker, manager
) -> None:
    url = city.database_url
    sku, dest = _sku(url), _other_store(url)
    stores = (STORE, dest)
    before = {s: pg_stock(url, s, sku) for s in stores}
    ledger_before = {s: ledger_sum(url, s, sku) for s in stores}
    version = _version(url, STORE, sku)

    stale = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/transfer",
        json={"to_store_id": dest, "quantity": 4, "version": version + 7},
        headers=picker,
    )
    assert stale.status_code == 409 and stale.json()["code"] == "stale_version"
    # the destination's side, written first, was undone in both books
    for s in stores:
        await _conserved(app, url, s, sku, before[s], ledger_before[s])
        assert pg_stock(url, s, sku) == before[s]

    r = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/transfer",
        json={"to_store_id": dest, "quantity": 4, "version": version},
        headers=picker,
    )
    assert r.status_code == 200, r.text
    sent = r.json()
    assert sent["source"]["available_qty"] == before[STORE][0] - 4
    assert sent["destination"]["in_transit_qty"] == before[dest][3] + 4
    assert sent["source"]["version"] == version + 1

    r = await client.post(
        f"/v1/stores/{dest}/inventory/{sku}/receive",
        json={"quantity": 4, "from_transit": True, "reference": sent["transfer_id"]},
        headers=manager,
    )
    assert r.status_code == 200, r.text
    a, r_, d, t = before[dest]
    assert pg_stock(url, dest, sku) == (a + 4, r_, d, t)
    a, r_, d, t = before[STORE]
    assert pg_stock(url, STORE, sku) == (a - 4, r_, d, t)
    for s in stores:
        await _conserved(app, url, s, sku, before[s], ledger_before[s])
    with psycopg.connect(url) as conn:
        entries = conn.execute(
            "SELECT store_id, movement, d_available, d_in_transit FROM stock_ledger "
            "WHERE reference = %s ORDER BY entry_id",
            (sent["transfer_id"],),
        ).fetchall()
    assert sorted(entries) == sorted(
        [(STORE, "TRANSFER", -4, 0), (dest, "TRANSFER", 0, 4), (dest, "RECEIPT", 4, -4)]
    )


async def test_a_transfer_that_fails_at_the_destination_changes_neither_store(
    city, app, client, picker
) -> None:
    url = city.database_url
    sku, dest = _sku(url), _other_store(url)
    redis = resources_of(app).redis
    before_pg, before_redis = pg_stock(url, dest, sku), await redis_stock(redis, dest, sku)
    ledger_before = ledger_sum(url, dest, sku)
    # stores are written in id order (the destination first here); the source's Redis no
    # longer knows the SKU, so its side fails after the destination's was written
    assert dest < STORE
    await redis.delete(keys.inventory(STORE, sku))
    r = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/transfer",
        json={"to_store_id": dest, "quantity": 2, "version": _version(url, STORE, sku)},
        headers=picker,
    )
    assert r.status_code == 404 and r.json()["code"] == "sku_not_found"
    assert pg_stock(url, dest, sku) == before_pg
    assert await redis_stock(redis, dest, sku) == before_redis
    assert ledger_sum(url, dest, sku) == ledger_before

    elsewhere = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/transfer",
        json={"to_store_id": STORE, "quantity": 2, "version": _version(url, STORE, sku)},
        headers=picker,
    )
    assert elsewhere.status_code == 422 and elsewhere.json()["code"] == "same_store"
