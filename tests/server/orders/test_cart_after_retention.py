"""A cart abandoned longer ago than the reservations' retention: its hold expired, Redis's
tombstone of it is gone (a day) and the retention loop deleted its EXPIRED rows, yet the
cart still reads EXPIRED and its checkout answers ``cart_expired``, not an empty active
cart; a young empty cart still reads ACTIVE and its checkout ``cart_empty``."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import psycopg
from sqlmodel import select

from server.identity.models import User
from server.inventory import journal
from server.inventory.retention import purge_store
from server.inventory.sweeper import sweep_store
from server.kit import keys
from server.kit.clock import ManualClock
from server.kit.config import Settings
from server.kit.db import transaction
from server.orders import cart as carts
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.conftest import Stack
from tests.helpers import login, one_row, stocked_skus
from tests.server.flash.flash_helpers import ADDRESS, STORE

CUSTOMER = "customer.001"


def _rows_of(database_url: str, holder: str) -> int:
    with psycopg.connect(database_url) as conn:
        return int(
            one_row(
                conn.execute(
                    "SELECT count(*) FROM inventory_reservations WHERE order_id = %s", (holder,)
                )
            )[0]
        )


async def _checkout(client: httpx.AsyncClient, headers: dict[str, str], cart_id: str) -> str:
    r = await client.post(
        f"/v1/carts/{cart_id}/checkout",
        json=ADDRESS,
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code in (409, 422), r.text
    return str(r.json()["code"])


async def test_an_expired_cart_purged_by_retention_still_reads_expired(
    stack: Stack, client: httpx.AsyncClient, settings: Settings
) -> None:
    [sku] = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    headers = await login(client, CUSTOMER, DEMO_SECRETS[Role.CUSTOMER])
    # the cart was filled a day more than the retention ago, then abandoned
    old = stack.clock.now() - timedelta(seconds=settings.reservation_retention_s, days=1)
    async with transaction(stack.sessions) as session:
        user = (await session.exec(select(User).where(User.login == CUSTOMER))).one()
        cart = await carts.create_cart(
            session, user=user, store_id=STORE, now=old, hold_life_s=settings.cart_hold_life_s
        )
        await carts.set_line(
            session,
            stack.redis,
            cart_id=cart.cart_id,
            user=user,
            sku_id=sku,
            quantity=2,
            now=old,
            hold_s=settings.soft_hold_s,
            hold_life_s=settings.cart_hold_life_s,
        )
    holder = str(cart.cart_id)
    # the sweeper expired its hold once due (the server clock then)
    due = ManualClock((old + timedelta(seconds=settings.soft_hold_s + 1)).timestamp())
    assert await sweep_store(stack.sessions, stack.redis, due, STORE) == 1
    await journal.drain(stack.engine, stack.redis, STORE)
    assert _rows_of(stack.database_url, holder) == 1
    # Redis's tombstone is gone (its day is long over), and the retention purges the rows
    await stack.redis.delete(keys.hold(STORE, holder))
    purged = await purge_store(
        stack.sessions,
        stack.clock,
        STORE,
        retention_s=settings.reservation_retention_s,
        batch=100,
    )
    assert purged == 1 and _rows_of(stack.database_url, holder) == 0

    view = (await client.get(f"/v1/carts/{holder}", headers=headers)).json()
    assert view["status"] == "EXPIRED" and view["lines"] == []
    assert await _checkout(client, headers, holder) == "cart_expired"


async def test_a_young_empty_cart_reads_active_and_checks_out_as_empty(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    [sku] = stocked_skus(stack.database_url, STORE, 1, at_least=10)
    headers = await login(client, CUSTOMER, DEMO_SECRETS[Role.CUSTOMER])
    for fill in (False, True):  # never held anything; held a line, then removed it
        made = await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)
        cart_id = made.json()["cart_id"]
        if fill:
            line = f"/v1/carts/{cart_id}/lines/{sku}"
            assert (await client.put(line, json={"quantity": 1}, headers=headers)).is_success
            assert (await client.delete(line, headers=headers)).is_success
        view = (await client.get(f"/v1/carts/{cart_id}", headers=headers)).json()
        assert view["status"] == "ACTIVE" and view["lines"] == []
        assert await _checkout(client, headers, cart_id) == "cart_empty"
