"""Paying refunds out: the executor loop and the provider's refund outcome.

A refund row is written PENDING in the transaction that owes the money (a cancel, a failed
delivery, a short pick). ``pay_refunds`` (a leased background loop) sends each due one to
the provider with the refund id as the idempotency key, outside any transaction, so a
retry after a lost answer is told the first outcome instead of paying twice. SUCCEEDED and
FAILED (the provider refused it for good) are final; a provider error or timeout, or a
PENDING answer, leaves it PENDING for another attempt after a backoff that doubles up to
``MAX_BACKOFF_S``: a transient failure is retried for as long as it lasts.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.kit.db import transaction
from server.payments.gateway import PaymentGateway
from server.payments.models import Payment, Refund
from server.payments.provider import ChargeResult, ChargeStatus, ProviderError

log = logging.getLogger(__name__)

REFUND_BATCH = 50  # refunds sent per run
FIRST_BACKOFF_S = 2.0
MAX_BACKOFF_S = 300.0


def backoff_s(attempts: int) -> float:
    """The wait before attempt ``attempts + 1``: 2 s, 4 s, 8 s ... capped at 5 min."""
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** max(0, attempts - 1))


async def pay_refunds(
    sessions: async_sessionmaker[AsyncSession], *, gateway: PaymentGateway, now: datetime
) -> int:
    """Send every due PENDING refund to the provider once; returns the refunds settled."""
    async with sessions() as session:
        due = (
            await session.exec(
                select(Refund, Payment.payment_id)
                .join(
                    Payment,
                    (col(Payment.store_id) == col(Refund.store_id))
                    & (col(Payment.order_id) == col(Refund.order_id)),
                )
                .where(
                    Refund.status == "PENDING",
                    or_(col(Refund.next_attempt_at).is_(None), col(Refund.next_attempt_at) <= now),
                )
                .order_by(col(Refund.created_at))
                .limit(REFUND_BATCH)
            )
        ).all()
    settled = 0
    for refund, payment_id in due:
        try:
            result: ChargeResult | None = await gateway.refund(
                refund_id=str(refund.refund_id),
                payment_id=str(payment_id),
                order_id=str(refund.order_id),
                amount_paise=refund.amount_paise,
                currency="INR",
            )
            failure = None
        except ProviderError as exc:
            result, failure = None, str(exc)
            log.warning("refund not paid yet: %s", exc, extra={"refund_id": str(refund.refund_id)})
        async with transaction(sessions) as session:
            if result is None or result.status == ChargeStatus.PENDING:
                await _retry_later(
                    session,
                    store_id=refund.store_id,
                    refund_id=refund.refund_id,
                    failure=failure,
                    now=now,
                )
            else:
                settled += await apply_refund(
                    session,
                    store_id=refund.store_id,
                    refund_id=refund.refund_id,
                    outcome=result,
                    now=now,
                )
    return settled


async def _retry_later(
    session: AsyncSession,
    *,
    store_id: str,
    refund_id: uuid.UUID,
    failure: str | None,
    now: datetime,
) -> None:
    refund = await session.get(Refund, (store_id, refund_id), with_for_update=True)
    if refund is None or refund.status != "PENDING":
        return  # the webhook settled it meanwhile
    refund.attempts += 1
    refund.next_attempt_at = now + timedelta(seconds=backoff_s(refund.attempts))
    refund.failure_reason, refund.updated_at = failure, now
    session.add(refund)


async def apply_refund(
    session: AsyncSession,
    *,
    store_id: str,
    refund_id: uuid.UUID,
    outcome: ChargeResult,
    now: datetime,
) -> int:
    """Record the provider's final word on a refund once (the executor's answer or the
    webhook): a settled refund, or a PENDING word, changes nothing. Returns 1 if applied."""
    refund = await session.get(Refund, (store_id, refund_id), with_for_update=True)
    if refund is None or refund.status != "PENDING" or outcome.status == ChargeStatus.PENDING:
        return 0
    refund.status = outcome.status.value
    refund.provider_ref, refund.failure_reason = outcome.provider_ref, outcome.failure_reason
    refund.attempts += 1
    refund.updated_at = now
    session.add(refund)
    if outcome.status == ChargeStatus.FAILED:
        log.error(
            "refund refused by the provider: %s",
            outcome.failure_reason,
            extra={"refund_id": str(refund_id)},
        )
    return 1


async def find_refund(session: AsyncSession, *, refund_id: uuid.UUID) -> Refund | None:
    return (await session.exec(select(Refund).where(Refund.refund_id == refund_id))).first()
