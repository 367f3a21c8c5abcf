"""A customer's entry in a store's line: join, where am I, leave."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import bindparam
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.flash import queue
from server.flash.admission import admit_next, claimed_token, end_slots, free_token, load_line
from server.flash.bulkheads import Bulkhead
from server.flash.errors import CheckoutInProgress, NotInQueue, QueuedElsewhere, closed_error
from server.flash.limits import limit_reached
from server.flash.models import FlashSale, InventoryToken, TokenStatus
from server.flash.sales import (
    get_sale,
    hot_sale,
    publish,
    require_live,
    sale_stores,
)
from server.identity.models import User
from server.kit import uow
from server.kit.config import Settings
from server.kit.db import transaction
from server.kit.errors import NotFound
from shared.schemas.flash import FlashQueueEntry


def poll_after(estimate: int, *, position: int, units_left: int, settings: Settings) -> int:
    """When a client without the socket should ask again. A turn can come sooner than the
    estimate, and a slot a poller has not noticed is wasted, so: among the next in line
    every 2 s; while a unit could still come its way (the units left, a quarter more for
    the payments that fail, the slots) at most every 10 s (a quarter of the estimate);
    further back, where only many failures ahead bring a turn, every 2 minutes (such a
    page mostly learns that the line closed)."""
    slots = settings.flash_max_concurrent_checkouts
    if position <= slots:
        return 2
    if queue.within_reach(position, units_left=units_left, max_slots=slots):
        return max(2, min(10, estimate // 4, settings.flash_slot_seconds // 6))
    return 120


def _early_view(base: dict[str, Any], *, sale: FlashSale, now: datetime) -> FlashQueueEntry:
    """The waiting room: no place yet, the start shuffles everyone in it."""
    until = max(1, round((sale.starts_at - now).total_seconds()))
    return FlashQueueEntry(
        **base, status="WAITING", estimated_wait_s=until, poll_after_s=max(1, min(until, 30))
    )


def _waiting_view(
    base: dict[str, Any], *, rank: int, avg_slot_s: float | None, settings: Settings
) -> FlashQueueEntry:
    position = rank + 1
    estimate = queue.wait_estimate(
        position,
        avg_slot_s=avg_slot_s,
        max_slots=settings.flash_max_concurrent_checkouts,
        slot_s=settings.flash_slot_seconds,
    )
    return FlashQueueEntry(
        **base,
        status="WAITING",
        position=position,
        estimated_wait_s=estimate,
        poll_after_s=poll_after(
            estimate, position=position, units_left=base["units_left"], settings=settings
        ),
    )


def _standing(
    view: queue.LineView,
    *,
    sale: FlashSale,
    store_id: str,
    customer: uuid.UUID,
    ticket: int | None,
) -> tuple[queue.Standing, dict[str, Any]]:
    me = view.customers[str(customer)]
    return me, {
        "sale_id": sale.sale_id,
        "store_id": store_id,
        "units_left": view.free + view.in_slots if view.open else 0,
        "ticket": me.ticket or ticket,
    }


def _in_line_view(
    view: queue.LineView,
    *,
    sale: FlashSale,
    store_id: str,
    customer: uuid.UUID,
    now: datetime,
    settings: Settings,
    ticket: int | None = None,
) -> FlashQueueEntry | None:
    """The entry of a customer Redis sees in the line or the waiting room (no
    PostgreSQL needed); None for anyone else."""
    me, base = _standing(view, sale=sale, store_id=store_id, customer=customer, ticket=ticket)
    if me.early:
        return _early_view(base, sale=sale, now=now)
    if me.rank is not None:
        return _waiting_view(base, rank=me.rank, avg_slot_s=view.avg_slot_s, settings=settings)
    return None


# the customer's claim on a sale, one statement for every call: built per call, its IN
# list's parameter was cloned into a reference cycle (SQLAlchemy's ``_cloned_set``),
# garbage for the collector on every join and poll that read it
_CLAIM = (
    select(InventoryToken)
    .where(
        InventoryToken.sale_id == bindparam("sale_id"),
        InventoryToken.claimed_by == bindparam("customer"),
        col(InventoryToken.status).in_([TokenStatus.CLAIMED, TokenStatus.SOLD]),
    )
    .order_by(col(InventoryToken.updated_at).desc())
    .limit(1)
)


async def entry_view(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    store_id: str,
    customer: uuid.UUID,
    now: datetime,
    settings: Settings,
    ticket: int | None = None,
    view: queue.LineView | None = None,
) -> FlashQueueEntry:
    """Where a customer stands: waiting (position, estimate), admitted (slot), paying,
    purchased, or the line closed. ``ticket``: the join's, if the caller knows it;
    ``view``: the line as the caller just read it."""
    sale_id = str(sale.sale_id)
    if view is None or not view.loaded:
        view = await queue.position(
            redis, sale_id=sale_id, store_id=store_id, customer=str(customer)
        )
    if not view.loaded:
        await load_line(session, redis, sale=sale, store_id=store_id, now=now, settings=settings)
        view = await queue.position(
            redis, sale_id=sale_id, store_id=store_id, customer=str(customer)
        )
    in_line = _in_line_view(
        view,
        sale=sale,
        store_id=store_id,
        customer=customer,
        now=now,
        settings=settings,
        ticket=ticket,
    )
    if in_line is not None:
        return in_line
    me, base = _standing(view, sale=sale, store_id=store_id, customer=customer, ticket=ticket)
    claim = (
        await session.exec(_CLAIM, params={"sale_id": sale.sale_id, "customer": customer})
    ).first()
    if claim is not None and claim.status == TokenStatus.CLAIMED:
        base |= {"ticket": claim.ticket, "admitted_no": claim.admit_no}
        if claim.order_id is not None:
            return FlashQueueEntry(**base, status="PAYING", order_id=claim.order_id, poll_after_s=2)
        expires = claim.slot_expires_at
        assert expires is not None  # a claim always has its slot's end
        left = max(0, round((expires - now).total_seconds()))
        return FlashQueueEntry(
            **base,
            status="ADMITTED",
            slot_expires_at=expires,
            slot_seconds_left=left,
            poll_after_s=5,
        )
    if me.slot_expires is not None:  # admitted this instant: the claim is committing
        return FlashQueueEntry(**base, status="ADMITTING", poll_after_s=1)
    if claim is not None and claim.status == TokenStatus.SOLD and claim.store_id == store_id:
        return FlashQueueEntry(
            **base | {"ticket": claim.ticket, "admitted_no": claim.admit_no},
            status="PURCHASED",
            order_id=claim.order_id,
            poll_after_s=0,
        )
    if not view.open:
        return FlashQueueEntry(
            **base, status="CLOSED", closed_reason=view.reason or "closed", poll_after_s=0
        )
    raise NotInQueue("you are not in this sale's line; join it first")


async def join(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    bulkhead: Bulkhead,
    sale_id: uuid.UUID,
    customer: User,
    store_id: str,
    now: datetime,
    settings: Settings,
) -> FlashQueueEntry:
    """Join a store's line: a position and an estimated wait, or a slot at once when one
    is free. Before the start (from ``flash_prequeue_s`` ahead), the waiting room: WAITING
    without a position until the start shuffles it. One entry per customer; a repeat
    reports the entry. A join that only takes a place in line is one Redis script and no
    PostgreSQL (the sale comes from the process's cache, the per-customer limit from
    Redis); loading the line, admitting or a slot's state open a transaction, inside the
    flash queue ``bulkhead`` (it guards the connections)."""
    sale, stores = await hot_sale(sessions, sale_id=sale_id)
    require_live(sale, now, early_s=settings.flash_prequeue_s)
    if store_id not in stores:
        raise NotFound(f"the sale does not run at {store_id}", code="store_not_in_sale")

    async def attempt() -> queue.Joined:
        joined = await queue.join(
            redis,
            sale_id=str(sale.sale_id),
            store_id=store_id,
            customer=str(customer.id),
            max_slots=settings.flash_max_concurrent_checkouts,
            now=now.timestamp(),
            starts=sale.starts_at.timestamp(),
            limit=sale.per_customer_limit,
        )
        _refuse(joined, sale)
        return joined

    try:
        joined: queue.Joined | None = await attempt()
    except queue.QueueNotReady:
        joined = None
    if joined is not None and not _admits_itself(joined, settings.flash_max_concurrent_checkouts):
        units_left = joined.free + joined.in_slots
        base = {"sale_id": sale.sale_id, "store_id": store_id, "units_left": units_left}
        if joined.status == "EARLY":
            return _early_view(base | {"ticket": None}, sale=sale, now=now)
        if joined.status == "WAITING" and joined.rank is not None:
            return _waiting_view(
                base | {"ticket": joined.ticket},
                rank=joined.rank,
                avg_slot_s=joined.avg_slot_s,
                settings=settings,
            )
    async with bulkhead.slot(), transaction(sessions) as session:
        if joined is None:  # Redis does not hold the line (first use, or it was lost)
            await load_line(
                session, redis, sale=sale, store_id=store_id, now=now, settings=settings
            )
            joined = await attempt()
        if joined.can_admit:
            await admit_next(
                session, redis, sale=sale, store_id=store_id, now=now, settings=settings
            )
        return await entry_view(
            session,
            redis,
            sale=sale,
            store_id=store_id,
            customer=customer.id,
            now=now,
            settings=settings,
            ticket=joined.ticket,
        )


def _admits_itself(joined: queue.Joined, max_slots: int) -> bool:
    """Whether a join admits (a transaction): when its own customer is among those the
    free slots take, or when no slot is in use (the start: no slot's end will admit).
    Otherwise the head of the line is admitted by whoever freed the slot (``end_slots``)
    or by the tick: a crowd's joins each opened a transaction, in the queue bulkhead, for
    someone else's turn while a freed slot was being refilled."""
    if not joined.can_admit or joined.rank is None:
        return False
    return joined.in_slots == 0 or joined.rank < min(joined.free, max_slots - joined.in_slots)


def _refuse(joined: queue.Joined, sale: FlashSale) -> None:
    """A join that takes no place: the limit bought, the line closed, or queued elsewhere."""
    if joined.status == "LIMIT":
        raise limit_reached(sale)
    if joined.status == "CLOSED":
        raise closed_error(joined.reason)
    if joined.status == "ELSEWHERE":
        raise QueuedElsewhere(
            f"you are already in the line at {joined.store_id}", store_id=joined.store_id
        )


async def entry_store(
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    customer: uuid.UUID,
    asked: str | None,
    stores: list[str],
) -> str:
    """Which store's line a customer is in (their entry), else the one asked for, else
    the sale's only store."""
    at = await queue.entry_of(redis, sale_id=str(sale.sale_id), customer=str(customer))
    if at:
        return at
    if asked:
        if asked not in stores:
            raise NotFound(f"the sale does not run at {asked}", code="store_not_in_sale")
        return asked
    if len(stores) == 1:
        return stores[0]
    raise NotInQueue("you are not in this sale's line; join it first")


async def my_entry(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    bulkhead: Bulkhead,
    sale_id: uuid.UUID,
    customer: User,
    store_id: str | None,
    now: datetime,
    settings: Settings,
) -> FlashQueueEntry:
    """Where the customer stands; PostgreSQL (inside the ``bulkhead``) only past the line:
    a slot, a purchase."""
    sale, stores = await hot_sale(sessions, sale_id=sale_id)
    store = await entry_store(
        redis, sale=sale, customer=customer.id, asked=store_id, stores=list(stores)
    )
    view = await queue.position(
        redis, sale_id=str(sale.sale_id), store_id=store, customer=str(customer.id)
    )
    if view.loaded:
        in_line = _in_line_view(
            view, sale=sale, store_id=store, customer=customer.id, now=now, settings=settings
        )
        if in_line is not None:
            return in_line
    async with bulkhead.slot(), transaction(sessions) as session:
        return await entry_view(
            session,
            redis,
            sale=sale,
            store_id=store,
            customer=customer.id,
            now=now,
            settings=settings,
            view=view,
        )


async def leave(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    sale_id: uuid.UUID,
    customer: User,
    now: datetime,
    settings: Settings,
) -> None:
    """Leave the line; an admitted customer gives the slot and its token back at once."""
    async with transaction(sessions) as session:
        sale = await get_sale(session, sale_id=sale_id)
        stores = list(await sale_stores(session, sale.sale_id))
        store = await entry_store(redis, sale=sale, customer=customer.id, asked=None, stores=stores)
        if await queue.leave(
            redis, sale_id=str(sale.sale_id), store_id=store, customer=str(customer.id)
        ):
            uow.after_commit(
                session, lambda: publish(redis, sale_id=str(sale.sale_id), store_id=store)
            )
            return
        token = await claimed_token(session, sale_id=sale.sale_id, customer=customer.id)
        if token is None:
            raise NotInQueue("you are not in this sale's line")
        if token.order_id is not None:
            raise CheckoutInProgress("your checkout is being paid; it cannot be given up now")
        free_token(token, now)
        session.add(token)
    await end_slots(
        sessions,
        redis,
        sale=sale,
        store_id=token.store_id,
        ended={str(customer.id): "returned"},
        now=now,
        settings=settings,
    )
