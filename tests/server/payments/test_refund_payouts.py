"""Refunds are paid out: the executor, retries under one idempotency key, the webhook."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

from server.kit.resources import resources_of
from server.payments.gateway import PaymentGateway
from server.payments.refunds import pay_refunds
from server.seed.generate import DEMO_SECRETS
from shared.enums import Role
from tests.helpers import login, simulated_provider
from tests.server.orders.test_journey import _cart_with, _checkout, _in_stock


async def _cancelled_paid_order(city, client) -> tuple[dict, dict[str, str]]:
    customer = await login(client, "customer.001", DEMO_SECRETS[Role.CUSTOMER])
    sku = _in_stock(city.database_url, 1)[0]
    order = (await _checkout(client, customer, await _cart_with(client, customer, {sku: 2}))).json()
    assert order["status"] == "CONFIRMED"
    r = await client.post(f"/v1/orders/{order['order_id']}/cancel", json={}, headers=customer)
    assert r.status_code == 200
    return order, customer


def app_now(app):
    return resources_of(app).clock.now()


async def _view(client, customer, order) -> dict:
    return (await client.get(f"/v1/orders/{order['order_id']}", headers=customer)).json()


def _refund_row(url: str, order_id: str) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT status, attempts, next_attempt_at, provider_ref FROM refunds "
            "WHERE order_id = %s",
            (order_id,),
        ).fetchone()
    assert row is not None, f"no refund for order {order_id}"
    return row


async def test_a_cancelled_paid_orders_refund_is_paid_out_and_shown(city, app, client) -> None:
    order, customer = await _cancelled_paid_order(city, client)
    (pending,) = (await _view(client, customer, order))["refunds"]
    assert (pending["status"], pending["amount_paise"]) == ("PENDING", order["total_amount_paise"])

    resources = resources_of(app)
    provider = simulated_provider(app)
    assert await pay_refunds(resources.sessions, gateway=resources.payments, now=app_now(app)) == 1
    (paid,) = (await _view(client, customer, order))["refunds"]
    assert paid["status"] == "SUCCEEDED" and paid["refund_id"] == pending["refund_id"]
    assert (provider.refunds, provider.refunded_paise) == (1, order["total_amount_paise"])
    # nothing left to pay: another run sends nothing
    calls = provider.calls
    assert await pay_refunds(resources.sessions, gateway=resources.payments, now=app_now(app)) == 0
    assert provider.calls == calls


async def test_a_failure_then_a_lost_answer_then_success_pays_once(city, app, client) -> None:
    order, customer = await _cancelled_paid_order(city, client)
    resources = resources_of(app)
    provider = simulated_provider(app)
    # a short timeout so the lost answer costs a tenth of a second
    gateway = PaymentGateway(provider, resources.payments.breaker, bulkhead_limit=4, timeout_s=0.1)
    now = app_now(app)

    provider.error_rate = 1.0  # the provider fails: nothing is paid, the refund waits
    assert await pay_refunds(resources.sessions, gateway=gateway, now=now) == 0
    status, attempts, next_at, _ = _refund_row(city.database_url, order["order_id"])
    assert (status, attempts, provider.refunds) == ("PENDING", 1, 0)
    assert next_at > now
    calls = provider.calls
    await pay_refunds(resources.sessions, gateway=gateway, now=now)  # not due yet
    assert provider.calls == calls

    provider.error_rate, provider.timeout_rate = 0.0, 1.0  # paid, but the answer is lost
    now = next_at + timedelta(seconds=1)
    assert await pay_refunds(resources.sessions, gateway=gateway, now=now) == 0
    status, attempts, next_at, _ = _refund_row(city.database_url, order["order_id"])
    assert (status, attempts, provider.refunds) == ("PENDING", 2, 1)

    provider.timeout_rate = 0.0  # the retry under the same key is told, not paid again
    assert await pay_refunds(resources.sessions, gateway=gateway, now=next_at) == 1
    assert _refund_row(city.database_url, order["order_id"])[0] == "SUCCEEDED"
    assert (provider.refunds, provider.refunded_paise) == (1, order["total_amount_paise"])
    assert (await _view(client, customer, order))["refunds"][0]["status"] == "SUCCEEDED"


async def test_the_refund_webhook_settles_once_and_a_replay_changes_nothing(
    city, app, client
) -> None:
    order, customer = await _cancelled_paid_order(city, client)
    resources = resources_of(app)
    provider = simulated_provider(app)
    gateway = PaymentGateway(provider, resources.payments.breaker, bulkhead_limit=4, timeout_s=0.1)
    provider.timeout_rate = 1.0  # paid; only the webhook tells
    await pay_refunds(resources.sessions, gateway=gateway, now=app_now(app))
    provider.timeout_rate = 0.0
    status, attempts, _, _ = _refund_row(city.database_url, order["order_id"])
    assert (status, attempts) == ("PENDING", 1)
    refund_id = (await _view(client, customer, order))["refunds"][0]["refund_id"]

    delivery = provider.refund_webhook_event(refund_id, now_ts=app_now(app).timestamp())
    first = await client.post(
        "/v1/payments/webhook", content=delivery.body, headers=delivery.headers
    )
    assert first.status_code == 200 and first.json()["status"] == "applied"
    settled = _refund_row(city.database_url, order["order_id"])
    assert settled[0] == "SUCCEEDED" and settled[3]

    replay = await client.post(
        "/v1/payments/webhook", content=delivery.body, headers=delivery.headers
    )
    assert replay.status_code == 200 and replay.json()["status"] == "unchanged"
    assert _refund_row(city.database_url, order["order_id"]) == settled
    # the executor has nothing left to send
    calls = provider.calls
    assert await pay_refunds(resources.sessions, gateway=gateway, now=app_now(app)) == 0
    assert provider.calls == calls and provider.refunds == 1
