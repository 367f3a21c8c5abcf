"""A checkout takes its store's lock with its transactions' first statements, before it
can know whether Redis still holds the store: when Redis lost it (its ready marker gone),
the transaction rolls back, the store is loaded, and the step runs once more. The
customer sees the checkout succeed, and the books agree with Redis."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from server.inventory.reconcile import find_drift
from server.kit import keys
from server.kit.resources import resources_of
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import Stack
from tests.helpers import login, stocked_skus
from tests.server.flash.flash_helpers import ADDRESS, STORE
from tests.server.inventory.helpers import pg_stock


async def _cart(client: httpx.AsyncClient, headers: dict[str, str], sku: str) -> str:
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    r = await client.put(
        f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 2}, headers=headers
    )
    assert r.status_code == 200, r.text
    return str(cart["cart_id"])


async def _paid(
    stack: Stack, client: httpx.AsyncClient, headers: dict[str, str], cart: str, sku: str
) -> None:
    start = pg_stock(stack.database_url, STORE, sku)
    r = await client.post(
        f"/v1/carts/{cart}/checkout",
        json=ADDRESS,
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "CONFIRMED"
    assert [(i["sku_id"], i["quantity"]) for i in r.json()["items"]] == [(sku, 2)]
    assert await stack.redis.exists(keys.store_ready(STORE))  # loaded again
    # the 2 units left the books (held, applied or not yet, they stayed in the sum)
    after = pg_stock(stack.database_url, STORE, sku)
    assert after[0] + after[1] == start[0] + start[1] - 2
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_a_checkout_after_redis_lost_the_store_loads_it_and_succeeds(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    [sku] = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    cart = await _cart(client, headers, sku)
    await stack.redis.delete(keys.store_ready(STORE))  # scripts answer NOT_READY now
    await _paid(stack, client, headers, cart, sku)


async def test_a_store_lost_while_the_charge_was_asked_is_loaded_and_the_order_confirmed(
    stack: Stack, app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    [sku] = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    cart = await _cart(client, headers, sku)
    gateway = resources_of(app).payments
    charge = gateway.charge

    async def lost_meanwhile(**kw: Any) -> Any:  # the real charge, Redis losing the store
        await stack.redis.delete(keys.store_ready(STORE))
        return await charge(**kw)

    monkeypatch.setattr(gateway, "charge", lost_meanwhile)
    await _paid(stack, client, headers, cart, sku)
