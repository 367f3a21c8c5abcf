"""The payment-timeout sweep: PLACED orders whose payment did not settle within the
payment window are settled from what the provider says (``flows.apply_payment``), or
cancelled with their hold released when it made no charge."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.inventory import service as inventory
from server.kit.db import transaction
from server.kit.errors import DomainError
from server.orders import service as orders
from server.orders.flows import apply_payment
from server.orders.models import Order
from server.payments.gateway import PaymentGateway
from server.payments.models import Payment
from server.payments.provider import ChargeResult, ProviderError
from shared.enums import OrderStatus

log = logging.getLogger(__name__)

UNPAID_BATCH = 100  # orders settled per sweep


async def settle_unpaid(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    gateway: PaymentGateway,
    now: datetime,
    window_s: int,
) -> int:
    """PLACED orders whose payment did not settle within the window (the provider answered
    PENDING and no webhook came, or the checkout crashed before recording the charge):
    the provider is asked what became of the charge and its outcome is applied (money
    confirms the order if its hold lasted, else it is refunded); an order with no charge
    is cancelled as ``payment_timeout`` and its hold released. An order the provider
    cannot be asked about now waits for the next sweep. Returns the orders settled."""
    async with sessions() as session:
        stale = (
            await session.exec(
                select(Order.store_id, Order.order_id)
                .where(
                    Order.status == OrderStatus.PLACED,
                    col(Order.placed_at) < now - timedelta(seconds=window_s),
                )
                .order_by(col(Order.placed_at))
                .limit(UNPAID_BATCH)
            )
        ).all()
    settled = 0
    for store_id, order_id in stale:
        try:  # outside any transaction: no lock waits on the provider
            charge = await gateway.charge_status(idempotency_key=str(order_id))
        except ProviderError:
            log.warning(
                "cannot ask the provider about an unpaid order", extra={"order_id": str(order_id)}
            )
            continue
        try:
            async with transaction(sessions) as session:
                settled += await _settle_unpaid_order(
                    session, redis, store_id=store_id, order_id=order_id, charge=charge, now=now
                )
        except DomainError as exc:
            # refused (a store being reloaded, books short of the order's hold): the next
            # sweep tries it again, and the orders behind it are not held up meanwhile
            log.warning(
                "could not settle an unpaid order",
                extra={"order_id": str(order_id), "code": exc.code, "detail": exc.detail},
            )
    return settled


async def _settle_unpaid_order(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    order_id: uuid.UUID,
    charge: ChargeResult | None,
    now: datetime,
) -> int:
    order = (
        await session.exec(
            select(Order)
            .where(Order.store_id == store_id, Order.order_id == order_id)
            .with_for_update(skip_locked=True)
        )
    ).first()
    if order is None or order.status != OrderStatus.PLACED:
        return 0  # settled meanwhile, or being settled right now
    payment = (
        await session.exec(
            select(Payment)
            .where(Payment.store_id == store_id, Payment.order_id == order_id)
            .with_for_update()
        )
    ).one()
    if charge is not None:
        await apply_payment(
            session,
            redis,
            order=order,
            payment=payment,
            charge=charge,
            now=now,
        )
    if order.status == OrderStatus.PLACED:
        # no charge (or still pending): a later webhook of money refunds it (see
        # apply_payment)
        await inventory.settle_hold(
            session,
            redis,
            store_id=store_id,
            holder=str(order_id),
            outcome="RELEASED",
            now=now,
            reason="payment_timeout",
        )
        await orders.transition(
            session, order=order, to=OrderStatus.CANCELLED, now=now, reason="payment_timeout"
        )
    return 1
