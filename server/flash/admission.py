"""Admission into a store's line: Redis pops the head of the line into checkout slots,
PostgreSQL claims a token for each admitted customer; slots that end give way to the next.

Redis holds the line (``queue``); PostgreSQL holds the tokens and decides. A line Redis
does not hold (first use, or Redis lost it) is loaded from the tokens before any script.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.flash import queue
from server.flash.limits import bought_counts
from server.flash.models import FlashSale, InventoryToken, SaleState, TokenStatus
from server.flash.sales import is_live, publish
from server.kit import uow
from server.kit.config import Settings
from server.kit.db import transaction

log = logging.getLogger(__name__)
T = TypeVar("T")


async def load_line(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    store_id: str,
    now: datetime,
    settings: Settings,
) -> bool:
    """Load one store's line into Redis from the tokens (first use, or Redis lost it)."""
    counts = await _line_counts(session, sale_id=sale.sale_id, store_id=store_id)
    claims = (
        await session.exec(
            select(InventoryToken).where(
                InventoryToken.sale_id == sale.sale_id,
                InventoryToken.store_id == store_id,
                InventoryToken.status == TokenStatus.CLAIMED,
            )
        )
    ).all()
    highest = (
        await session.execute(
            text(
                "SELECT coalesce(max(ticket), 0), coalesce(max(admit_no), 0) "
                "FROM inventory_tokens WHERE sale_id = :sale"
            ),
            {"sale": sale.sale_id},
        )
    ).one()
    free = counts[TokenStatus.AVAILABLE]
    left = free + counts[TokenStatus.CLAIMED]
    open_ = sale.status == SaleState.ACTIVE and now < sale.ends_at and left > 0
    if sale.status != SaleState.ACTIVE:
        reason = sale.status.lower()
    elif now >= sale.ends_at:
        reason = "ended"
    else:
        reason = "" if open_ else "sold_out"
    loaded = await queue.init(
        redis,
        sale_id=str(sale.sale_id),
        store_id=store_id,
        open_=open_,
        reason=reason,
        units=sum(counts.values()),
        free=free if open_ else 0,
        slot_s=settings.flash_slot_seconds,
        slots=[
            queue.Slot(
                str(c.claimed_by), c.slot_expires_at.timestamp(), c.admit_no or 0, c.ticket or 0
            )
            for c in claims
            if open_ and c.slot_expires_at is not None  # a claim always has its slot's end
        ],
        max_ticket=int(highest[0]),
        max_admit=int(highest[1]),
        started=now >= sale.starts_at,
    )
    if loaded:  # the join's limit check reads these
        bought = await bought_counts(session, sale_id=sale.sale_id)
        await queue.record_bought(redis, sale_id=str(sale.sale_id), counts=bought)
    return loaded


async def on_line(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    store_id: str,
    now: datetime,
    settings: Settings,
    call: Callable[[], Awaitable[T]],
) -> T:
    """Run a queue script; if Redis does not hold the line, load it first."""
    try:
        return await call()
    except queue.QueueNotReady:
        await load_line(session, redis, sale=sale, store_id=store_id, now=now, settings=settings)
        return await call()


_CLAIM = text("""
    UPDATE inventory_tokens SET status = 'CLAIMED', claimed_by = :customer, claimed_at = :now,
      slot_expires_at = :expires, ticket = :ticket, admit_no = :admit_no, order_id = NULL,
      sold_at = NULL, updated_at = :now
    WHERE store_id = :store AND token_id = (
      SELECT token_id FROM inventory_tokens
      WHERE sale_id = :sale AND store_id = :store AND status = 'AVAILABLE'
      LIMIT 1
      FOR UPDATE SKIP LOCKED)
    AND NOT EXISTS (
      SELECT 1 FROM inventory_tokens c
      WHERE c.sale_id = :sale AND c.claimed_by = :customer AND c.status = 'CLAIMED')
    RETURNING token_id""")


async def claim_token(
    session: AsyncSession,
    *,
    sale_id: uuid.UUID,
    store_id: str,
    customer_id: uuid.UUID,
    now: datetime,
    slot_expires_at: datetime,
    ticket: int | None = None,
    admit_no: int | None = None,
) -> uuid.UUID | None:
    """Claim one AVAILABLE token for ``customer_id`` (the seed's statement): concurrent
    claimers each lock a different row (``SKIP LOCKED``) and never wait on each other.
    None when no token is free or the customer already holds a claim in this sale."""
    row = (
        await session.execute(
            _CLAIM,
            {
                "sale": sale_id,
                "store": store_id,
                "customer": customer_id,
                "now": now,
                "expires": slot_expires_at,
                "ticket": ticket,
                "admit_no": admit_no,
            },
        )
    ).first()
    return row[0] if row else None


