"""What a join costs PostgreSQL (issue 17 point 8): taking a place in line, asking where
one stands, and being refused for the per-customer limit open no connection at all; the
limit Redis answers from agrees with PostgreSQL's SOLD tokens, PostgreSQL refuses at
checkout when Redis's count was lost, and a reloaded line brings the counts back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from fastapi import FastAPI
from sqlalchemy import event

from server.flash import queue
from server.flash.admission import admit_next
from server.flash.sales import get_sale
from server.kit import keys
from server.kit.db import transaction
from server.kit.resources import resources_of
from tests.helpers import simulated_provider
from tests.server.flash.flash_helpers import (
    ADDRESS,
    STORE,
    create_sale,
    flash_sku,
    make_customers,
    manager_headers,
    stock_up,
)


@contextmanager
def _postgres_use(app: FastAPI) -> Iterator[list[str]]:
    """Every pool checkout and statement while the block runs."""
    seen: list[str] = []
    engine = resources_of(app).engine.sync_engine

    def statement(conn, cursor, text: str, parameters, context, executemany) -> None:
        seen.append(" ".join(text.split())[:80])

    def checkout(dbapi_conn, record, proxy) -> None:
        seen.append("pool checkout")

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine.pool, "checkout", checkout)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine.pool, "checkout", checkout)


def _sold_in_postgres(database_url: str, sale_id: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {
            str(who): int(n)
            for who, n in conn.execute(
                "SELECT claimed_by, count(*) FROM inventory_tokens "
                "WHERE sale_id = %s AND status = 'SOLD' GROUP BY claimed_by",
                (sale_id,),
            )
        }


async def _bought_in_redis(app: FastAPI, sale_id: str) -> dict[str, int]:
    raw = await resources_of(app).redis.hgetall(keys.flash_bought(sale_id))
    text = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    return {k: int(v) for k, v in text.items()}


async def _sale_of_three(app: FastAPI, client, clock, city) -> str:
    """A live sale of 3 units of a flash SKU with 5 in stock; its id."""
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, 5)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=3
    )
    return str(sale["sale_id"])


async def test_a_join_in_line_and_its_polls_use_no_postgres(city, app, client, clock):
    resources_of(app).settings.flash_max_concurrent_checkouts = 1
    queue_url = f"/v1/flash-sales/{await _sale_of_three(app, client, clock, city)}/queue"
    (_, first), (_, second), (_, third) = make_customers(city.database_url, clock, 3)
    r = await client.post(queue_url, json={"store_id": STORE}, headers=first)
    assert r.json()["status"] == "ADMITTED"  # the one slot is taken: the others queue
    for headers in (second, third):  # signed in before (the auth cache knows them)
        assert (await client.get(f"{queue_url}/me", headers=headers)).status_code == 404

    with _postgres_use(app) as used:
        joined = await client.post(queue_url, json={"store_id": STORE}, headers=second)
        again = await client.post(queue_url, json={"store_id": STORE}, headers=second)
        behind = await client.post(queue_url, json={"store_id": STORE}, headers=third)
        polled = await client.get(f"{queue_url}/me", headers=third)
    assert used == []
    assert [joined.status_code, again.status_code, behind.status_code, polled.status_code] == [
        200
    ] * 4
    assert joined.json()["status"] == "WAITING" and joined.json()["position"] == 1
    assert again.json()["ticket"] == joined.json()["ticket"]  # a repeat keeps the place
    assert behind.json()["position"] == polled.json()["position"] == 2
    assert polled.json()["units_left"] == behind.json()["units_left"] == 3
    assert behind.json()["ticket"] == polled.json()["ticket"] > joined.json()["ticket"]


async def test_the_limit_in_redis_follows_postgres_and_postgres_has_the_last_word(
    city, app, client, clock
):
    resources = resources_of(app)
    provider = simulated_provider(app)
    sid = await _sale_of_three(app, client, clock, city)
    queue_url = f"/v1/flash-sales/{sid}/queue"
    (buyer_id, buyer), (_, decliner) = make_customers(city.database_url, clock, 2)

    async def join_and_pay(headers: dict[str, str]) -> int:
        r = await client.post(queue_url, json={"store_id": STORE}, headers=headers)
        assert r.json()["status"] == "ADMITTED", r.text
        paid = await client.post(
            f"/v1/flash-sales/{sid}/checkout",
            json=ADDRESS,
            headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        return paid.status_code

    provider.failure_rate = 1.0  # declined: the order is cancelled, nothing was bought
    assert await join_and_pay(decliner) == 402
    provider.failure_rate = 0.0
    assert await join_and_pay(buyer) == 201
    sold = _sold_in_postgres(city.database_url, sid)
    assert sold == {str(buyer_id): 1} == await _bought_in_redis(app, sid)

    me = await client.get(f"{queue_url}/me", headers=buyer)  # (the sale is in the cache)
    assert me.json()["status"] == "PURCHASED"
    with _postgres_use(app) as used:  # the limit is refused from Redis alone
        refused = await client.post(queue_url, json={"store_id": STORE}, headers=buyer)
    assert used == [] and refused.status_code == 409
    assert refused.json()["code"] == "flash_limit_reached"

    # Redis lost the count (a crash after the commit): the buyer may queue again, and the
    # checkout, counting in PostgreSQL, refuses and puts the count back
    await resources.redis.delete(keys.flash_bought(sid))
    r = await client.post(queue_url, json={"store_id": STORE}, headers=buyer)
    assert r.json()["status"] == "ADMITTED"
    twice = await client.post(
        f"/v1/flash-sales/{sid}/checkout",
        json=ADDRESS,
        headers={**buyer, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert twice.status_code == 409 and twice.json()["code"] == "flash_limit_reached"
    assert await _bought_in_redis(app, sid) == sold == _sold_in_postgres(city.database_url, sid)

    # Redis lost the whole sale: the reloaded line brings the counts back from PostgreSQL
    for key in await resources.redis.keys(f"flash:{{{sid}}}:*"):
        await resources.redis.delete(key)
    again = await client.post(queue_url, json={"store_id": STORE}, headers=buyer)
    assert again.status_code == 409 and again.json()["code"] == "flash_limit_reached"
    assert await _bought_in_redis(app, sid) == sold


async def test_a_join_behind_a_freed_slot_leaves_its_refill_to_others(city, app, client, clock):
    """A slot freed but not yet refilled (its releaser, or the tick, admits the head next)
    is not for a join further back: it answers from Redis alone, and the head still gets
    the slot."""
    resources = resources_of(app)
    resources.settings.flash_max_concurrent_checkouts = 2
    sid = await _sale_of_three(app, client, clock, city)
    queue_url = f"/v1/flash-sales/{sid}/queue"
    people = make_customers(city.database_url, clock, 4)
    (first_id, first), (_, second), (third_id, third), (_, fourth) = people
    for headers, status in ((first, "ADMITTED"), (second, "ADMITTED"), (third, "WAITING")):
        r = await client.post(queue_url, json={"store_id": STORE}, headers=headers)
        assert r.json()["status"] == status
    assert (await client.get(f"{queue_url}/me", headers=fourth)).status_code == 404  # signed in
    # the first slot ends in Redis (the second is in use); its releaser has not admitted
    # the head yet
    released = await queue.release(
        resources.redis,
        sale_id=sid,
        store_id=STORE,
        ended={str(first_id): "returned"},
        now=clock.now().timestamp(),
        slot_s=60,
        max_slots=2,
    )
    assert released.can_admit

    with _postgres_use(app) as used:
        behind = await client.post(queue_url, json={"store_id": STORE}, headers=fourth)
    assert used == []
    assert behind.json()["status"] == "WAITING" and behind.json()["position"] == 2

    async with transaction(resources.sessions) as session:  # the releaser's admission
        admitted = await admit_next(
            session,
            resources.redis,
            sale=await get_sale(session, sale_id=uuid.UUID(sid)),
            store_id=STORE,
            now=clock.now(),
            settings=resources.settings,
        )
    assert [a.customer for a in admitted] == [str(third_id)]  # the head, not the joiner
