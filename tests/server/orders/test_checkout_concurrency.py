"""Checkouts under load and faults, over real HTTP: more customers at once than the
database pool has connections, and a charge whose outcome could not be recorded.

Whatever happens, every answer is a problem or an order (never a 500), every charge the
provider made ends as a confirmed order or a refund, and the SKU's books balance.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from server.app import create_app
from server.identity.models import User
from server.identity.service import issue_token
from server.inventory import journal
from server.kit import db, keys
from server.kit import redis as qredis
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.resources import resources_of
from server.payments.provider import ChargeStatus, SimulatedProvider
from server.seed.generate import seed_city
from tests.conftest import SMALL_CITY, LiveServer, Services
from tests.helpers import ThreadedServer
from tests.server.inventory.helpers import ledger_sum, pg_stock, set_stock

HOME = {"lat": 12.9352, "lng": 77.6245}
ADDRESS = {"address": {"line1": "4th Cross, 5th Block", **HOME}, "payment_method": "upi"}
STORE = "BLR-KOR"
CUSTOMERS = 66
STOCK = 200
ANSWERS = {201, 402, 409, 429, 503}
DEADLINE_S = 60


@pytest.fixture
def crowd(clean: Services) -> Services:
    """The small city with a customer for every concurrent checkout."""
    seed_city(clean.database_url, seed=7, hours=None, **{**SMALL_CITY, "customers": CUSTOMERS})
    return clean


@pytest.fixture
def sku(crowd: Services) -> str:
    """A SKU of the store with enough units for every customer (set before Redis loads)."""
    with psycopg.connect(crowd.database_url) as conn:
        row = conn.execute(
            "SELECT sku_id FROM store_inventory WHERE store_id = %s ORDER BY sku_id LIMIT 1",
            (STORE,),
        ).fetchone()
    assert row is not None
    set_stock(crowd.database_url, STORE, row[0], STOCK)
    return str(row[0])


@pytest.fixture
def small_pool_server(
    crowd: Services, sku: str, settings: Settings, clock: Clock
) -> Iterator[LiveServer]:
    """The app under uvicorn with a database pool far smaller than the crowd, a provider
    that takes a while and declines some payments."""
    small = settings.model_copy(
        update={
            "db_pool_size": 4,
            "db_max_overflow": 2,
            "payment_latency_s": 0.05,
            "payment_failure_rate": 0.2,
        }
    )
    server = ThreadedServer(lambda: create_app(small, clock=clock))
    server.start()
    yield LiveServer(url=server.url, app=server.app, clock=clock)
    server.stop()


def _customer_headers(database_url: str, settings: Settings, clock: Clock) -> list[dict[str, str]]:
    """A bearer token for every seeded customer (no login: that is rate limited)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id, login, name, role, secret_hash FROM users WHERE role = 'customer' "
            "ORDER BY login"
        ).fetchall()
    headers = []
    for user_id, login, name, role, secret_hash in rows:
        user = User(id=user_id, login=login, name=name, role=role, secret_hash=secret_hash)
        token, _ = issue_token(user, key=settings.secret_key_value(), now=clock.now(), ttl_s=3600)
        headers.append({"Authorization": f"Bearer {token}"})
    return headers


async def _cart_with_one(client: httpx.AsyncClient, headers: dict[str, str], sku: str) -> str:
    cart = await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)
    assert cart.status_code == 201, cart.text
    cart_id = str(cart.json()["cart_id"])
    line = await client.put(
        f"/v1/carts/{cart_id}/lines/{sku}", json={"quantity": 1}, headers=headers
    )
    assert line.status_code == 200, line.text
    return cart_id


def _assert_problem_or_order(response: httpx.Response) -> None:
    assert response.status_code in ANSWERS, (response.status_code, response.text)
    body = response.json()
    if response.status_code == 201:
        assert body["order_id"] and body["status"] in {"PLACED", "CONFIRMED"}, body
    else:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert body["status"] == response.status_code and body["code"], body


async def _assert_every_charge_confirmed_or_refunded(
    database_url: str, provider: SimulatedProvider
) -> dict[str, int]:
    """Every order the provider charged is CONFIRMED with its payment recorded, or owes
    the whole amount back; an order never charged never shows a paid payment."""
    with psycopg.connect(database_url) as conn:
        orders = conn.execute(
            "SELECT o.order_id, o.status, p.status, p.amount_paise, "
            "  (SELECT coalesce(sum(r.amount_paise), 0) FROM refunds r "
            "   WHERE r.order_id = o.order_id) "
            "FROM orders o JOIN payments p ON p.order_id = o.order_id"
        ).fetchall()
    outcomes: dict[str, int] = {}
    for order_id, order_status, payment_status, amount, refunded in orders:
        charge = await provider.charge_status(idempotency_key=str(order_id))
        charged = charge is not None and charge.status == ChargeStatus.SUCCEEDED
        if charged:
            confirmed = order_status == "CONFIRMED" and payment_status == "SUCCEEDED"
            assert confirmed or refunded == amount, (order_id, order_status, payment_status)
            outcome = "confirmed" if confirmed else "refunded"
        else:
            assert payment_status != "SUCCEEDED" and order_status != "CONFIRMED", order_id
            outcome = "not charged"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


