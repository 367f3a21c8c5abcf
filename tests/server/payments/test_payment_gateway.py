"""The payment gateway: timeout, breaker and bulkhead around a provider, on a real Redis."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI, Request

from server.kit.clock import Clock
from server.kit.resources import resources_of
from server.payments.breaker import BreakerConfig, CircuitBreaker, CircuitOpen
from server.payments.gateway import BulkheadFull, PaymentGateway
from server.payments.provider import (
    WEBHOOK_SIGNATURE_HEADER,
    ChargeResult,
    ChargeStatus,
    SimulatedProvider,
    WebhookEvent,
    verify_webhook,
)

T0 = 1_750_000_000.0
SECRET = "whsec_test_0123456789"
CONFIG = BreakerConfig(window_calls=10, window_s=10, min_calls=4, open_s=30, trial_timeout_s=5)


def gateway(
    redis: aioredis.Redis, provider: object, *, limit: int = 4, timeout_s: float = 0.05
) -> PaymentGateway:
    return PaymentGateway(
        provider,  # type: ignore[arg-type]
        CircuitBreaker(redis, "payments", CONFIG),
        bulkhead_limit=limit,
        timeout_s=timeout_s,
    )


async def pay(gw: PaymentGateway, key: str, now: float = T0) -> ChargeResult:
    return await gw.charge(
        payment_id=f"pay-{key}",
        order_id=f"ord-{key}",
        amount_paise=45_000,
        currency="INR",
        idempotency_key=key,
        now=now,
    )


class GatedProvider:
    """Answers only when the test opens the gate, and tells when a call has arrived."""

    def __init__(self, expected: int) -> None:
        self.gate = asyncio.Event()
        self.all_in = asyncio.Event()
        self.expected = expected
        self.calls = 0

    async def charge(self, **_: object) -> ChargeResult:
        self.calls += 1
        if self.calls == self.expected:
            self.all_in.set()
        await self.gate.wait()
        return ChargeResult(ChargeStatus.SUCCEEDED, "gated")


async def test_success_passes_through(redis):
    provider = SimulatedProvider(latency_s=0.001, seed=1, webhook_secret=SECRET)
    gw = gateway(redis, provider)
    result = await pay(gw, "a")
    assert result.status == ChargeStatus.SUCCEEDED and result.provider_ref
    snap = await gw.breaker.snapshot(T0)
    assert (snap.calls, snap.failures) == (1, 0)


async def test_timeout_is_a_counted_failure(redis):
    provider = SimulatedProvider(seed=1, webhook_secret=SECRET)
    provider.outage = "hang"
    gw = gateway(redis, provider)
    result = await pay(gw, "a")
    assert result == ChargeResult(ChargeStatus.FAILED, None, "timeout")
    snap = await gw.breaker.snapshot(T0)
    assert (snap.calls, snap.failures) == (1, 1)


async def test_provider_error_is_a_counted_failure(redis):
    provider = SimulatedProvider(error_rate=1.0, seed=1, webhook_secret=SECRET)
    gw = gateway(redis, provider)
    assert await pay(gw, "a") == ChargeResult(ChargeStatus.FAILED, None, "provider_error")
    assert (await gw.breaker.snapshot(T0)).failures == 1


async def test_decline_is_not_an_outage(redis):
    provider = SimulatedProvider(failure_rate=1.0, seed=1, webhook_secret=SECRET)
    gw = gateway(redis, provider)
    for i in range(CONFIG.min_calls + 2):
        result = await pay(gw, f"k{i}")
        assert result.status == ChargeStatus.FAILED and result.failure_reason != "timeout"
    snap = await gw.breaker.snapshot(T0)
    assert (snap.state, snap.failures) == ("closed", 0)


async def test_outage_opens_then_recovers(redis):
    provider = SimulatedProvider(seed=1, webhook_secret=SECRET)
    provider.outage = "error"
    gw = gateway(redis, provider)
    for i in range(CONFIG.min_calls):
        assert (await pay(gw, f"k{i}", T0 + i)).failure_reason == "provider_error"
    calls = provider.calls

    started = time.monotonic()
    with pytest.raises(CircuitOpen) as caught:
        await pay(gw, "fast", T0 + 5)
    assert time.monotonic() - started < 0.5
    assert provider.calls == calls  # the provider was not called
    assert caught.value.headers["Retry-After"] == "28"  # opened at T0 + 3

    provider.outage = None
    assert (await pay(gw, "trial", T0 + 33)).status == ChargeStatus.SUCCEEDED
    assert (await gw.breaker.snapshot(T0 + 33)).state == "closed"
    assert (await pay(gw, "after", T0 + 34)).status == ChargeStatus.SUCCEEDED


async def test_saturated_bulkhead_fails_fast(redis):
    provider = GatedProvider(expected=2)
    gw = gateway(redis, provider, limit=2, timeout_s=5)
    in_flight = [asyncio.create_task(pay(gw, f"k{i}")) for i in range(2)]
    await provider.all_in.wait()

    started = time.monotonic()
    with pytest.raises(BulkheadFull) as caught:
        await pay(gw, "third")
    assert time.monotonic() - started < 0.5
    err = caught.value
    assert (err.status, err.code, err.headers) == (503, "payment_unavailable", {"Retry-After": "1"})
    assert provider.calls == 2

    provider.gate.set()
    assert all(r.status == ChargeStatus.SUCCEEDED for r in await asyncio.gather(*in_flight))
    # the slots came back
    assert (await pay(gw, "fourth")).status == ChargeStatus.SUCCEEDED


async def test_timed_out_calls_give_their_slot_back(redis):
    provider = SimulatedProvider(seed=1, webhook_secret=SECRET)
    provider.outage = "hang"
    gw = gateway(redis, provider, limit=1, timeout_s=0.02)
    for i in range(3):
        assert (await pay(gw, f"k{i}", T0 + i)).failure_reason == "timeout"
    provider.outage = None
    assert (await pay(gw, "ok", T0 + 3)).status == ChargeStatus.SUCCEEDED


def test_trial_must_outlast_the_timeout(redis):
    with pytest.raises(ValueError):
        gateway(redis, SimulatedProvider(webhook_secret=SECRET), timeout_s=10)


async def test_http_answers(redis, app: FastAPI, client: httpx.AsyncClient, clock: Clock):
    """Through the real app: a webhook POSTed to a route that verifies it, a 503 problem."""
    provider = SimulatedProvider(pending_rate=1.0, seed=9, webhook_secret=SECRET)
    gw = gateway(redis, provider)
    received: list[WebhookEvent] = []

    @app.post("/test-payments/pay/{key}")
    async def charge(key: str, now: float) -> dict[str, str]:
        return {"status": (await pay(gw, key, now)).status}

    @app.post("/test-payments/webhook")
    async def webhook(request: Request) -> dict[str, bool]:
        body = await request.body()
        header = request.headers.get(WEBHOOK_SIGNATURE_HEADER)
        verify_webhook(body, header, SECRET, now_ts=resources_of(request.app).clock.timestamp())
        received.append(WebhookEvent.from_json(body))
        return {"ok": True}

    answer = await client.post("/test-payments/pay/a", params={"now": T0})
    assert answer.json() == {"status": "PENDING"}

    delivery = provider.webhook_event("pay-a", now_ts=clock.timestamp())
    ok = await client.post(
        "/test-payments/webhook", content=delivery.body, headers=delivery.headers
    )
    assert ok.status_code == 200
    assert received[0].status == ChargeStatus.SUCCEEDED

    forged = await client.post(
        "/test-payments/webhook",
        content=delivery.body.replace(b"SUCCEEDED", b"FAILED"),
        headers=delivery.headers,
    )
    assert forged.status_code == 400
    assert forged.json()["code"] == "webhook_bad_signature"

    provider.outage = "error"
    for i in range(CONFIG.min_calls):
        await pay(gw, f"down{i}", T0 + 30)
    refused = await client.post("/test-payments/pay/b", params={"now": T0 + 40})
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "20"
    assert refused.json()["code"] == "payment_unavailable"
