"""Substitution with the customer's consent (issue 18 point 8): under the store policy
``ask`` a short line's substitutes are offered on the customer's tracking socket; the
customer accepts, chooses another or refuses over REST; no answer by the deadline (server
clock) and the store's fallback decides; an answer racing the timeout has one outcome."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import websockets

from server.events.relay import relay_once
from server.identity.models import User
from server.kit.background import ShardedLoop
from server.kit.clock import ManualClock
from server.kit.db import transaction
from server.kit.errors import Conflict
from server.kit.loops import background_loops
from server.kit.resources import resources_of
from server.orders.models import Order
from server.picking import consent
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.schemas.orders import SubstitutionAnswer
from tests.helpers import login
from tests.server.inventory.helpers import ledger_sum, pg_stock, redis_stock
from tests.server.picking.test_picking_api import STORE, place_confirmed_order


def ask_policy(url: str, fallback: str = "substitute") -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE dark_stores SET substitution_policy = 'ask', substitution_fallback = %s "
            "WHERE store_id = %s",
            (fallback, STORE),
        )


async def claim(client: httpx.AsyncClient, url: str) -> tuple[dict, dict[str, str], dict]:
    """A claimed order of two lines (1 and 2 units) and the picker's headers."""
    order = await place_confirmed_order(client, url, lines=2)
    picker = await login(client, "picker.kor.1", DEMO_SECRETS[Role.PICKER])
    task = (await client.post("/v1/picking/claim", headers=picker)).json()
    assert task["order_id"] == order["order_id"]
    return order, picker, task


