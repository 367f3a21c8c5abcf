"""A checkout that died between moving the cart's hold to its order in Redis and its
PostgreSQL commit (a replica killed mid-request): the customer's retry is told to retry
(409 request_in_progress), not that the cart is empty, and succeeds once the reconciler
has put the hold back from the books; and the dead checkout's hold, in Redis only, ending
by expiry first moves nothing in the books."""

from __future__ import annotations

import uuid

import httpx
import psycopg

from server.inventory import engine, journal
from server.inventory.reconcile import find_drift, reconcile_store
from server.inventory.sweeper import sweep_store
from server.inventory.worker import inventory_loops
from server.kit.config import Settings
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


def _reserved_against_holds(database_url: str, sku: str) -> tuple[int, int]:
    """The stock row's reserved units, and the units its open holds in the books hold."""
    with psycopg.connect(database_url) as conn:
        [(reserved, held)] = conn.execute(
            "SELECT i.reserved_qty, (SELECT coalesce(sum(r.quantity), 0) FROM "
            "inventory_reservations r WHERE r.store_id = i.store_id AND r.sku_id = i.sku_id "
            "AND r.status IN ('SOFT', 'HARD')) FROM store_inventory i "
            "WHERE i.store_id = %s AND i.sku_id = %s",
            (STORE, sku),
        ).fetchall()
    return reserved, held


async def test_a_dead_checkouts_hold_expiring_first_leaves_the_books_whole(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    """The dead checkout's hold (in Redis only) comes due and the sweeper ends it before
    the reconciler repairs the drift: the books, which never had that hold, must not move
    (they still hold the cart's lines), so the repaired cart checks out and its paid order
    commits its stock."""
    [sku] = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    headers = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    r = await client.put(
        f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 2}, headers=headers
    )
    assert r.status_code == 200, r.text
    await journal.drain(stack.engine, stack.redis, STORE)  # the cart's lines in the books
    before = _reserved_against_holds(stack.database_url, sku)
    assert before[0] == before[1] >= 2
    now = stack.clock.now().timestamp()
    await engine.reserve(  # the dead checkout's move, its hold already due
        stack.redis,
        store_id=STORE,
        holder=cart["cart_id"],
        lines={sku: 2},
        mode="HARD",
        expires_at=now - 1,
        now=now,
        new_holder=str(uuid.uuid4()),
    )
    assert await sweep_store(stack.sessions, stack.redis, stack.clock, STORE) >= 1
    assert _reserved_against_holds(stack.database_url, sku) == before

    await reconcile_store(stack.engine, stack.redis, STORE, quiesce_s=0.2)
    key = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    placed = await client.post(f"/v1/carts/{cart['cart_id']}/checkout", json=ADDRESS, headers=key)
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "CONFIRMED"
    reserved, held = _reserved_against_holds(stack.database_url, sku)
    assert reserved == held == before[0] - 2  # the paid units left the books
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_the_retry_asks_the_reconciler_for_the_repair_at_once(
    stack: Stack, client: httpx.AsyncClient, settings: Settings
) -> None:
    """The customer's retry does not wait for the reconciler's next pass over every store
    (30 s apart): it asks for its store, and the reconciler's next tick (a second later)
    repairs that store alone."""
    [reconciler] = [
        loop
        for loop in inventory_loops(
            settings.model_copy(update={"reconcile_interval_s": 3600.0}),
            stack.engine,
            stack.sessions,
            stack.redis,
            stack.clock,
        )
        if loop.name == "inventory-reconciler"
    ]
    assert reconciler.interval_s == 1.0
    await reconciler.tick()  # its pass over every store: the next is an hour away
    [sku] = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    headers = await login(client, "customer.002", DEMO_SECRETS[Role.CUSTOMER])
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    r = await client.put(
        f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": 1}, headers=headers
    )
    assert r.status_code == 200, r.text
    now = stack.clock.now().timestamp()
    await engine.reserve(  # the dead checkout's move
        stack.redis,
        store_id=STORE,
        holder=cart["cart_id"],
        lines={sku: 1},
        mode="HARD",
        expires_at=now + 600,
        now=now,
        new_holder=str(uuid.uuid4()),
    )
    checkout = f"/v1/carts/{cart['cart_id']}/checkout"
    key = {**headers, "Idempotency-Key": uuid.uuid4().hex}
    assert (await client.post(checkout, json=ADDRESS, headers=key)).status_code == 409

    await reconciler.tick()
    placed = await client.post(checkout, json=ADDRESS, headers=key)
    assert placed.status_code == 201, placed.text
    assert await find_drift(stack.engine, stack.redis, STORE) == []
