"""A checkout's early breaker check (``open_until``) on a closed breaker hands its call the
permit it read, so the charge runs no breaker script before calling the provider; only
that task's call at the same ``now``, once, and never an open or half-open breaker's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.payments import breaker as breakers
from server.payments.breaker import BreakerConfig, CircuitBreaker, CircuitOpen, Permit
from server.payments.gateway import PaymentGateway
from server.payments.provider import ChargeResult, ChargeStatus

T0 = 1_750_000_000.0
CONFIG = BreakerConfig(window_calls=10, window_s=10, min_calls=4, open_s=30, trial_timeout_s=5)


class Paid:
    calls = 0

    async def charge(self, **_: object) -> ChargeResult:
        self.calls += 1
        return ChargeResult(ChargeStatus.SUCCEEDED, "ok")


class Counted(CircuitBreaker):
    """A breaker that counts its ``before_call`` scripts."""

    befores = 0

    async def before_call(self, now: float) -> Permit:
        self.befores += 1
        return await super().before_call(now)


def _gateway(redis: aioredis.Redis) -> tuple[PaymentGateway, Counted, Paid]:
    breaker, provider = Counted(redis, "payments", CONFIG), Paid()
    gateway = PaymentGateway(
        provider,  # type: ignore[arg-type]
        breaker,
        bulkhead_limit=4,
        timeout_s=0.5,
    )
    return gateway, breaker, provider


async def _pay(gateway: PaymentGateway, now: float = T0) -> ChargeResult:
    return await gateway.charge(
        payment_id="pay",
        order_id="ord",
        amount_paise=100,
        currency="INR",
        idempotency_key="key",
        now=now,
    )


async def _checkout(gateway: PaymentGateway, *, now: float = T0, charge_at: float = T0) -> Any:
    """As the checkout flow does it, in one task: the early check, then the charge."""

    async def flow() -> Any:
        if await gateway.breaker.open_until(now) is not None:
            return "refused early"
        return await _pay(gateway, charge_at)

    return await asyncio.create_task(flow())


async def test_a_closed_breakers_early_check_admits_the_call_without_another_script(redis):
    gateway, breaker, provider = _gateway(redis)
    result = await _checkout(gateway)
    assert result.status == ChargeStatus.SUCCEEDED and provider.calls == 1
    assert breaker.befores == 0
    assert (await breaker.snapshot(T0)).calls == 1  # the outcome counted under its generation
    # another moment's call, or a call with no early check, asks the script as before
    await _checkout(gateway, charge_at=T0 + 1)
    await _pay(gateway)
    assert breaker.befores == 2
    assert (await breaker.snapshot(T0 + 1)).calls == 3


async def test_the_permit_serves_one_call_only_and_not_an_old_one(redis, monkeypatch):
    gateway, breaker, _ = _gateway(redis)

    async def twice() -> None:
        assert await breaker.open_until(T0) is None
        await _pay(gateway)
        await _pay(gateway)

    await asyncio.create_task(twice())
    assert breaker.befores == 1
    monkeypatch.setattr(breakers, "ADMITTED_FOR_S", 0.0)
    await _checkout(gateway)
    assert breaker.befores == 2


async def test_an_open_or_half_open_breaker_admits_nothing_early(redis):
    gateway, breaker, provider = _gateway(redis)
    for _ in range(CONFIG.min_calls):
        permit = await breaker.before_call(T0)
        await breaker.record(False, T0, permit=permit)
    assert await _checkout(gateway) == "refused early"
    with pytest.raises(CircuitOpen):
        await _pay(gateway)  # nothing was admitted early: the call asks and is refused
    befores = breaker.befores
    # half-open: the early check lets the checkout on, the call takes the one trial itself
    later = T0 + CONFIG.open_s
    assert (await _checkout(gateway, now=later, charge_at=later)).status == ChargeStatus.SUCCEEDED
    assert breaker.befores == befores + 1 and provider.calls == 1
    assert (await breaker.snapshot(later)).state == "closed"
