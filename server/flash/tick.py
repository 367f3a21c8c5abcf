"""The flash tick (a leased loop): end the sales that are due, settle checkouts paid (or
not) by webhook, take back the tokens of slots that ran out unused, admit the next."""

from __future__ import annotations

import uuid
from datetime import datetime

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import and_, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.flash import queue
from server.flash.admission import end_slots, load_line
from server.flash.checkout import settle_paid_token
from server.flash.models import FlashSale, InventoryToken, SaleState, TokenStatus
from server.flash.sales import finish_sale, get_sale, is_live, publish, sale_stores
from server.kit import keys
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.db import transaction
from server.orders.models import Order
from shared.enums import OrderStatus


async def tick(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    clock: Clock,
    settings: Settings,
) -> None:
    """One pass over the sales: end the due ones, expire unused slots (the token goes to
    the next in line), settle checkouts whose payment came by webhook, admit."""
    now = clock.now()
    async with transaction(sessions) as session:
        sales = (
            await session.exec(
                select(FlashSale).where(
                    or_(
                        col(FlashSale.status) == SaleState.ACTIVE,
                        col(FlashSale.sale_id).in_(
                            select(InventoryToken.sale_id).where(
                                InventoryToken.status == TokenStatus.CLAIMED,
                                col(InventoryToken.order_id).is_not(None),
                            )
                        ),
                    )
                )
            )
        ).all()
    for sale in sales:
        if sale.status == SaleState.ACTIVE and now >= sale.ends_at:
            async with transaction(sessions) as session:
                locked = await get_sale(session, sale_id=sale.sale_id, lock="update")
                if locked.status == SaleState.ACTIVE:
                    await finish_sale(session, redis, sale=locked, now=now, state=SaleState.ENDED)
            sale = locked
        if now < sale.starts_at:
            continue
        async with transaction(sessions) as session:
            stores = list(await sale_stores(session, sale.sale_id))
        for store_id in stores:
            await tick_line(
                sessions, redis, sale=sale, store_id=store_id, now=now, settings=settings
            )


_DUE_CLAIMS = text("""
    SELECT t.token_id, t.claimed_by, t.status, t.slot_expires_at, t.order_id
    FROM inventory_tokens t
    WHERE t.sale_id = :sale AND t.store_id = :store AND t.claimed_by = ANY(:customers)
      AND t.status IN ('CLAIMED', 'SOLD')""")


_EXPIRE_CLAIMS = text("""
    UPDATE inventory_tokens SET status = 'AVAILABLE', claimed_by = NULL, claimed_at = NULL,
      slot_expires_at = NULL, ticket = NULL, admit_no = NULL, updated_at = :now
    WHERE sale_id = :sale AND store_id = :store AND status = 'CLAIMED'
      AND order_id IS NULL AND slot_expires_at <= :now
    RETURNING claimed_by""")


async def tick_line(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    store_id: str,
    now: datetime,
    settings: Settings,
) -> None:
    """One store's line: settle checkouts paid (or not) by webhook, take back the tokens
    of slots that ran out unused, end those slots in Redis and admit the next customers."""
    sale_id = str(sale.sale_id)
    ended: dict[str, queue.Outcome] = {}
    async with transaction(sessions) as session:
        paying = (
            await session.exec(
                select(InventoryToken, Order)
                .join(
                    Order,
                    and_(
                        col(Order.store_id) == col(InventoryToken.store_id),
                        col(Order.order_id) == col(InventoryToken.order_id),
                    ),
                )
                .where(
                    InventoryToken.sale_id == sale.sale_id,
                    InventoryToken.store_id == store_id,
                    InventoryToken.status == TokenStatus.CLAIMED,
                    Order.status != OrderStatus.PLACED,
                )
                .with_for_update(of=InventoryToken, skip_locked=True)
            )
        ).all()
        for token, order in paying:
            customer = str(token.claimed_by)
            outcome = await settle_paid_token(
                session, redis, sale=sale, token=token, order=order, now=now, settings=settings
            )
            if outcome is not None:
                ended[customer] = outcome
        if not is_live(sale, now):
            return
        view = await queue.positions(redis, sale_id=sale_id, store_id=store_id, customers=[])
        if not view.loaded:
            await load_line(
                session, redis, sale=sale, store_id=store_id, now=now, settings=settings
            )
        if await queue.start(redis, sale_id=sale_id, store_id=store_id) > 0:
            await publish(redis, sale_id=sale_id, store_id=store_id)  # the room has places
        # PostgreSQL decides which slots ran out unused: their tokens go back to the pool
        for (customer,) in await session.execute(
            _EXPIRE_CLAIMS, {"sale": sale.sale_id, "store": store_id, "now": now}
        ):
            ended[str(customer)] = "returned"
        # slots Redis still counts that PostgreSQL has no claim for (a crash between the
        # two): a sold token's slot ends as sold, any other gives its token back
        due = [
            c.decode() if isinstance(c, bytes) else str(c)
            for c in await redis.zrangebyscore(
                keys.flash_slots(sale_id, store_id), "-inf", now.timestamp(), start=0, num=1000
            )
        ]
        due = [c for c in due if c not in ended]
        if due:
            scores = await redis.zmscore(keys.flash_slots(sale_id, store_id), due)
            held = {
                str(r.claimed_by): r
                for r in await session.execute(
                    _DUE_CLAIMS,
                    {
                        "sale": sale.sale_id,
                        "store": store_id,
                        "customers": [uuid.UUID(c) for c in due],
                    },
                )
            }
            for customer, score in zip(due, scores, strict=True):
                row = held.get(customer)
                if row is not None and row.status == TokenStatus.CLAIMED:
                    continue  # paying, or a claim PostgreSQL has not seen run out
                if (
                    row is not None
                    and score is not None
                    and abs(row.slot_expires_at.timestamp() - float(score)) < 0.01
                ):
                    ended[customer] = "sold"
                else:
                    ended[customer] = "returned"
    await end_slots(
        sessions, redis, sale=sale, store_id=store_id, ended=ended, now=now, settings=settings
    )
