"""The regular cart checkout is limited per customer and per client address: past either
limit a 429 problem with Retry-After, counted before any stock or money moves."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest

from server.kit.config import Settings
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import Services, settings_for
from tests.helpers import login, stocked_skus

STORE = "BLR-KOR"
ADDRESS = {
    "address": {"line1": "4th Cross, 5th Block", "lat": 12.9352, "lng": 77.6245},
    "payment_method": "upi",
}


@pytest.fixture
def settings(services: Services) -> Settings:
    return settings_for(
        services,
        cart_checkout_limit_per_customer="2/minute",
        cart_checkout_limit_per_address="4/minute",
    )


async def _cart(client: httpx.AsyncClient, headers: dict[str, str], sku: str) -> str:
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    r = await client.put(
        f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 1}, headers=headers
    )
    assert r.status_code == 200, r.text
    return str(cart["cart_id"])


async def _checkout(
    client: httpx.AsyncClient, headers: dict[str, str], cart_id: str
) -> httpx.Response:
    return await client.post(
        f"/v1/carts/{cart_id}/checkout",
        json=ADDRESS,
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )


def _orders(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    return int(row[0])


async def test_a_customer_past_the_checkout_limit_gets_429(
    city: Services, client: httpx.AsyncClient
) -> None:
    [sku] = stocked_skus(city.database_url, STORE, 1, at_least=10)
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    carts = [await _cart(client, headers, sku) for _ in range(3)]
    answers = [await _checkout(client, headers, cart_id) for cart_id in carts]
    assert [a.status_code for a in answers[:2]] == [201, 201], answers[0].text
    refused = answers[2]
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert _orders(city.database_url) == 2  # the refused checkout placed nothing

    other = await login(client, "customer.002", DEMO_SECRETS[Role.CUSTOMER])
    assert (await _checkout(client, other, await _cart(client, other, sku))).status_code == 201


async def test_one_address_past_its_checkout_limit_gets_429_for_every_customer(
    city: Services, client: httpx.AsyncClient
) -> None:
    [sku] = stocked_skus(city.database_url, STORE, 1, at_least=10)
    statuses = []
    for n in range(1, 6):  # five customers, one checkout each, all from one address
        headers = await login(client, f"customer.{n:03d}", DEMO_SECRETS[Role.CUSTOMER])
        statuses.append(
            (await _checkout(client, headers, await _cart(client, headers, sku))).status_code
        )
    assert statuses == [201, 201, 201, 201, 429]