async def _assert_books_balance(database_url: str, redis_url: str, sku: str) -> None:
    """Conservation from the ledger: each bucket moved exactly as its ledger rows say, so
    available + reserved + damaged + in transit == what came in - what was committed out;
    and the Redis gate agrees with PostgreSQL (once the soft-hold journal is written)."""
    engine = db.create_engine(database_url, Settings())
    gate = qredis.create_redis(redis_url)
    try:
        await journal.drain(engine, gate, STORE)
    finally:
        await gate.aclose()
        await engine.dispose()
    now = pg_stock(database_url, STORE, sku)
    moved = ledger_sum(database_url, STORE, sku)
    assert tuple(n - m for n, m in zip(now, moved, strict=True)) == (STOCK, 0, 0, 0)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT coalesce(-sum(d_reserved), 0) FROM stock_ledger "
            "WHERE store_id = %s AND sku_id = %s AND movement = 'COMMIT'",
            (STORE, sku),
        ).fetchone()
        committed = int(row[0]) if row else 0
        confirmed = conn.execute(
            "SELECT coalesce(sum(i.quantity), 0) FROM order_items i JOIN orders o "
            "ON o.order_id = i.order_id WHERE o.status = 'CONFIRMED' AND i.sku_id = %s",
            (sku,),
        ).fetchone()
    assert sum(now) == STOCK - committed
    assert confirmed is not None and committed == int(confirmed[0])
    client = qredis.sync_client(redis_url)
    try:
        in_redis = client.hmget(
            keys.inventory(STORE, sku), "available", "reserved", "damaged", "in_transit"
        )
    finally:
        client.close()
    assert tuple(int(v or 0) for v in in_redis) == now


@pytest.mark.slow
async def test_more_concurrent_checkouts_than_pool_connections_never_give_a_500(
    crowd: Services, sku: str, small_pool_server: LiveServer, settings: Settings
) -> None:
    server = small_pool_server
    customers = _customer_headers(crowd.database_url, settings, server.clock)
    assert len(customers) == CUSTOMERS
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        carts = [await _cart_with_one(client, h, sku) for h in customers]
        started = time.monotonic()
        # the deadline: a stalled pool shows as a timeout here (or as 500s after 30 s);
        # unloaded, the crowd is served in a few seconds
        async with asyncio.timeout(DEADLINE_S):
            answers = await asyncio.gather(
                *(
                    client.post(
                        f"/v1/carts/{cart_id}/checkout",
                        json=ADDRESS,
                        headers={**h, "Idempotency-Key": uuid.uuid4().hex},
                    )
                    for h, cart_id in zip(customers, carts, strict=True)
                )
            )
        elapsed = time.monotonic() - started
    codes = sorted(a.status_code for a in answers)
    print(f"{CUSTOMERS} checkouts answered in {elapsed:.1f}s: {codes}")
    for answer in answers:
        _assert_problem_or_order(answer)
    assert codes.count(201) >= CUSTOMERS // 2, codes  # most of the crowd got its order
    provider = resources_of(server.app).payments.provider
    assert isinstance(provider, SimulatedProvider)
    outcomes = await _assert_every_charge_confirmed_or_refunded(crowd.database_url, provider)
    assert outcomes.get("confirmed", 0) == codes.count(201)
    await _assert_books_balance(crowd.database_url, crowd.redis_url, sku)


_FAIL_PAYMENT_UPDATES = """
CREATE FUNCTION qc_test_refuse_payment_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'recording the payment failed (test fault)'; END $$;
CREATE TRIGGER qc_test_refuse_payment_update BEFORE UPDATE ON payments
FOR EACH ROW EXECUTE FUNCTION qc_test_refuse_payment_update();
"""
_HEAL_PAYMENT_UPDATES = """
DROP TRIGGER qc_test_refuse_payment_update ON payments;
DROP FUNCTION qc_test_refuse_payment_update();
"""


