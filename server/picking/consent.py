"""Substitution with the customer's consent (store policy ``ask``).

A short line's offer (made by ``shorts.short_pick``) waits on the customer: they accept the
proposed product, choose another of the candidates, or refuse (the line is refunded). No
answer by ``expires_at`` (server clock, ``QC_SUBSTITUTION_ANSWER_S`` after the short) and
the store's ``substitution_fallback`` decides, applied by a per-store background loop
(``expire_offers``): a loop rather than lazily, because the picker must hear the outcome
while nobody asks for the order.

The answer and the timeout may race: each closes the offer with one conditional UPDATE
(``status = 'PENDING'`` and on its side of ``expires_at``), so exactly one of them changes
the order and its money; the other finds the offer closed. Either outcome is pushed to the
customer (``order.substitution_resolved``) and to the store's pickers
(``picking.substitution_resolved``); the line's HELD refund is then paid out, shrunk by the
substitute's price when one was placed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.events.service import emit
from server.identity.models import User
from server.inventory import engine
from server.kit.clock import Clock
from server.kit.db import transaction
from server.kit.errors import Conflict, NotFound, Unprocessable
from server.orders.models import Order
from server.picking.models import PickTask, SubstitutionOffer
from server.picking.service import task_lines
from server.picking.shorts import place_substitute
from server.stores.models import DarkStore
from shared.schemas.orders import SubstitutionAnswer

log = logging.getLogger(__name__)

SUBSTITUTED, REFUNDED = "SUBSTITUTED", "REFUNDED"

_CLOSE = text("""
    UPDATE substitution_offers
    SET status = :outcome, chosen_sku = :chosen, decided_by = :by, resolved_at = :now
    WHERE store_id = :s AND order_id = :o AND sku_id = :k AND status = 'PENDING'
      AND CASE WHEN :by = 'timeout' THEN expires_at <= :now ELSE expires_at > :now END
    RETURNING quantity""")


class OfferClosed(Conflict):
    code, title = "offer_closed", "This substitution offer is already decided"


async def answer(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    order: Order,
    customer: User,
    sku_id: str,
    body: SubstitutionAnswer,
    now: datetime,
) -> None:
    """The customer's answer about the short line ``sku_id``. Sent again with the same
    answer (its reply was lost), it changes nothing; after the offer closed (answered, or
    its time ran out) it is refused with 409 ``offer_closed``. A chosen product that is no
    longer in stock is refused with 409 ``insufficient_stock`` and the offer stays open."""
    task = await _task(session, store_id=order.store_id, order_id=order.order_id)
    offer = await session.get(SubstitutionOffer, (order.store_id, order.order_id, sku_id))
    if offer is None or task is None:
        raise NotFound("no substitution offer for this line", code="offer_not_found")
    if task.status != "PICKING" and offer.status == "PENDING":
        # a cancelled order: the loop closes the offer (its refund is void)
        raise OfferClosed(f"the order is no longer being picked ({task.status})")
    candidates = [c["sku_id"] for c in offer.candidates]
    if body.answer == "refuse":
        chosen = None
    elif body.answer == "accept":
        chosen = offer.proposed_sku
    elif body.substitute_sku in candidates:
        chosen = body.substitute_sku
    else:
        raise Unprocessable(
            "substitute_sku must be one of the offered products",
            code="not_a_candidate",
            candidates=candidates,
        )
    if offer.status != "PENDING":
        if offer.decided_by == "customer" and offer.chosen_sku == chosen:
            return  # a retry of the answer that closed it
        raise OfferClosed(
            f"the offer is {offer.status} ({offer.decided_by})", offer_status=offer.status
        )
    await _close(
        session,
        redis,
        task=task,
        offer=offer,
        chosen=chosen,
        by="customer",
        actor_id=customer.id,
        now=now,
    )


async def expire_offers(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    clock: Clock,
    store_id: str,
    *,
    batch: int = 50,
) -> int:
    """The background loop's run for one store: every offer whose time ran out gets the
    store's fallback, each in a transaction of its own. Returns the offers closed."""
    now = clock.now()
    async with transaction(sessions) as session:
        due = (
            await session.exec(
                select(SubstitutionOffer.order_id, SubstitutionOffer.sku_id)
                .where(
                    SubstitutionOffer.store_id == store_id,
                    SubstitutionOffer.status == "PENDING",
                    col(SubstitutionOffer.expires_at) <= now,
                )
                .order_by(col(SubstitutionOffer.expires_at))
                .limit(batch)
            )
        ).all()
    closed = 0
    for order_id, sku_id in due:
        try:
            async with transaction(sessions) as session:
                closed += await expire_one(
                    session, redis, store_id=store_id, order_id=order_id, sku_id=sku_id, now=now
                )
        except Conflict:  # the stock went meanwhile (or a race lost): the next run sees it
            log.warning("substitution timeout not applied", extra={"order_id": str(order_id)})
    return closed