async def short_all(client, picker, order_id: str, line: dict) -> dict:
    r = await client.post(
        f"/v1/picking/tasks/{order_id}/short",
        headers=picker,
        json={"sku_id": line["sku_id"], "found_qty": 0, "reason": "missing"},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def answer(client, customer, order_id: str, sku_id: str, body: dict) -> httpx.Response:
    return await client.post(
        f"/v1/orders/{order_id}/substitutions/{sku_id}", headers=customer, json=body
    )


def money(url: str, order_id: str, sku_id: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        refunds = conn.execute(
            "SELECT amount_paise, status FROM refunds WHERE order_id = %s AND sku_id = %s",
            (order_id, sku_id),
        ).fetchall()
        items = conn.execute(
            "SELECT sku_id, quantity, unit_price_paise, substitute_sku FROM order_items "
            "WHERE order_id = %s ORDER BY sku_id",
            (order_id,),
        ).fetchall()
        offer = conn.execute(
            "SELECT status, chosen_sku, decided_by FROM substitution_offers "
            "WHERE order_id = %s AND sku_id = %s",
            (order_id, sku_id),
        ).fetchone()
    return {"refunds": refunds, "items": {r[0]: r[1:] for r in items}, "offer": offer}


def store_price(url: str, sku_id: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT selling_price_paise FROM store_prices WHERE store_id = %s AND sku_id = %s",
            (STORE, sku_id),
        ).fetchone()[0]  # type: ignore[index]


async def next_of(ws, topic: str) -> dict:
    """The socket's next message of ``topic`` (others are skipped), within 10 s."""
    async with asyncio.timeout(10):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == topic:
                return message


def ws_url(base: str, path: str, headers: dict[str, str]) -> str:
    return base.replace("http", "ws") + f"{path}?token={headers['Authorization'][7:]}"


async def test_the_offer_reaches_the_tracking_socket_and_accepting_places_it(
    city, live_server, stack
) -> None:
    ask_policy(city.database_url)
    async with live_server.client() as client:
        order, picker, task = await claim(client, city.database_url)
        oid = order["order_id"]
        line = next(ln for ln in task["lines"] if ln["quantity"] == 2)
        line_price = next(
            i["unit_price_paise"] for i in order["items"] if i["sku_id"] == line["sku_id"]
        )
        customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
        await relay_once(stack.engine, stack.redis)  # what happened before the sockets
        tracking = websockets.connect(ws_url(live_server.url, f"/ws/orders/{oid}", customer))
        picking = websockets.connect(ws_url(live_server.url, "/ws/picker", picker))
        async with tracking as ws, picking as picker_ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
            assert json.loads(await picker_ws.recv())["type"] == "queue"
            short = await short_all(client, picker, oid, line)
            assert short["policy"] == "ask" and short["awaiting_customer_until"]
            await relay_once(stack.engine, stack.redis)
            offered = await next_of(ws, "order.substitution_offered")
        assert offered["sku_id"] == line["sku_id"] and offered["quantity"] == 2
        assert offered["status"] == "PENDING" and offered["expires_at"]
        proposed = offered["proposed_sku"]
        assert offered["candidates"][0]["sku_id"] == proposed
        # the line waits on the customer; the refund is held, not paid out meanwhile
        pick = (await client.get(f"/v1/picking/tasks/{oid}", headers=picker)).json()
        waiting = next(ln for ln in pick["lines"] if ln["sku_id"] == line["sku_id"])
        assert waiting["awaiting_customer_until"] == short["awaiting_customer_until"]
        assert money(city.database_url, oid, line["sku_id"])["refunds"] == [
            (2 * line_price, "HELD")
        ]
        packed = await client.post(
            f"/v1/picking/tasks/{oid}/pack", json={"bag_count": 1}, headers=picker
        )
        assert packed.status_code == 409 and packed.json()["code"] == "awaiting_customer"

        stock = pg_stock(city.database_url, STORE, proposed)
        ledger = ledger_sum(city.database_url, STORE, proposed)
        async with websockets.connect(ws_url(live_server.url, "/ws/picker", picker)) as picker_ws:
            assert json.loads(await picker_ws.recv())["type"] == "queue"
            r = await answer(client, customer, oid, line["sku_id"], {"answer": "accept"})
            assert r.status_code == 200, r.text
            await relay_once(stack.engine, stack.redis)
            resolved = await next_of(picker_ws, "picking.substitution_resolved")
        assert (resolved["order_id"], resolved["status"], resolved["chosen_sku"]) == (
            oid,
            "SUBSTITUTED",
            proposed,
        )
        unit = min(store_price(city.database_url, proposed), line_price)
        books = money(city.database_url, oid, line["sku_id"])
        assert books["offer"] == ("SUBSTITUTED", proposed, "customer")
        assert books["items"][proposed] == (2, unit, None)
        assert books["items"][line["sku_id"]][2] == proposed
        # the customer pays the substitute at most the original's price: the refund is the
        # difference, now due
        assert books["refunds"] == [(2 * line_price - 2 * unit, "PENDING")]
        after = pg_stock(city.database_url, STORE, proposed)
        assert after == (stock[0] - 2, *stock[1:])
        assert await redis_stock(stack.redis, STORE, proposed) == after
        # conservation: the buckets moved exactly as the ledger's movements say
        moved = ledger_sum(city.database_url, STORE, proposed)
        assert [m - b for m, b in zip(moved, ledger, strict=True)] == [
            a - b for a, b in zip(after, stock, strict=True)
        ]
        # the answer again (its reply lost) changes nothing; another answer is refused
        again = await answer(client, customer, oid, line["sku_id"], {"answer": "accept"})
        assert again.status_code == 200 and money(city.database_url, oid, line["sku_id"]) == books
        other = await answer(client, customer, oid, line["sku_id"], {"answer": "refuse"})
        assert other.status_code == 409 and other.json()["code"] == "offer_closed"
        view = again.json()
        assert view["substitutions"][0]["status"] == "SUBSTITUTED"


async def test_refusing_refunds_the_line_and_takes_no_stock(city, client) -> None:
    ask_policy(city.database_url)
    order, picker, task = await claim(client, city.database_url)
    oid = order["order_id"]
    line = next(ln for ln in task["lines"] if ln["quantity"] == 2)
    price = next(i["unit_price_paise"] for i in order["items"] if i["sku_id"] == line["sku_id"])
    short = await short_all(client, picker, oid, line)
    stocks = {
        o["sku_id"]: pg_stock(city.database_url, STORE, o["sku_id"]) for o in short["substitutes"]
    }
    # under ask the picker does not choose for the customer
    mine = await client.post(
        f"/v1/picking/tasks/{oid}/substitute",
        headers=picker,
        json={
            "sku_id": line["sku_id"],
            "substitute_sku": short["substitutes"][0]["sku_id"],
            "quantity": 2,
        },
    )
    assert mine.status_code == 409 and mine.json()["code"] == "customer_decides"
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    r = await answer(client, customer, oid, line["sku_id"], {"answer": "refuse"})
    assert r.status_code == 200, r.text
    books = money(city.database_url, oid, line["sku_id"])
    assert books["offer"] == ("REFUNDED", None, "customer")
    assert books["refunds"] == [(2 * price, "PENDING")]
    assert set(books["items"]) == {i["sku_id"] for i in order["items"]}
    assert stocks == {s: pg_stock(city.database_url, STORE, s) for s in stocks}
    # the line no longer waits: the rest picked, the order packs
    pick = (await client.get(f"/v1/picking/tasks/{oid}", headers=picker)).json()
    assert all(ln["awaiting_customer_until"] is None for ln in pick["lines"])


async def test_choosing_another_candidate_places_that_one(city, client) -> None:
    ask_policy(city.database_url)
    order, picker, task = await claim(client, city.database_url)
    oid = order["order_id"]
    line = next(ln for ln in task["lines"] if ln["quantity"] == 1)
    price = line_price(order, line["sku_id"])
    await short_all(client, picker, oid, line)
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    view = (await client.get(f"/v1/orders/{oid}", headers=customer)).json()
    (offer,) = view["substitutions"]
    assert len(offer["candidates"]) >= 2, "the seed should have two candidates in stock"
    other = offer["candidates"][1]
    # the proposed product's shelf empties meanwhile: accepting it is refused, the offer
    # stays open for another answer
    proposed = offer["proposed_sku"]
    left = pg_stock(city.database_url, STORE, proposed)[0]
    gone = await client.post(
        f"/v1/stores/{STORE}/inventory/{proposed}/damage",
        headers=picker,
        json={"quantity": left, "reason": "crushed"},
    )
    assert gone.status_code == 200, gone.text
    refused = await answer(client, customer, oid, line["sku_id"], {"answer": "accept"})
    assert refused.status_code == 409 and refused.json()["code"] == "insufficient_stock"
    assert money(city.database_url, oid, line["sku_id"])["offer"] == ("PENDING", None, None)
    stranger = await answer(
        client, customer, oid, line["sku_id"], {"answer": "choose", "substitute_sku": "NOPE"}
    )
    assert stranger.status_code == 422 and stranger.json()["code"] == "not_a_candidate"
    r = await answer(
        client,
        customer,
        oid,
        line["sku_id"],
        {"answer": "choose", "substitute_sku": other["sku_id"]},
    )
    assert r.status_code == 200, r.text
    books = money(city.database_url, oid, line["sku_id"])
    assert books["offer"] == ("SUBSTITUTED", other["sku_id"], "customer")
    assert books["items"][other["sku_id"]][:2] == (1, other["price_paise"])
    assert offer["proposed_sku"] not in books["items"]
    assert books["refunds"] == [(price - other["price_paise"], "PENDING")]


@pytest.mark.parametrize("fallback", ["substitute", "refund"])
async def test_no_answer_in_time_gets_the_store_fallback(
    city, client, stack, clock, settings, fallback
) -> None:
    ask_policy(city.database_url, fallback)
    order, picker, task = await claim(client, city.database_url)
    oid = order["order_id"]
    line = next(ln for ln in task["lines"] if ln["quantity"] == 2)
    short = await short_all(client, picker, oid, line)
    # not yet due: the loop leaves it
    assert await consent.expire_offers(stack.sessions, stack.redis, clock, STORE) == 0
    # the demo's and the simulation's manual clock moves the deadline as well
    manual = ManualClock(clock.timestamp())
    manual.advance(settings.substitution_answer_s - 1)
    assert await consent.expire_offers(stack.sessions, stack.redis, manual, STORE) == 0
    manual.advance(2)
    assert await consent.expire_offers(stack.sessions, stack.redis, manual, STORE) == 1
    books = money(city.database_url, oid, line["sku_id"])
    proposed = short["substitutes"][0]["sku_id"]
    if fallback == "substitute":
        assert books["offer"] == ("SUBSTITUTED", proposed, "timeout")
        assert books["items"][proposed][0] == 2
    else:
        assert books["offer"] == ("REFUNDED", None, "timeout")
        assert proposed not in books["items"]
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    late = await answer(client, customer, oid, line["sku_id"], {"answer": "refuse"})
    assert late.status_code == 409 and late.json()["code"] == "offer_closed"
    assert money(city.database_url, oid, line["sku_id"]) == books
    assert await consent.expire_offers(stack.sessions, stack.redis, manual, STORE) == 0


def line_price(order: dict, sku_id: str) -> int:
    return next(i["unit_price_paise"] for i in order["items"] if i["sku_id"] == sku_id)


def offer_row(url: str, order_id: str, sku_id: str) -> tuple[datetime, str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT expires_at, proposed_sku, quantity FROM substitution_offers "
            "WHERE order_id = %s AND sku_id = %s",
            (order_id, sku_id),
        ).fetchone()
    assert row is not None
    return row


def resolved_events(url: str, order_id: str, sku_id: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM outbox WHERE topic LIKE '%%.substitution_resolved' "
            "AND aggregate_id = %s AND payload->>'sku_id' = %s",
            (order_id, sku_id),
        ).fetchone()[0]  # type: ignore[index]


async def test_an_answer_racing_the_timeout_has_exactly_one_outcome(city, client, stack) -> None:
    """The answer (sent just before the deadline) and the timeout (run just after it) at
    once, on two connections: one closes the offer and applies its outcome, the other
    changes nothing; the refund, the items and the stock show that one outcome."""
    ask_policy(city.database_url, "refund")
    with psycopg.connect(city.database_url) as conn:
        customer_id = conn.execute("SELECT id FROM users WHERE login = 'customer.001'").fetchone()[
            0
        ]  # type: ignore[index]
    tick = timedelta(milliseconds=1)
    for _ in range(3):
        order, picker, task = await claim(client, city.database_url)
        oid = order["order_id"]
        for line in task["lines"]:
            await short_all(client, picker, oid, line)
        for line in task["lines"]:
            deadline, proposed, quantity = offer_row(city.database_url, oid, line["sku_id"])
            stock = pg_stock(city.database_url, STORE, proposed)

            async def by_customer(
                sku_id: str = line["sku_id"], at: datetime = deadline, oid: str = oid
            ) -> str:
                try:
                    async with transaction(stack.sessions) as session:
                        owner = await session.get(Order, (STORE, uuid.UUID(oid)))
                        user = await session.get(User, customer_id)
                        assert owner is not None and user is not None
                        await consent.answer(
                            session,
                            stack.redis,
                            order=owner,
                            customer=user,
                            sku_id=sku_id,
                            body=SubstitutionAnswer(answer="accept"),
                            now=at - tick,
                        )
                except Conflict as exc:
                    return exc.code
                return "answered"

            async def by_timeout(
                sku_id: str = line["sku_id"], at: datetime = deadline, oid: str = oid
            ) -> str:
                async with transaction(stack.sessions) as session:
                    closed = await consent.expire_one(
                        session,
                        stack.redis,
                        store_id=STORE,
                        order_id=uuid.UUID(oid),
                        sku_id=sku_id,
                        now=at + tick,
                    )
                return "expired" if closed else "nothing"

            outcome = sorted(await asyncio.gather(by_customer(), by_timeout()))
            assert outcome in (["answered", "nothing"], ["expired", "offer_closed"]), outcome
            books = money(city.database_url, oid, line["sku_id"])
            price = line_price(order, line["sku_id"])
            if outcome[0] == "answered":
                unit = books["items"][proposed][1]
                assert books["offer"] == ("SUBSTITUTED", proposed, "customer")
                assert books["items"][proposed][0] == quantity
                assert books["refunds"] == [(quantity * (price - unit), "PENDING")]
                assert pg_stock(city.database_url, STORE, proposed)[0] == stock[0] - quantity
            else:
                assert books["offer"] == ("REFUNDED", None, "timeout")
                assert proposed not in books["items"]
                assert books["refunds"] == [(quantity * price, "PENDING")]
                assert pg_stock(city.database_url, STORE, proposed) == stock
            # one outcome told once, to the customer and to the pickers
            assert resolved_events(city.database_url, oid, line["sku_id"]) == 2
        pick = (await client.get(f"/v1/picking/tasks/{oid}", headers=picker)).json()
        assert all(ln["awaiting_customer_until"] is None for ln in pick["lines"])
        for ln in pick["lines"]:  # packed: the next round's claim gets the next order
            for _ in range(ln["quantity"] - ln["picked_qty"]):
                r = await client.post(
                    f"/v1/picking/tasks/{oid}/scans",
                    headers=picker,
                    json={"scan_id": uuid.uuid4().hex, "code": ln["barcode"]},
                )
                assert r.status_code == 200, r.text
        packed = await client.post(
            f"/v1/picking/tasks/{oid}/pack", json={"bag_count": 1}, headers=picker
        )
        assert packed.status_code == 200, packed.text


async def test_a_cancelled_order_closes_its_offer_without_a_second_refund(
    city, client, stack, clock, settings
) -> None:
    """The manager cancels the order while the customer is asked: the cancel refunds the
    payment whole, so the line's held refund is void; the answer is refused, and the
    timeout closes the offer without substituting."""
    ask_policy(city.database_url)
    order, picker, task = await claim(client, city.database_url)
    oid = order["order_id"]
    line = next(ln for ln in task["lines"] if ln["quantity"] == 2)
    short = await short_all(client, picker, oid, line)
    proposed = short["substitutes"][0]["sku_id"]
    stock = pg_stock(city.database_url, STORE, proposed)
    manager = await login(client, "manager.blr", DEMO_SECRETS[Role.MANAGER])
    r = await client.post(
        f"/v1/ops/orders/{oid}/cancel", headers=manager, json={"reason": "store closing"}
    )
    assert r.status_code == 200, r.text
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    late = await answer(client, customer, oid, line["sku_id"], {"answer": "accept"})
    assert late.status_code == 409 and late.json()["code"] == "offer_closed"
    clock.advance(settings.substitution_answer_s + 1)
    assert await consent.expire_offers(stack.sessions, stack.redis, clock, STORE) == 1
    books = money(city.database_url, oid, line["sku_id"])
    assert books["offer"] == ("REFUNDED", None, "timeout")
    assert books["refunds"] == [(2 * line_price(order, line["sku_id"]), "VOID")]
    assert proposed not in books["items"]
    assert pg_stock(city.database_url, STORE, proposed) == stock


async def test_the_app_runs_the_timeout_as_a_fenced_loop_per_store(
    city, app, client, clock, settings
) -> None:
    """The app's own ``substitution-answers`` loop (one lease per store) closes an offer
    whose time ran out: one tick, as a replica holding the store's lease runs it."""
    ask_policy(city.database_url, "refund")
    order, picker, task = await claim(client, city.database_url)
    line = next(ln for ln in task["lines"] if ln["quantity"] == 2)
    await short_all(client, picker, order["order_id"], line)
    (loop,) = [x for x in background_loops(resources_of(app)) if x.name == "substitution-answers"]
    assert isinstance(loop, ShardedLoop)
    await loop.tick()
    assert money(city.database_url, order["order_id"], line["sku_id"])["offer"][0] == "PENDING"
    clock.advance(settings.substitution_answer_s + 1)
    # past the deadline an answer is refused even before the loop has run
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    late = await answer(client, customer, order["order_id"], line["sku_id"], {"answer": "accept"})
    assert late.status_code == 409 and late.json()["code"] == "offer_closed"
    assert money(city.database_url, order["order_id"], line["sku_id"])["offer"][0] == "PENDING"
    await loop.tick()
    assert STORE in loop.held
    books = money(city.database_url, order["order_id"], line["sku_id"])
    assert books["offer"] == ("REFUNDED", None, "timeout")
    await loop.stop()