async def _checkout_charged_but_unrecorded(
    client: httpx.AsyncClient, database_url: str, customer: dict[str, str], cart_id: str
) -> None:
    """A checkout the provider charges and PostgreSQL then refuses to record: 500."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_FAIL_PAYMENT_UPDATES)
    try:
        first = await client.post(
            f"/v1/carts/{cart_id}/checkout",
            json=ADDRESS,
            headers={**customer, "Idempotency-Key": "crash-1"},
        )
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(_HEAL_PAYMENT_UPDATES)
    assert first.status_code == 500, first.text


async def test_a_retry_resumes_a_charge_whose_outcome_could_not_be_recorded(
    crowd: Services, sku: str, live_server: LiveServer, settings: Settings
) -> None:
    """The provider charges, then PostgreSQL refuses to record it: the checkout answers
    500 once; a retry with the same key resumes the same order (not a second one, not 409
    forever): the provider answers the first charge again and the order is confirmed."""
    resources = resources_of(live_server.app)
    provider = resources.payments.provider
    assert isinstance(provider, SimulatedProvider)
    customer = _customer_headers(crowd.database_url, settings, live_server.clock)[0]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as client:
        cart_id = await _cart_with_one(client, customer, sku)
        await _checkout_charged_but_unrecorded(client, crowd.database_url, customer, cart_id)
        retry = await client.post(
            f"/v1/carts/{cart_id}/checkout",
            json=ADDRESS,
            headers={**customer, "Idempotency-Key": "crash-1"},
        )
        assert retry.status_code == 201, retry.text
        assert retry.json()["status"] == "CONFIRMED"
        replay = await client.post(
            f"/v1/carts/{cart_id}/checkout",
            json=ADDRESS,
            headers={**customer, "Idempotency-Key": "crash-1"},
        )
        assert replay.json() == retry.json()
    assert provider.charges == 1
    outcomes = await _assert_every_charge_confirmed_or_refunded(crowd.database_url, provider)
    assert outcomes == {"confirmed": 1}, outcomes
    await _assert_books_balance(crowd.database_url, crowd.redis_url, sku)


async def test_a_charge_whose_outcome_nobody_retries_is_settled_by_the_sweep(
    crowd: Services, sku: str, live_server: LiveServer, settings: Settings
) -> None:
    """The same crash with no retry: the payment-timeout sweep asks the provider and
    settles the order (its hold outlived by the window: the money goes back)."""
    from server.orders.unpaid import settle_unpaid

    resources = resources_of(live_server.app)
    customer = _customer_headers(crowd.database_url, settings, live_server.clock)[0]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as client:
        cart_id = await _cart_with_one(client, customer, sku)
        await _checkout_charged_but_unrecorded(client, crowd.database_url, customer, cart_id)
        # the sweep as the background loop runs it, on this test's own connections
        resources.clock.advance(settings.payment_window_s + 1)
        engine = db.create_engine(crowd.database_url, settings)
        gate = qredis.create_redis(crowd.redis_url)
        try:
            swept = await settle_unpaid(
                db.session_maker(engine),
                gate,
                gateway=resources.payments,
                now=resources.clock.now(),
                window_s=settings.payment_window_s,
            )
        finally:
            await gate.aclose()
            await engine.dispose()
        assert swept == 1
        orders = (await client.get("/v1/orders", headers=customer)).json()
    assert [o["status"] for o in orders["items"]] in (["CONFIRMED"], ["CANCELLED"]), orders
    provider = resources.payments.provider
    assert isinstance(provider, SimulatedProvider)
    outcomes = await _assert_every_charge_confirmed_or_refunded(crowd.database_url, provider)
    assert sum(outcomes.values()) == 1 and "not charged" not in outcomes, outcomes
    await _assert_books_balance(crowd.database_url, crowd.redis_url, sku)


async def test_money_arriving_after_the_checkout_gave_up_on_the_provider_goes_back(
    crowd: Services, sku: str, app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """The provider charges but its answer is lost: the checkout gives up (402, order
    cancelled, stock back); the webhook then reports the money, which is owed back."""
    resources = resources_of(app)
    provider = resources.payments.provider
    assert isinstance(provider, SimulatedProvider)
    provider.timeout_rate = 1.0
    resources.payments.timeout_s = 0.2
    customer = _customer_headers(crowd.database_url, settings, resources.clock)[0]
    cart_id = await _cart_with_one(client, customer, sku)
    gave_up = await client.post(
        f"/v1/carts/{cart_id}/checkout", json=ADDRESS, headers={**customer, "Idempotency-Key": "t"}
    )
    assert gave_up.status_code == 402, gave_up.text
    with psycopg.connect(crowd.database_url) as conn:
        row = conn.execute("SELECT payment_id, status FROM payments").fetchone()
    assert row is not None and row[1] == "FAILED"
    late = provider.webhook_event(str(row[0]), now_ts=resources.clock.now().timestamp())
    hook = await client.post("/v1/payments/webhook", content=late.body, headers=late.headers)
    assert hook.status_code == 200, hook.text
    outcomes = await _assert_every_charge_confirmed_or_refunded(crowd.database_url, provider)
    assert outcomes == {"refunded": 1}
    await _assert_books_balance(crowd.database_url, crowd.redis_url, sku)
