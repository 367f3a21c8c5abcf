"""The simulated provider (idempotency, outcomes) and webhook signatures."""

from __future__ import annotations

import asyncio
from typing import TypedDict

import pytest

from server.payments.provider import (
    DECLINE_REASONS,
    WEBHOOK_SIGNATURE_HEADER,
    ChargeResult,
    ChargeStatus,
    IdempotencyKeyReused,
    ProviderError,
    ProviderUnavailable,
    SimulatedProvider,
    WebhookEvent,
    WebhookRejected,
    sign_webhook,
    verify_webhook,
)

SECRET = "whsec_test_0123456789"
NOW = 1_750_000_000.0


class ChargeArgs(TypedDict):
    payment_id: str
    order_id: str
    amount_paise: int
    currency: str
    idempotency_key: str


def charge_args(key: str = "k1", amount: int = 12_300) -> ChargeArgs:
    return {
        "payment_id": f"pay-{key}",
        "order_id": f"ord-{key}",
        "amount_paise": amount,
        "currency": "INR",
        "idempotency_key": key,
    }


async def test_same_key_same_result_one_charge():
    provider = SimulatedProvider(
        latency_s=(0.0, 0.002), failure_rate=0.5, seed=3, webhook_secret=SECRET
    )
    first = await provider.charge(**charge_args())
    again = await asyncio.gather(*(provider.charge(**charge_args()) for _ in range(10)))
    assert all(r == first for r in again)
    assert (provider.calls, provider.charges) == (11, 1)

    other = await provider.charge(**charge_args("k2"))
    assert other.provider_ref != first.provider_ref
    assert provider.charges == 2


async def test_key_reused_for_another_charge_is_refused():
    provider = SimulatedProvider(seed=1, webhook_secret=SECRET)
    await provider.charge(**charge_args())
    with pytest.raises(IdempotencyKeyReused):
        await provider.charge(**charge_args(amount=99))
    assert provider.charges == 1


async def test_seeded_outcomes_repeat():
    async def run() -> list[ChargeResult]:
        provider = SimulatedProvider(
            failure_rate=0.4, pending_rate=0.2, seed=42, webhook_secret=SECRET
        )
        return [await provider.charge(**charge_args(f"k{i}")) for i in range(30)]

    first, second = await run(), await run()
    assert first == second
    assert {r.status for r in first} == set(ChargeStatus)


async def test_declines_carry_a_reason():
    provider = SimulatedProvider(failure_rate=1.0, seed=1, webhook_secret=SECRET)
    result = await provider.charge(**charge_args())
    assert result.status == ChargeStatus.FAILED
    assert result.failure_reason in DECLINE_REASONS
    assert result.provider_ref


async def test_errors_and_outages_make_no_charge():
    provider = SimulatedProvider(error_rate=1.0, seed=1, webhook_secret=SECRET)
    with pytest.raises(ProviderError):
        await provider.charge(**charge_args())
    provider.error_rate = 0.0
    provider.outage = "error"
    with pytest.raises(ProviderUnavailable):
        await provider.charge(**charge_args())
    assert provider.charges == 0

    provider.outage = None
    assert (await provider.charge(**charge_args())).status == ChargeStatus.SUCCEEDED


async def test_lost_answer_charges_once_and_the_retry_tells():
    provider = SimulatedProvider(timeout_rate=1.0, seed=1, webhook_secret=SECRET)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await provider.charge(**charge_args())
    assert provider.charges == 1
    assert (await provider.charge(**charge_args())).status == ChargeStatus.SUCCEEDED
    assert provider.charges == 1


async def test_pending_charge_settles_by_signed_webhook():
    provider = SimulatedProvider(pending_rate=1.0, seed=5, webhook_secret=SECRET)
    result = await provider.charge(**charge_args())
    assert result.status == ChargeStatus.PENDING

    delivery = provider.webhook_event("pay-k1", now_ts=NOW)
    header = delivery.headers[WEBHOOK_SIGNATURE_HEADER]
    verify_webhook(delivery.body, header, SECRET, now_ts=NOW + 3)
    event = WebhookEvent.from_json(delivery.body)
    assert (event.payment_id, event.order_id, event.amount_paise) == ("pay-k1", "ord-k1", 12_300)
    assert (event.status, event.provider_ref) == (ChargeStatus.SUCCEEDED, result.provider_ref)
    assert event.created == int(NOW)


def test_signature_round_trip_and_rotation():
    body = b'{"payment_id":"p1","status":"SUCCEEDED"}'
    header = sign_webhook(body, SECRET, NOW)
    assert header.startswith(f"t={int(NOW)},v1=")
    verify_webhook(body, header, SECRET, now_ts=NOW)
    # during a secret rotation the sender signs with both secrets
    rotated = header + "," + sign_webhook(body, "whsec_new", NOW).split(",")[1]
    verify_webhook(body, rotated, "whsec_new", now_ts=NOW)


@pytest.mark.parametrize(
    ("body", "secret", "now_ts", "code"),
    [
        (b'{"payment_id":"p1","status":"FAILED"}', SECRET, NOW, "webhook_bad_signature"),
        (b'{"payment_id":"p1","status":"SUCCEEDED"}', "whsec_wrong", NOW, "webhook_bad_signature"),
        (b'{"payment_id":"p1","status":"SUCCEEDED"}', SECRET, NOW + 301, "webhook_stale"),
        (b'{"payment_id":"p1","status":"SUCCEEDED"}', SECRET, NOW - 301, "webhook_stale"),
    ],
    ids=["tampered", "wrong-secret", "stale", "from-the-future"],
)
def test_bad_webhooks_are_rejected(body: bytes, secret: str, now_ts: float, code: str):
    header = sign_webhook(b'{"payment_id":"p1","status":"SUCCEEDED"}', SECRET, NOW)
    with pytest.raises(WebhookRejected) as caught:
        verify_webhook(body, header, secret, now_ts=now_ts)
    assert (caught.value.code, caught.value.status) == (code, 400)


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=123", "t=abc,v1=00", "garbage"])
def test_malformed_signature_headers(header: str | None):
    with pytest.raises(WebhookRejected) as caught:
        verify_webhook(b"{}", header, SECRET, now_ts=NOW)
    assert caught.value.code == "webhook_malformed"


def test_malformed_event_body():
    with pytest.raises(WebhookRejected) as caught:
        WebhookEvent.from_json(b'{"payment_id": "p1"}')
    assert caught.value.code == "webhook_malformed"
