"""A checkout that outlives ``ABANDONED_AFTER`` (a starved process, a slow provider) is
taken over by its client's retry, which resumes its order; the first attempt, still
running, must then undo nothing when the provider refuses it (breaker, bulkhead): the
order is the retry's, perhaps paid by now, and the key's answer names it.

Real PostgreSQL and Valkey, the flow as the route runs it (``run_once`` and the cart's
checkout), two gateways as two replicas would have: the first attempt's waits for its
provider slot (held by the test) and is then refused by its breaker (another caller's
trial in flight), the retry's charges."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlmodel import select

from server.idempotency.service import ABANDONED_AFTER, Claim, run_once
from server.identity.models import User
from server.kit.config import webhook_secret_value
from server.kit.errors import InProgress
from server.kit.resources import resources_of
from server.orders import cart_checkout
from server.orders.flows import CheckoutOutcome, CheckoutPlaced, PaymentDeclined
from server.payments.breaker import BreakerConfig, CircuitBreaker
from server.payments.gateway import PaymentGateway
from server.payments.provider import SimulatedProvider
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from shared.schemas.orders import CheckoutRequest
from tests.helpers import login, stocked_skus

STORE = "BLR-KOR"
ADDRESS = {"address": {"line1": "4th Cross, 5th Block", "lat": 12.9352, "lng": 77.6245}}
CUSTOMER = "customer.001"


def _render(outcome: CheckoutOutcome) -> tuple[int, dict[str, Any]]:
    if isinstance(outcome, CheckoutPlaced):
        return 201, {"order_id": str(outcome.order.order_id)}
    assert isinstance(outcome, PaymentDeclined)
    return 402, {"order_id": str(outcome.order_id)}


async def _refused_at_the_charge(redis: Any, ts: float) -> CircuitBreaker:
    """A breaker that lets a checkout place its order (half-open: its early check passes)
    and refuses its charge (another caller's trial is in flight)."""
    config = BreakerConfig()
    breaker = CircuitBreaker(redis, f"takeover-{uuid.uuid4().hex}", config)
    opened_at = ts - config.open_s - 10
    for i in range(config.min_calls):
        permit = await breaker.before_call(opened_at + i * 0.01)
        await breaker.record(False, opened_at + i * 0.01, permit=permit)
    assert (await breaker.before_call(ts - 1)).trial  # never answered
    return breaker


async def _until(condition: Any) -> None:
    """Poll ``condition`` (what another task committed) for up to 60 s."""
    deadline = asyncio.get_running_loop().time() + 60
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not reached in 60 s"
        await asyncio.sleep(0.02)


def _orders(database_url: str) -> list[tuple[str, str, str | None]]:
    """Every order: (id, status, its payment's status)."""
    with psycopg.connect(database_url) as conn:
        return [
            (str(oid), status, payment)
            for oid, status, payment in conn.execute(
                "SELECT o.order_id, o.status, p.status FROM orders o LEFT JOIN payments p "
                "ON p.store_id = o.store_id AND p.order_id = o.order_id ORDER BY o.order_id"
            ).fetchall()
        ]


@pytest.mark.parametrize("retry_done_first", [True, False], ids=["retry-paid", "retry-charging"])
async def test_a_checkout_taken_over_by_its_retry_undoes_nothing_the_retry_resumed(
    city, app, client, clock, retry_done_first: bool
) -> None:
    resources = resources_of(app)
    sessions, redis, settings = resources.sessions, resources.redis, resources.settings
    headers = await login(client, CUSTOMER, DEMO_SECRETS[Role.CUSTOMER])
    [sku] = stocked_skus(city.database_url, STORE, 1, at_least=5)
    cart = (await client.post("/v1/carts", json={"store_id": STORE}, headers=headers)).json()
    cart_id = uuid.UUID(cart["cart_id"])
    line = await client.put(
        f"/v1/carts/{cart_id}/lines/{sku}", json={"quantity": 1}, headers=headers
    )
    assert line.status_code == 200, line.text
    async with sessions() as session:
        user = (await session.exec(select(User).where(User.login == CUSTOMER))).one()
    body = CheckoutRequest.model_validate(ADDRESS)
    key, fingerprint = uuid.uuid4().hex, "c" * 64
    secret = webhook_secret_value(settings)

    t0 = clock.now()

    def attempt(gateway: PaymentGateway, after: timedelta) -> Any:
        """One request of the checkout (its ``run_once``), ``after`` the first began."""
        now = t0 + after
        claim = Claim(user.id, key, fingerprint, now, _render)
        return run_once(
            sessions,
            claim,
            lambda order_id, claim: cart_checkout.checkout(
                sessions,
                redis,
                gateway=gateway,
                settings=settings,
                user=user,
                cart_id=cart_id,
                body=body,
                order_id=order_id,
                now=now,
                claim=claim,
            ),
        )

    # the first attempt: places its order, then waits for its provider slot (each
    # gateway's only one, held here), where its breaker refuses it once let go
    stalled = PaymentGateway(
        SimulatedProvider(webhook_secret=secret),
        await _refused_at_the_charge(redis, t0.timestamp()),
        bulkhead_limit=1,
        timeout_s=5,
        bulkhead_wait_s=600,
    )
    await stalled._slots.acquire()
    first = asyncio.create_task(attempt(stalled, timedelta(0)))
    await _until(lambda: len(_orders(city.database_url)) == 1)
    [(order_id, _, _)] = _orders(city.database_url)
    taken = _claim_version(city.database_url, key)
    # its client gave up; the retry comes past ABANDONED_AFTER, to another replica
    paying = PaymentGateway(
        SimulatedProvider(webhook_secret=secret),
        CircuitBreaker(redis, f"takeover-{uuid.uuid4().hex}"),
        bulkhead_limit=1,
        timeout_s=5,
        bulkhead_wait_s=600,
    )
    late = ABANDONED_AFTER + timedelta(seconds=1)
    refused: BaseException | Any
    if retry_done_first:  # the retry resumed the order and it is paid
        retry = await attempt(paying, late)
        stalled._slots.release()
        [refused] = await asyncio.gather(first, return_exceptions=True)
    else:  # the retry has taken the claim over and waits to charge
        await paying._slots.acquire()
        retrying = asyncio.create_task(attempt(paying, late))
        await _until(lambda: _claim_version(city.database_url, key) != taken)
        stalled._slots.release()
        [refused] = await asyncio.gather(first, return_exceptions=True)
        paying._slots.release()
        retry = await retrying
    assert retry.status_code == 201, retry.body
    assert json.loads(retry.body) == {"order_id": order_id}
    # the order the retry resumed stands, paid once, and the key's answer names it
    assert _orders(city.database_url) == [(order_id, "CONFIRMED", "SUCCEEDED")]
    again = await attempt(paying, late + timedelta(seconds=1))
    assert again.headers["idempotent-replayed"] == "true" and again.body == retry.body
    assert len(_orders(city.database_url)) == 1  # no second order, so no second charge
    # the first attempt's client (if it still listens) is told to ask again
    assert isinstance(refused, InProgress), refused


def _claim_version(database_url: str, key: str) -> str:
    """The key's row version (a takeover's committed write makes a new one)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT xmin::text FROM idempotency_keys WHERE key = %s", (key,)
        ).fetchone()
    assert row is not None
    return str(row[0])