async def expire_one(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    store_id: str,
    order_id: uuid.UUID,
    sku_id: str,
    now: datetime,
) -> int:
    """No answer by the deadline: the store's fallback, ``substitute`` (the proposed
    product, if its units are still on the shelf; else the line is refunded) or
    ``refund``. Returns 1 if this call closed the offer, 0 if an answer did first."""
    task = await _task(session, store_id=store_id, order_id=order_id)
    offer = await session.get(SubstitutionOffer, (store_id, order_id, sku_id))
    if task is None or offer is None or offer.status != "PENDING":
        return 0
    store = await session.get(DarkStore, store_id)
    chosen: str | None = None
    if store is not None and store.substitution_fallback == "substitute":
        live = await engine.read_buckets(redis, store_id=store_id, sku_ids=[offer.proposed_sku])
        buckets = live.get(offer.proposed_sku)
        if buckets is not None and buckets.available >= offer.quantity:
            chosen = offer.proposed_sku
    return await _close(
        session, redis, task=task, offer=offer, chosen=chosen, by="timeout", actor_id=None, now=now
    )


async def _task(session: AsyncSession, *, store_id: str, order_id: uuid.UUID) -> PickTask | None:
    """The order's pick task, locked: the picker's scans and pack wait for the outcome
    (and the outcome for them)."""
    return await session.get(PickTask, (store_id, order_id), with_for_update=True)


async def _close(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    task: PickTask,
    offer: SubstitutionOffer,
    chosen: str | None,
    by: str,
    actor_id: uuid.UUID | None,
    now: datetime,
) -> int:
    """Close the offer if it is still open on this side of its deadline (the conditional
    UPDATE: exactly one of the answer and the timeout gets a row back), then apply the
    outcome. Returns 1 if closed here; an answer too late is refused with ``offer_closed``."""
    # a cancelled order was refunded whole: nothing is substituted, the held refund is void
    picking = task.status == "PICKING"
    outcome = SUBSTITUTED if chosen is not None and picking else REFUNDED
    closed = (
        await session.execute(
            _CLOSE,
            {
                "outcome": outcome,
                "chosen": chosen if outcome == SUBSTITUTED else None,
                "by": by,
                "now": now,
                "s": offer.store_id,
                "o": offer.order_id,
                "k": offer.sku_id,
            },
        )
    ).first()
    if closed is None:
        if by == "customer":
            raise OfferClosed("the time to answer has run out", offer_status="EXPIRED")
        return 0
    if outcome == SUBSTITUTED:
        assert chosen is not None
        original = next(
            ln
            for ln in await task_lines(session, offer.store_id, offer.order_id)
            if ln.sku_id == offer.sku_id
        )
        await place_substitute(
            session,
            redis,
            task=task,
            original=original,
            substitute_sku=chosen,
            quantity=offer.quantity,
            now=now,
            actor_id=actor_id,
        )
    await session.execute(
        text(
            "UPDATE refunds SET status = :st WHERE store_id = :s AND order_id = :o AND sku_id = :k "
            "AND status = 'HELD'"
        ),
        {
            "st": "PENDING" if picking else "VOID",
            "s": offer.store_id,
            "o": offer.order_id,
            "k": offer.sku_id,
        },
    )
    payload = {
        "order_id": str(offer.order_id),
        "store_id": offer.store_id,
        "sku_id": offer.sku_id,
        "status": outcome,
        "chosen_sku": chosen if outcome == SUBSTITUTED else None,
        "quantity": offer.quantity,
        "decided_by": by,
        "at": now.isoformat(),
    }
    for topic in ("order.substitution_resolved", "picking.substitution_resolved"):
        await emit(
            session,
            topic=topic,
            store_id=offer.store_id,
            aggregate_id=str(offer.order_id),
            now=now,
            payload=payload,
        )
    await session.refresh(offer)
    return 1
