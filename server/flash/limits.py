"""The per-customer limit of a sale: Redis answers the join, PostgreSQL decides at checkout.

A join must not cost a PostgreSQL read, so Redis keeps each customer's units bought per
sale (``flash:{F}:bought``): written after every transaction that sells a token, with
PostgreSQL's count of that customer's SOLD tokens (a count only grows, so late writes
never lower it), and rebuilt with the line when Redis lost it. A write lost between the
commit and Redis (a crash) leaves the count short: that customer may join and be
admitted again, and the checkout, which counts in PostgreSQL, refuses them and sets the
count right. No customer ever buys past the limit.
"""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.flash import queue
from server.flash.errors import LimitReached
from server.flash.models import FlashSale, InventoryToken, TokenStatus
from server.kit import uow


def limit_reached(sale: FlashSale) -> LimitReached:
    return LimitReached(
        f"you bought the most this sale allows ({sale.per_customer_limit})",
        limit=sale.per_customer_limit,
    )


async def bought_counts(
    session: AsyncSession, *, sale_id: uuid.UUID, customer: uuid.UUID | None = None
) -> dict[str, int]:
    """Units bought in the sale (SOLD tokens) per customer, or of one customer."""
    query = (
        select(InventoryToken.claimed_by, func.count())
        .where(InventoryToken.sale_id == sale_id, InventoryToken.status == TokenStatus.SOLD)
        .group_by(col(InventoryToken.claimed_by))
    )
    if customer is not None:
        query = query.where(InventoryToken.claimed_by == customer)
    return {str(who): int(n) for who, n in (await session.exec(query)).all()}


async def require_under_limit(
    session: AsyncSession, redis: aioredis.Redis, *, sale: FlashSale, customer: uuid.UUID
) -> None:
    """The customer may buy one more unit of this sale (PostgreSQL's word; a refusal sets
    Redis's count right, whatever becomes of the transaction)."""
    sale_id = str(sale.sale_id)  # read now: a rollback expires the row
    counts = await bought_counts(session, sale_id=sale.sale_id, customer=customer)
    if counts.get(str(customer), 0) >= sale.per_customer_limit:
        uow.after_either(
            session, lambda: queue.record_bought(redis, sale_id=sale_id, counts=counts)
        )
        raise limit_reached(sale)


async def sold_to(
    session: AsyncSession, redis: aioredis.Redis, *, sale_id: uuid.UUID, customer: uuid.UUID
) -> None:
    """A token was sold to ``customer`` in this transaction: Redis learns their count
    once it commits."""
    counts = await bought_counts(session, sale_id=sale_id, customer=customer)
    uow.after_commit(
        session, lambda: queue.record_bought(redis, sale_id=str(sale_id), counts=counts)
    )
