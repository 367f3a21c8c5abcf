"""A crowd at once: concurrent joins and checkouts, some payments declined and some
answered later by webhook. Exactly the sale's units are sold, never one more, to distinct
customers within their limit, admitted strictly in join order."""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg

from server.flash import tick
from server.kit.resources import resources_of
from tests.helpers import one_row, simulated_provider
from tests.server.flash.flash_helpers import (
    ADDRESS,
    STORE,
    books,
    create_sale,
    flash_sku,
    make_customers,
    manager_headers,
    stock_up,
)

UNITS, CROWD = 8, 30


async def test_a_crowd_buys_exactly_the_units_in_join_order(city, app, client, clock):
    resources = resources_of(app)
    resources.settings.flash_max_concurrent_checkouts = 3
    provider = simulated_provider(app)
    provider.failure_rate, provider.pending_rate = 0.25, 0.2
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, UNITS + 10)
    before = books(city.database_url, STORE, sku)
    sale = await create_sale(
        client, manager_headers(clock, city.database_url), clock, sku=sku, units=UNITS
    )
    sid = sale["sale_id"]
    crowd = make_customers(city.database_url, clock, CROWD)

    async def join(headers):
        r = await client.post(
            f"/v1/flash-sales/{sid}/queue", json={"store_id": STORE}, headers=headers
        )
        assert r.status_code in (200, 409), r.text
        return r.json()

    joined = await asyncio.gather(*(join(h) for _, h in crowd))
    tickets = sorted(j["ticket"] for j in joined)
    assert tickets == list(range(1, CROWD + 1))  # one entry each, FIFO numbering

    admitted: dict[uuid.UUID, tuple[int, int]] = {}  # customer -> (admission no, ticket)
    outcome: dict[uuid.UUID, str] = {}
    pended: set[uuid.UUID] = set()

    async def shop(cid: uuid.UUID, headers: dict[str, str]) -> None:
        r = await client.get(f"/v1/flash-sales/{sid}/queue/me", headers=headers)
        if r.status_code == 404:
            outcome[cid] = "gone"
            return
        entry = r.json()
        if entry["status"] == "CLOSED":
            outcome[cid] = entry["closed_reason"]
        elif entry["status"] == "PURCHASED":
            outcome[cid] = "bought"
        elif entry["status"] == "ADMITTED" and entry["admitted_no"] and cid not in admitted:
            admitted[cid] = (entry["admitted_no"], entry["ticket"])
            paid = await client.post(
                f"/v1/flash-sales/{sid}/checkout",
                json=ADDRESS,
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert paid.status_code in (201, 402), paid.text
            if paid.status_code == 402:
                outcome[cid] = "declined"
            elif paid.json()["status"] == "PLACED":  # pending: the provider's webhook settles
                pended.add(cid)
                payment = _payment_id(city.database_url, paid.json()["order_id"])
                hook = provider.webhook_event(payment, now_ts=clock.now().timestamp())
                r = await client.post(
                    "/v1/payments/webhook", content=hook.body, headers=hook.headers
                )
                assert r.status_code == 200

    deadline = time.monotonic() + 60
    while len(outcome) < CROWD:
        assert time.monotonic() < deadline, f"stuck: {len(outcome)} of {CROWD} done"
        await asyncio.gather(*(shop(cid, h) for cid, h in crowd if cid not in outcome))
        await tick.tick(
            resources.sessions, resources.redis, clock=clock, settings=resources.settings
        )

    with psycopg.connect(city.database_url) as conn:
        sold = conn.execute(
            "SELECT claimed_by, count(*) FROM inventory_tokens WHERE sale_id = %s "
            "AND status = 'SOLD' GROUP BY claimed_by",
            (sid,),
        ).fetchall()
        confirmed = one_row(
            conn.execute(
                "SELECT count(*) FROM orders o JOIN order_items i USING (store_id, order_id) "
                "WHERE i.sku_id = %s AND i.unit_price_paise = 100 AND o.status = 'CONFIRMED'",
                (sku,),
            )
        )[0]
    assert sum(n for _, n in sold) == UNITS == confirmed  # exactly the units, never more
    assert all(n <= 1 for _, n in sold)  # nobody over the per-customer limit
    assert {c for c, _ in sold} == {c for c, o in outcome.items() if o == "bought"}
    # admitted strictly in join order
    order = [ticket for _, ticket in sorted(admitted.values())]
    assert order == sorted(order)
    assert set(outcome.values()) <= {"bought", "declined", "sold_out", "gone"}
    # "gone": a pending payment the webhook declined (the slot ended, the token went back)
    assert {c for c, o in outcome.items() if o == "gone"} <= pended
    end = books(city.database_url, STORE, sku)
    assert end["physical"] == before["physical"] - UNITS
    assert end["held"] == before["held"] and end["available"] == before["available"] - UNITS


def _payment_id(database_url: str, order_id: str) -> str:
    with psycopg.connect(database_url) as conn:
        return str(
            one_row(
                conn.execute("SELECT payment_id FROM payments WHERE order_id = %s", (order_id,))
            )[0]
        )
