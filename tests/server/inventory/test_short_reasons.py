"""A refused line says which "out of stock" it is (issue 22): sold out (none on the shelf,
none held), held (none free: the rest sits in other carts and orders, and may come back)
or short (some left, fewer than asked); the problem's text names them apart."""

from __future__ import annotations

import psycopg

from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login

STORE = "BLR-KOR"


async def _count(client, url: str, manager: dict[str, str], sku: str, counted: int) -> None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT version FROM store_inventory WHERE store_id = %s AND sku_id = %s",
            (STORE, sku),
        ).fetchone()
    assert row is not None
    r = await client.post(
        f"/v1/stores/{STORE}/inventory/{sku}/count",
        json={"counted": counted, "version": row[0], "reason": "test"},
        headers=manager,
    )
    assert r.status_code == 200, r.text


async def _cart(client, customer: dict[str, str]) -> str:
    r = await client.post("/v1/carts", json={"store_id": STORE}, headers=customer)
    assert r.status_code == 201, r.text
    return str(r.json()["cart_id"])


async def _ask(client, customer: dict[str, str], cart_id: str, sku: str, quantity: int):
    return await client.put(
        f"/v1/carts/{cart_id}/lines/{sku}", json={"quantity": quantity}, headers=customer
    )


async def test_a_refused_line_says_sold_out_held_or_short(city, client) -> None:
    with psycopg.connect(city.database_url) as conn:
        gone, held, few = (
            r[0]
            for r in conn.execute(
                "SELECT sku_id FROM store_inventory WHERE store_id = %s AND available_qty >= 5 "
                "ORDER BY sku_id LIMIT 3",
                (STORE,),
            )
        )
    manager = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    first = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    second = await login(client, "customer.002", DEMO_SECRETS[Role.CUSTOMER])
    await _count(client, city.database_url, manager, gone, 0)
    await _count(client, city.database_url, manager, held, 2)
    await _count(client, city.database_url, manager, few, 2)
    held_by_first = await _ask(client, first, await _cart(client, first), held, 2)
    assert held_by_first.status_code == 200, held_by_first.text  # the last two, held
    cart = await _cart(client, second)

    cases = [(gone, 1, "sold_out", "sold out: "), (held, 1, "held", "none free now")]
    cases.append((few, 3, "short", "fewer left than asked: "))
    for sku, quantity, reason, words in cases:
        r = await _ask(client, second, cart, sku, quantity)
        assert r.status_code == 409 and r.json()["code"] == "insufficient_stock", r.text
        (line,) = r.json()["lines"]
        assert (line["sku_id"], line["reason"]) == (sku, reason)
        assert words in r.json()["detail"] and sku in r.json()["detail"]
    r = await _ask(client, second, cart, held, 1)
    assert r.json()["lines"][0]["held"] == 2 and r.json()["lines"][0]["available"] == 0
