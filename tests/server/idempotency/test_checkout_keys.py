"""An Idempotency-Key's claim and answer ride on the checkout's own transactions: a
refusal (its claim rolled back with the work) is still the key's answer, and two requests
with one key at once never both run."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login

STORE = "BLR-KOR"
ADDRESS = {"address": {"line1": "4th Cross, 5th Block", "lat": 12.9352, "lng": 77.6245}}
FAR = {"address": {"line1": "Connaught Place", "lat": 28.63, "lng": 77.22}}


@pytest.fixture
async def customer(city, client) -> dict[str, str]:
    return await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])


async def _cart(city, client, headers) -> str:
    with psycopg.connect(city.database_url) as conn:
        [(sku,)] = conn.execute(
            "SELECT sku_id FROM store_inventory WHERE store_id = %s AND available_qty >= 5 "
            "ORDER BY sku_id LIMIT 1",
            (STORE,),
        ).fetchall()
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    r = await client.put(
        f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 1}, headers=headers
    )
    assert r.status_code == 200, r.text
    return cart["cart_id"]


def _keys(url: str) -> list[tuple[int | None, str | None]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT status_code, body->>'code' FROM idempotency_keys").fetchall()


async def test_a_refusal_is_the_keys_answer_though_its_claim_rolled_back(
    city, client, customer
) -> None:
    cart_id = await _cart(city, client, customer)
    headers = {**customer, "Idempotency-Key": "far-1"}
    first = await client.post(f"/v1/carts/{cart_id}/checkout", json=FAR, headers=headers)
    assert first.status_code == 409 and first.json()["code"] == "not_serviceable", first.text
    assert first.headers["idempotent-replayed"] == "false"
    assert _keys(city.database_url) == [(409, "not_serviceable")]
    again = await client.post(f"/v1/carts/{cart_id}/checkout", json=FAR, headers=headers)
    assert again.status_code == 409 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


async def test_one_key_twice_at_once_runs_one_checkout(city, client, customer) -> None:
    cart_id = await _cart(city, client, customer)
    headers = {**customer, "Idempotency-Key": uuid.uuid4().hex}
    answers = await asyncio.gather(
        *(
            client.post(f"/v1/carts/{cart_id}/checkout", json=ADDRESS, headers=headers)
            for _ in range(2)
        )
    )
    codes = sorted(a.status_code for a in answers)
    # the second waited for the first's claim: in progress, or (once answered) its replay
    assert codes in ([201, 201], [201, 409]), [a.text for a in answers]
    if codes == [201, 201]:
        assert answers[0].json()["order_id"] == answers[1].json()["order_id"]
    else:
        refused = next(a for a in answers if a.status_code == 409)
        assert refused.json()["code"] == "request_in_progress"
    with psycopg.connect(city.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchall() == [(1,)]
    assert _keys(city.database_url) == [(201, None)]
