"""The steps every checkout shares (a cart's, a flash sale's): the checks made before
anything is reserved, the charge, and the answer when the payment failed."""

from __future__ import annotations

import uuid
from datetime import datetime

import redis.asyncio as aioredis
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit.errors import Conflict
from server.payments.breaker import CircuitOpen
from server.payments.gateway import PaymentGateway
from server.payments.provider import ChargeResult
from server.stores.selection import select_stores
from shared.geo import LatLng


async def require_checkout_possible(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    gateway: PaymentGateway,
    store_id: str,
    point: LatLng,
    now: datetime,
) -> None:
    """The store delivers to the address right now, and the payment breaker is not open
    (an open breaker answers now, before anything is reserved or written)."""
    serving = await select_stores(session, redis, point=point, now=now, use_cache=False)
    if store_id not in {c.store_id for c in serving}:
        raise Conflict(
            f"{store_id} does not deliver to this address right now", code="not_serviceable"
        )
    breaker = await gateway.breaker.snapshot(now.timestamp())
    if breaker.state == "open" and breaker.open_until is not None:
        raise CircuitOpen(breaker.open_until - now.timestamp())


async def charge_order(
    gateway: PaymentGateway,
    *,
    payment_id: uuid.UUID,
    order_id: uuid.UUID,
    amount_paise: int,
    now: datetime,
) -> ChargeResult:
    """One charge per order: the order id is the provider's idempotency key."""
    return await gateway.charge(
        payment_id=str(payment_id),
        order_id=str(order_id),
        amount_paise=amount_paise,
        currency="INR",
        idempotency_key=str(order_id),
        now=now.timestamp(),
    )


def payment_failed(
    order_id: uuid.UUID, result: ChargeResult, *, what_happened: str
) -> tuple[int, dict]:
    """The 402 answer of a checkout whose payment failed (the order is cancelled)."""
    failed = Conflict(
        f"the payment failed ({result.failure_reason or 'declined'}); nothing was charged "
        f"and {what_happened}",
        code="payment_failed",
        status=402,
        order_id=str(order_id),
    )
    failed.title = "Payment failed"
    return 402, failed.problem()
