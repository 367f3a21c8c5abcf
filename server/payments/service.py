"""Builds the payment gateway the app uses: provider, shared breaker, bulkhead."""

from __future__ import annotations

import redis.asyncio as aioredis

from server.kit.config import Settings, webhook_secret_value
from server.payments.breaker import BreakerConfig, CircuitBreaker
from server.payments.gateway import PaymentGateway
from server.payments.provider import SimulatedProvider


def payment_gateway(settings: Settings, redis: aioredis.Redis) -> PaymentGateway:
    provider = SimulatedProvider(
        latency_s=settings.payment_latency_s,
        failure_rate=settings.payment_failure_rate,
        seed=settings.payment_seed,
        webhook_secret=webhook_secret_value(settings),
    )
    breaker = CircuitBreaker(
        redis, "payments", BreakerConfig(trial_timeout_s=max(15.0, settings.payment_timeout_s))
    )
    return PaymentGateway(
        provider,
        breaker,
        bulkhead_limit=settings.payment_bulkhead,
        timeout_s=settings.payment_timeout_s,
    )
