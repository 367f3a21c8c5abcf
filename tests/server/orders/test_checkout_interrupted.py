"""A checkout that died between moving the cart's hold to its order in Redis and its
PostgreSQL commit (a replica killed mid-request): the customer's retry is told to retry
(409 request_in_progress), not that the cart is empty, asks the reconciler for its store,
and succeeds once the hold is put back from the books; and the dead checkout's hold, in
Redis only, ending by expiry first moves nothing in the books."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import httpx

from server.inventory import engine, journal
from server.inventory.reconcile import find_drift, reconcile_store
from server.inventory.sweeper import sweep_store
from server.inventory.worker import inventory_loops
from server.kit.background import LeasedLoop, stop_all
from server.kit.config import Settings
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import Stack
from tests.helpers import login, stocked_skus
from tests.server.flash.flash_helpers import ADDRESS, STORE
from tests.server.inventory.helpers import held_units, pg_stock


@dataclass(frozen=True)
class _Interrupted:
    sku: str
    cart_id: str
    checkout: str  # the cart's checkout path
    headers: dict[str, str]  # the customer's, with the retry's Idempotency-Key


async def _checkout_died(
    stack: Stack,
    client: httpx.AsyncClient,
    *,
    customer: str,
    quantity: int,
    expires_in_s: float = 600,
    in_the_books: bool = False,
) -> _Interrupted:
    """A cart holding ``quantity`` of a stocked SKU, and what its dead checkout did in
    Redis (the hold moved to an order, due in ``expires_in_s``) before its transaction
    was lost with it. ``in_the_books``: the cart's lines applied to PostgreSQL first."""
    [sku] = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    headers = await login(client, customer, DEMO_SECRETS[Role.CUSTOMER])
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    r = await client.put(
        f"/v1/carts/{cart['cart_id']}/lines/{sku}", json={"quantity": quantity}, headers=headers
    )
    assert r.status_code == 200, r.text
    if in_the_books:
        await journal.drain(stack.engine, stack.redis, STORE)
    now = stack.clock.now().timestamp()
    await engine.reserve(
        stack.redis,
        store_id=STORE,
        holder=cart["cart_id"],
        lines={sku: quantity},
        mode="HARD",
        expires_at=now + expires_in_s,
        now=now,
        new_holder=str(uuid.uuid4()),
    )
    return _Interrupted(
        sku,
        cart["cart_id"],
        f"/v1/carts/{cart['cart_id']}/checkout",
        {**headers, "Idempotency-Key": uuid.uuid4().hex},
    )


async def test_a_retry_after_a_checkout_died_midway_waits_for_the_repair(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    died = await _checkout_died(stack, client, customer="customer.001", quantity=2)

    retried = await client.post(died.checkout, json=ADDRESS, headers=died.headers)
    assert retried.status_code == 409, retried.text
    assert retried.json()["code"] == "request_in_progress"
    assert "earlier checkout of this cart stopped midway" in retried.json()["detail"]
    assert retried.headers["retry-after"] == "5"

    repaired = await reconcile_store(stack.engine, stack.redis, STORE, quiesce_s=0.2)
    assert ("hold", died.cart_id) in {(d.kind, d.key) for d in repaired}
    placed = await client.post(died.checkout, json=ADDRESS, headers=died.headers)
    assert placed.status_code == 201, placed.text
    assert [(i["sku_id"], i["quantity"]) for i in placed.json()["items"]] == [(died.sku, 2)]
    assert await find_drift(stack.engine, stack.redis, STORE) == []


def _reserved_against_holds(database_url: str, sku: str) -> tuple[int, int]:
    """The stock row's reserved units, and the units its open holds in the books hold."""
    return pg_stock(database_url, STORE, sku)[1], held_units(database_url, STORE, sku)


async def test_a_dead_checkouts_hold_expiring_first_leaves_the_books_whole(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    """The dead checkout's hold (in Redis only) comes due and the sweeper ends it before
    the reconciler repairs the drift: the books, which never had that hold, must not move
    (they still hold the cart's lines), so the repaired cart checks out and its paid order
    commits its stock."""
    [sku] = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    before = _reserved_against_holds(stack.database_url, sku)
    died = await _checkout_died(
        stack, client, customer="customer.001", quantity=2, expires_in_s=-1, in_the_books=True
    )
    assert died.sku == sku
    held = _reserved_against_holds(stack.database_url, sku)
    assert held[0] == held[1] == before[0] + 2
    assert await sweep_store(stack.sessions, stack.redis, stack.clock, STORE) >= 1
    assert _reserved_against_holds(stack.database_url, sku) == held

    await reconcile_store(stack.engine, stack.redis, STORE, quiesce_s=0.2)
    placed = await client.post(died.checkout, json=ADDRESS, headers=died.headers)
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "CONFIRMED"
    assert _reserved_against_holds(stack.database_url, sku) == before  # the paid units left
    assert await find_drift(stack.engine, stack.redis, STORE) == []


def _reconciler(stack: Stack, settings: Settings) -> LeasedLoop:
    """A replica's reconciler, its full passes an hour apart (the tests drive its ticks)."""
    [loop] = [
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
    return loop


async def test_the_retry_asks_the_reconciler_for_the_repair_at_once(
    stack: Stack, client: httpx.AsyncClient, settings: Settings
) -> None:
    """The customer's retry does not wait for the reconciler's next pass over every store
    (30 s apart): it asks for its store, and the reconciler's next tick (a second later)
    repairs that store alone."""
    reconciler = _reconciler(stack, settings)
    assert reconciler.interval_s == 1.0
    await reconciler.tick()  # its pass over every store: the next is an hour away
    died = await _checkout_died(stack, client, customer="customer.002", quantity=1)
    retried = await client.post(died.checkout, json=ADDRESS, headers=died.headers)
    assert retried.status_code == 409, retried.text

    await reconciler.tick()
    placed = await client.post(died.checkout, json=ADDRESS, headers=died.headers)
    assert placed.status_code == 201, placed.text
    assert await find_drift(stack.engine, stack.redis, STORE) == []


async def test_a_replica_that_died_holding_the_reconciler_lease_delays_repairs_by_seconds(
    stack: Stack, client: httpx.AsyncClient, settings: Settings
) -> None:
    """The replica killed mid-checkout may be the one holding the reconciler's lease: it
    never gives it back, so the repair waits for that lease to lapse. The lease is three
    ticks (a full pass, which may take longer, renews it as it runs), not three passes."""
    dead, alive = _reconciler(stack, settings), _reconciler(stack, settings)
    assert dead.lease_ms == 3000 and dead.longest_run_s == 3 * 3600.0
    await dead.tick()  # it holds the lease, then its replica dies: the lease stays in Redis
    assert not await alive.holds_lease()
    died = await _checkout_died(stack, client, customer="customer.003", quantity=1)
    alive.start()
    try:
        deadline = time.monotonic() + 25  # a 90 s lease (three passes) failed here
        while (
            r := await client.post(died.checkout, json=ADDRESS, headers=died.headers)
        ).status_code == 409:
            assert time.monotonic() < deadline, r.text
            await asyncio.sleep(1.5)  # under the checkout rate limit (20 a minute)
        assert r.status_code == 201, r.text
    finally:
        await stop_all([alive])
    assert await find_drift(stack.engine, stack.redis, STORE) == []
