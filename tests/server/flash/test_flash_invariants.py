"""Random sequences of joins, checkouts (paid or declined), give-ups, clock steps and
ticks, checked after every step: the sale never sells more than its units, nobody buys
over the limit (and Redis's count of each customer's buys, which the join reads, equals
PostgreSQL's), the stock books balance (physical = available + reserved + damaged +
in_transit, Redis equal to PostgreSQL) and the queue's counts equal the tokens."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.flash import queue, tick
from server.kit import keys, scripts
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

UNITS, PEOPLE, SLOTS = 3, 5, 2

ops = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.integers(0, PEOPLE - 1)),
        st.tuples(st.just("pay"), st.integers(0, PEOPLE - 1)),
        st.tuples(st.just("decline"), st.integers(0, PEOPLE - 1)),
        st.tuples(st.just("leave"), st.integers(0, PEOPLE - 1)),
        st.tuples(st.just("pend-ok"), st.integers(0, PEOPLE - 1)),
        st.tuples(st.just("pend-fail"), st.integers(0, PEOPLE - 1)),
        st.tuples(st.just("webhooks"), st.just(0)),
        st.tuples(st.just("wait"), st.sampled_from([10, 30, 61])),
    ),
    min_size=4,
    max_size=14,
)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.slow
@given(steps=ops)
async def test_random_shopping_keeps_every_invariant(city, app, client, clock, steps) -> None:
    resources = resources_of(app)
    resources.settings.flash_max_concurrent_checkouts = SLOTS
    resources.settings.checkout_rate_limit_per_ip = "100000/minute"  # rate limits: elsewhere
    provider = simulated_provider(app)
    sku = flash_sku(city.database_url)
    await stock_up(app, STORE, sku, UNITS)
    start = books(city.database_url, STORE, sku)
    manager = manager_headers(clock, city.database_url)
    sale = await create_sale(client, manager, clock, sku=sku, units=UNITS)
    sid = sale["sale_id"]
    people = make_customers(city.database_url, clock, PEOPLE, prefix=f"h{uuid.uuid4().hex[:6]}")

    try:
        for op, arg in steps:
            if op == "wait":
                clock.advance(arg)
                await tick.tick(
                    resources.sessions, resources.redis, clock=clock, settings=resources.settings
                )
            elif op == "webhooks":  # the provider reports the pending payments, then a tick
                for payment in _pending_payments(city.database_url, sid):
                    hook = provider.webhook_event(payment, now_ts=clock.now().timestamp())
                    r = await client.post(
                        "/v1/payments/webhook", content=hook.body, headers=hook.headers
                    )
                    assert r.status_code == 200, r.text
                await tick.tick(
                    resources.sessions, resources.redis, clock=clock, settings=resources.settings
                )
            else:
                _, headers = people[arg]
                if op == "join":
                    r = await client.post(
                        f"/v1/flash-sales/{sid}/queue", json={"store_id": STORE}, headers=headers
                    )
                    assert r.status_code in (200, 409), r.text
                elif op == "leave":
                    r = await client.delete(f"/v1/flash-sales/{sid}/queue/me", headers=headers)
                    assert r.status_code in (204, 404, 409), r.text
                else:
                    provider.failure_rate = 1.0 if op in ("decline", "pend-fail") else 0.0
                    provider.pending_rate = 1.0 if op.startswith("pend") else 0.0
                    r = await client.post(
                        f"/v1/flash-sales/{sid}/checkout",
                        json=ADDRESS,
                        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                    )
                    assert r.status_code in (201, 402, 409), r.text
            await _check(city.database_url, resources.redis, sid, sku, start)

    finally:  # whatever happened, end the sale so the next example can start one
        stopped = await client.post(
            f"/v1/flash-sales/{sid}/stop", json={"reason": "done"}, headers=manager
        )
    assert stopped.status_code == 200, stopped.text
    end = books(city.database_url, STORE, sku, sid)
    sold, paying = end.get("tokens_sold", 0), end.get("tokens_claimed", 0)
    # every unsold unit is regular stock again, but for those whose payment is still
    # pending (their order holds them); sold ones left the books
    assert end["available"] == start["available"] - sold - paying
    assert end["physical"] == start["physical"] - sold
    assert end["held"] == start["held"] + paying


def _pending_payments(database_url: str, sid: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [
            str(r[0])
            for r in conn.execute(
                "SELECT p.payment_id FROM payments p JOIN inventory_tokens t "
                "ON t.order_id = p.order_id WHERE t.sale_id = %s AND p.status = 'PENDING'",
                (sid,),
            )
        ]


async def _check(database_url: str, redis, sid: str, sku: str, start: dict) -> None:
    now = books(database_url, STORE, sku, sid)
    sold = now.get("tokens_sold", 0)
    live = now.get("tokens_available", 0) + now.get("tokens_claimed", 0)
    assert sold + live + now.get("tokens_void", 0) == UNITS  # never more than the units
    assert now["physical"] == start["physical"] - sold  # the books follow every sale
    assert now["reserved"] == now["held"] == start["held"] + live  # each live token holds one
    stock = await redis.hmget(keys.inventory(STORE, sku), "available", "reserved")
    assert [int(v) for v in stock] == [now["available"], now["reserved"]]  # Redis = PostgreSQL
    with psycopg.connect(database_url) as conn:
        over = one_row(
            conn.execute(
                "SELECT count(*) FROM (SELECT claimed_by FROM inventory_tokens WHERE sale_id = %s "
                "AND status = 'SOLD' GROUP BY claimed_by HAVING count(*) > 1) x",
                (sid,),
            )
        )[0]
        sold_to = {
            str(who): int(n)
            for who, n in conn.execute(
                "SELECT claimed_by, count(*) FROM inventory_tokens WHERE sale_id = %s "
                "AND status = 'SOLD' GROUP BY claimed_by",
                (sid,),
            )
        }
    assert over == 0  # per-customer limit 1
    bought = await redis.hgetall(keys.flash_bought(sid))  # what the join's limit reads
    assert {scripts.text(k): int(v) for k, v in bought.items()} == sold_to
    line = await queue.positions(redis, sale_id=sid, store_id=STORE, customers=[])
    if line.open:
        assert line.in_slots <= SLOTS
        assert line.free + line.in_slots == live  # the gate's count equals the tokens
        assert line.in_slots == now.get("tokens_claimed", 0)