async def admit_next(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    store_id: str,
    now: datetime,
    settings: Settings,
) -> list[queue.Admission]:
    """Admit the head of the line into free slots and claim a token for each, in the
    caller's transaction. Redis is put back if that transaction rolls back; the sockets
    hear of it once it commits."""
    expires = round(now.timestamp() + settings.flash_slot_seconds, 3)
    sale_id = str(sale.sale_id)
    admitted = await on_line(
        session,
        redis,
        sale=sale,
        store_id=store_id,
        now=now,
        settings=settings,
        call=lambda: queue.admit(
            redis,
            sale_id=sale_id,
            store_id=store_id,
            slot_expires=expires,
            max_slots=settings.flash_max_concurrent_checkouts,
            now=now.timestamp(),
            rate=settings.flash_admit_rate_per_s,
            burst=settings.flash_admit_burst,
        ),
    )
    if not admitted:
        return []

    async def undo() -> None:
        await queue.unadmit(
            redis, sale_id=sale_id, store_id=store_id, admissions=admitted, refund=True
        )

    uow.on_rollback(session, undo)
    claimed: list[queue.Admission] = []
    missed: list[queue.Admission] = []
    for a in admitted:
        token = await claim_token(
            session,
            sale_id=sale.sale_id,
            store_id=store_id,
            customer_id=uuid.UUID(a.customer),
            now=now,
            slot_expires_at=datetime.fromtimestamp(expires, tz=UTC),
            ticket=a.ticket,
            admit_no=a.admit_no,
        )
        (claimed if token else missed).append(a)
    if missed:
        # PostgreSQL had no free token for them (Redis counted one too many): back in line
        log.warning(
            "flash admission without a token",
            extra={"sale_id": sale_id, "store_id": store_id, "customers": len(missed)},
        )
        await queue.unadmit(
            redis, sale_id=sale_id, store_id=store_id, admissions=missed, refund=False
        )

    async def tell() -> None:
        # announced only now: a customer told "admitted" always finds the claim committed
        await queue.confirm(redis, sale_id=sale_id, store_id=store_id, admissions=claimed)
        await publish(
            redis,
            sale_id=sale_id,
            store_id=store_id,
            kind="admitted",
            customers=[a.customer for a in claimed],
        )

    uow.after_commit(session, tell)
    return claimed


async def end_slots(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    store_id: str,
    ended: dict[str, queue.Outcome],
    now: datetime,
    settings: Settings,
) -> None:
    """After PostgreSQL committed the tokens' fate: end the slots in Redis, admit the
    next customers, tell the sockets."""
    sale_id = str(sale.sale_id)
    released = await queue.release(
        redis,
        sale_id=sale_id,
        store_id=store_id,
        ended=ended,
        now=now.timestamp(),
        slot_s=settings.flash_slot_seconds,
        max_slots=settings.flash_max_concurrent_checkouts,
    )
    if released.exhausted:
        await _confirm_exhausted(
            sessions, redis, sale=sale, store_id=store_id, now=now, settings=settings
        )
    elif released.can_admit and is_live(sale, now):
        await _admit_next_now(
            sessions, redis, sale=sale, store_id=store_id, now=now, settings=settings
        )
    elif released.ended:
        await publish(redis, sale_id=sale_id, store_id=store_id)


async def _admit_next_now(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    store_id: str,
    now: datetime,
    settings: Settings,
) -> None:
    async with transaction(sessions) as session:
        await admit_next(session, redis, sale=sale, store_id=store_id, now=now, settings=settings)


async def _line_counts(session: AsyncSession, *, sale_id: uuid.UUID, store_id: str) -> Counter[str]:
    """The line's tokens by status."""
    rows = await session.execute(
        text(
            "SELECT status, count(*) FROM inventory_tokens "
            "WHERE sale_id = :sale AND store_id = :store GROUP BY status"
        ),
        {"sale": sale_id, "store": store_id},
    )
    return Counter({status: int(n) for status, n in rows.all()})


async def _confirm_exhausted(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    store_id: str,
    now: datetime,
    settings: Settings,
) -> None:
    """Redis has no free token and no slot: PostgreSQL says whether the line is sold out
    (close it, telling everyone waiting at once) or the count fell short (refill it). In
    that state nothing can change the tokens, so the answer is exact."""
    sale_id = str(sale.sale_id)
    async with transaction(sessions) as session:
        counts = await _line_counts(session, sale_id=sale.sale_id, store_id=store_id)
    available, claimed = counts[TokenStatus.AVAILABLE], counts[TokenStatus.CLAIMED]
    if available == 0 and claimed == 0:
        dropped = await queue.close(redis, sale_id=sale_id, store_id=store_id, reason="sold_out")
        await publish(redis, sale_id=sale_id, store_id=store_id, kind="closed", reason="sold_out")
        log.info(
            "flash line sold out",
            extra={"sale_id": sale_id, "store_id": store_id, "told": dropped},
        )
    elif claimed == 0 and is_live(sale, now):
        if await queue.refill(redis, sale_id=sale_id, store_id=store_id, free=available):
            log.warning(
                "flash queue count fell short; refilled from PostgreSQL",
                extra={"sale_id": sale_id, "store_id": store_id, "free": available},
            )
            await _admit_next_now(
                sessions, redis, sale=sale, store_id=store_id, now=now, settings=settings
            )
    # claims PostgreSQL holds without a Redis slot run out by the tick (PostgreSQL decides)


async def claimed_token(
    session: AsyncSession, *, sale_id: uuid.UUID, customer: uuid.UUID
) -> InventoryToken | None:
    """The token of the customer's checkout slot in this sale, locked."""
    return (
        await session.exec(
            select(InventoryToken)
            .where(
                InventoryToken.sale_id == sale_id,
                InventoryToken.claimed_by == customer,
                InventoryToken.status == TokenStatus.CLAIMED,
            )
            .with_for_update()
        )
    ).first()


def free_token(token: InventoryToken, now: datetime) -> None:
    """The token is AVAILABLE again for the next customer admitted (the caller saves it)."""
    token.status = TokenStatus.AVAILABLE
    token.claimed_by = token.claimed_at = token.slot_expires_at = None
    token.ticket = token.admit_no = token.order_id = None
    token.updated_at = now
