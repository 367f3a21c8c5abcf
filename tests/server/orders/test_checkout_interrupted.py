"""A checkout that died between moving the cart's hold to its order in Redis and its
PostgreSQL commit (a replica killed mid-request): the customer's retry is told to retry
(409 request_in_progress), not that the cart is empty, and succeeds once the reconciler
has put the hold back from the books."""

from __future__ import annotations

import uuid

import httpx

from server.inventory import engine
from server.inventory.reconcile import find_drift, reconcile_store
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import Stack
from tests.helpers import login, stocked_skus
from tests.server.flash.flash_helpers import ADDRESS, STORE


async def test_a_retry_after_a_checkout_died_midway_waits_for_the_repair(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    [sku] = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    r = await client.put(
        f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 2}, headers=headers
    )
    assert r.status_code == 200, r.text
    # what the dead checkout did in Redis before its transaction was lost with it
    now = stack.clock.now().timestamp()
    await engine.reserve(
        stack.redis,
        store_id=STORE,
        holder=cart["cart_id"],
        lines={sku: 2},
        mode="HARD",
        expires_at=now + 600,
        now=now,
        new_holder=str(uuid.uuid4()),
    )
    checkout = f"/v1/carts/{cart['cart_id']}/checkout"
    key = {**headers, "Idempotency-Key": uuid.uuid4().hex}

    retried = await client.post(checkout, json=ADDRESS, headers=key)
    assert retried.status_code == 409, retried.text
    assert retried.json()["code"] == "request_in_progress"
    assert retried.headers["retry-after"] == "5"

    repaired = await reconcile_store(stack.engine, stack.redis, STORE, quiesce_s=0.2)
    assert ("hold", cart["cart_id"]) in {(d.kind, d.key) for d in repaired}
    placed = await client.post(checkout, json=ADDRESS, headers=key)
    assert placed.status_code == 201, placed.text
    assert [(i["sku_id"], i["quantity"]) for i in placed.json()["items"]] == [(sku, 2)]
    assert await find_drift(stack.engine, stack.redis, STORE) == []
