"""A cart's lines are named and priced from the replica's catalogue, not read from
PostgreSQL on every view and checkout; a SKU the catalogue no longer sells at the store
(an inactive product) is priced from the books, as before."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from server.catalog.snapshot import catalog_changed
from server.kit.resources import resources_of
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import driver_statements, login, stocked_skus

STORE = "BLR-KOR"
ADDRESS = {"address": {"line1": "4th Cross, 5th Block", "lat": 12.9352, "lng": 77.6245}}


def _books(url: str, skus: list[str]) -> dict[str, tuple[str, str, int, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT p.sku_id, p.name, p.pack_size, sp.selling_price_paise, p.mrp_paise "
            "FROM products p JOIN store_prices sp ON sp.sku_id = p.sku_id "
            "AND sp.store_id = %s WHERE p.sku_id = ANY(%s)",
            (STORE, skus),
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _priced(view: dict[str, Any]) -> dict[str, tuple[str, str, int, int]]:
    return {
        ln["sku_id"]: (ln["name"], ln["pack_size"], ln["unit_price_paise"], ln["mrp_paise"])
        for ln in view["lines"]
    }


def _price_reads(seen: list[str]) -> list[str]:
    return [s for s in seen if "store_prices" in s]


async def test_lines_and_checkout_are_priced_from_the_catalogue_as_the_books_have_them(
    city, app, client
) -> None:
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    skus = stocked_skus(city.database_url, STORE, 3, at_least=5)
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    await resources_of(app).catalog.store(STORE)  # loaded, as a running replica has it
    with driver_statements() as seen:
        for sku in skus:
            r = await client.put(
                f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 2}, headers=headers
            )
            assert r.status_code == 200, r.text
        view = r.json()
        r = await client.post(
            f"/v1/carts/{cart['cart_id']}/checkout",
            json=ADDRESS,
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
    assert r.status_code == 201 and r.json()["status"] == "CONFIRMED", r.text
    assert _price_reads(seen) == [], "\n".join(_price_reads(seen))
    books = _books(city.database_url, skus)
    assert _priced(view) == books
    assert {i["sku_id"]: i["unit_price_paise"] for i in r.json()["items"]} == {
        sku: price for sku, (_, _, price, _) in books.items()
    }


async def test_a_line_the_catalogue_no_longer_sells_is_priced_from_the_books(
    city, app, client
) -> None:
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    skus = stocked_skus(city.database_url, STORE, 2, at_least=5)
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    for sku in skus:
        r = await client.put(
            f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 1}, headers=headers
        )
        assert r.status_code == 200, r.text
    with psycopg.connect(city.database_url, autocommit=True) as conn:
        conn.execute("UPDATE products SET is_active = false WHERE sku_id = %s", (skus[0],))
    catalog = resources_of(app).catalog
    await catalog_changed(resources_of(app).redis)  # as a catalogue change announces itself
    catalog.cache.invalidate()  # this replica checks now, not within the second
    assert skus[0] not in (await catalog.store(STORE)).items  # type: ignore[union-attr]
    with driver_statements() as seen:
        r = await client.get(f"/v1/carts/{cart['cart_id']}", headers=headers)
    assert r.status_code == 200, r.text
    assert _priced(r.json()) == _books(city.database_url, skus)
    assert len(_price_reads(seen)) == 1
