"""The payment provider's webhook: signed final outcomes of charges and refunds."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit.clock import Clock
from server.kit.config import webhook_secret_value
from server.kit.deps import ClockDep, RedisDep, SessionDep, SettingsDep
from server.kit.openapi import problem_responses
from server.orders.flows import apply_payment
from server.orders.models import Order
from server.payments.models import Payment
from server.payments.provider import (
    REFUND_EVENT,
    WEBHOOK_SIGNATURE_HEADER,
    ChargeResult,
    WebhookEvent,
    verify_webhook,
)
from server.payments.refunds import apply_refund, find_refund

router = APIRouter(prefix="/v1/payments", tags=["payments"])


@router.post(
    "/webhook", summary="Payment provider callback (HMAC-signed)", responses=problem_responses(400)
)
async def webhook(
    request: Request, session: SessionDep, redis: RedisDep, clock: ClockDep, settings: SettingsDep
) -> dict[str, str]:
    body = await request.body()
    verify_webhook(
        body,
        request.headers.get(WEBHOOK_SIGNATURE_HEADER),
        webhook_secret_value(settings),
        clock.now().timestamp(),
    )
    event = WebhookEvent.from_json(body)
    if event.type == REFUND_EVENT:
        return await _refund_outcome(session, event, clock)
    try:
        payment_id = uuid.UUID(event.payment_id)
    except (ValueError, TypeError, AttributeError):
        return {"status": "ignored"}  # signed, but not one of our payment ids
    query = select(Payment).where(Payment.payment_id == payment_id).with_for_update()
    payment = (await session.exec(query)).first()
    if payment is None:
        return {"status": "ignored"}  # not ours (or already purged): acknowledge anyway
    order = await session.get(Order, (payment.store_id, payment.order_id), with_for_update=True)
    assert order is not None  # a payment belongs to an order, never deleted
    await apply_payment(
        session,
        redis,
        order=order,
        payment=payment,
        charge=ChargeResult(event.status, event.provider_ref, event.failure_reason),
        now=clock.now(),
    )
    return {"status": "applied"}


async def _refund_outcome(
    session: AsyncSession, event: WebhookEvent, clock: Clock
) -> dict[str, str]:
    try:
        refund_id = uuid.UUID(str(event.refund_id))
    except ValueError:
        return {"status": "ignored"}  # signed, but not one of our refund ids
    refund = await find_refund(session, refund_id=refund_id)
    if refund is None:
        return {"status": "ignored"}
    applied = await apply_refund(
        session,
        store_id=refund.store_id,
        refund_id=refund_id,
        outcome=ChargeResult(event.status, event.provider_ref, event.failure_reason),
        now=clock.now(),
    )
    return {"status": "applied" if applied else "unchanged"}
