"""A flash sale's life: created with its tokens, live, ended by the clock or stopped by a
manager; and the reads of sales (public view, listing, the control tower's figures).

How the pieces fit:

* **Tokens** (``inventory_tokens``): created with the sale, one row per unit, each unit
  set aside from regular stock by its own HARD hold in the reservation engine (holder
  ``flash:<token_id>``, expiring after the sale's end plus a grace as a safety net), so
  regular carts can never sell it and physical = available + reserved + damaged +
  in_transit holds throughout.
* **Admission** (``admission``): Redis pops the head of a store's line into a checkout
  slot while a slot and a free token exist (``queue.admit``); the admitting request then
  claims one token per admitted customer in PostgreSQL with ``FOR UPDATE SKIP LOCKED``
  (concurrent admitters never wait on each other's rows).
* **Checkout** (``checkout``) moves the token's hold to a normal order at the sale price
  through the shared checkout flow (``orders.flows``), charging through the flash sale's
  own payment slots: paid, the order's hold is committed like any order's and picking and
  delivery work unchanged; declined, the hold moves back to the token and the token (and
  its unit) is free for the next in line.
* **Slots expire** by the server clock in the leased tick (``tick``): an unused claim
  returns its token and the next customer is admitted. **The end** (or a manager's stop)
  releases every unsold token's hold to regular stock.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.catalog.models import Product
from server.catalog.snapshot import catalog_changed
from server.flash import queue
from server.flash.errors import (
    FlashEnded,
    FlashNotStarted,
    FlashSaleNotFound,
    SaleOverlap,
)
from server.flash.models import (
    FlashSale,
    FlashSaleStore,
    InventoryToken,
    SaleState,
    TokenStatus,
    token_holder,
)
from server.identity.access import check_city_scope
from server.identity.models import User
from server.inventory import engine
from server.inventory import service as inventory
from server.inventory.errors import InsufficientStock
from server.kit import keys, uow
from server.kit.cache import TTLCache
from server.kit.config import Settings
from server.kit.db import transaction
from server.kit.errors import NotFound, Unprocessable
from server.ops.audit import record_action
from server.stores.models import DarkStore
from shared.schemas.flash import FlashSaleCreate, FlashSalePublic, FlashStoreUnits
from shared.schemas.ops import FlashQueueOps

MAX_SALE_HOURS = 24
MAX_LEAD_DAYS = 30


def public_status(sale: FlashSale, now: datetime, *, units_left: int | None = None) -> str:
    """SCHEDULED, LIVE, SOLD_OUT, ENDED or STOPPED (stored state plus the clock)."""
    if sale.status == SaleState.STOPPED:
        return "STOPPED"
    if sale.status == SaleState.ENDED or now >= sale.ends_at:
        return "ENDED"
    if now < sale.starts_at:
        return "SCHEDULED"
    return "SOLD_OUT" if units_left == 0 else "LIVE"


def is_live(sale: FlashSale, now: datetime) -> bool:
    return sale.status == SaleState.ACTIVE and sale.starts_at <= now < sale.ends_at


def require_live(sale: FlashSale, now: datetime, *, early_s: float = 0) -> None:
    """Live, or (``early_s``) starting within that many seconds: the waiting room."""
    status = public_status(sale, now)
    if status == "SCHEDULED" and (sale.starts_at - now).total_seconds() > early_s:
        raise FlashNotStarted(
            f"the sale starts at {sale.starts_at.isoformat()}",
            starts_at=sale.starts_at.isoformat(),
        )
    if status in ("ENDED", "STOPPED"):
        raise FlashEnded(f"the sale is {status.lower()}", sale_status=status)


def token_hold_s(sale: FlashSale, now: datetime, settings: Settings) -> int:
    """A token's hold lasts past the sale's end (plus a grace): the sweeper's safety net."""
    end = sale.ends_at + timedelta(seconds=settings.flash_token_grace_s)
    return max(1, math.ceil((end - now).total_seconds()))


async def get_sale(
    session: AsyncSession, *, sale_id: uuid.UUID, lock: str | None = None
) -> FlashSale:
    query = select(FlashSale).where(FlashSale.sale_id == sale_id)
    if lock == "update":
        query = query.with_for_update()
    elif lock == "share":
        query = query.with_for_update(read=True)
    sale = (await session.exec(query)).first()
    if sale is None:
        raise FlashSaleNotFound("no such flash sale")
    return sale


# The queue's hot paths (join, where-am-I) read a sale and its stores through a 5 s
# in-process cache: both are fixed once created but for the status, and a stopped or
# ended sale has its lines closed in Redis, which those paths consult anyway. A miss
# loads once however many requests wait for it (the cache's loads are single-flight).
_hot_sales: TTLCache[tuple[FlashSale, dict[str, int]] | None] = TTLCache(5.0)


async def hot_sale(
    sessions: async_sessionmaker[AsyncSession], *, sale_id: uuid.UUID
) -> tuple[FlashSale, dict[str, int]]:
    async def load() -> tuple[FlashSale, dict[str, int]] | None:
        async with transaction(sessions) as session:
            sale = (
                await session.exec(select(FlashSale).where(FlashSale.sale_id == sale_id))
            ).first()
            if sale is None:
                return None
            # a copy belonging to no session: a rollback elsewhere cannot expire it
            copy = FlashSale(**{name: getattr(sale, name) for name in FlashSale.model_fields})
            return copy, await sale_stores(session, sale_id)

    found = await _hot_sales.get_or_load(sale_id, load)
    if found is None:
        raise FlashSaleNotFound("no such flash sale")
    return found


async def sale_stores(session: AsyncSession, sale_id: uuid.UUID) -> dict[str, int]:
    rows = await session.exec(
        select(FlashSaleStore.store_id, FlashSaleStore.units).where(
            FlashSaleStore.sale_id == sale_id
        )
    )
    return dict(sorted(rows.all()))


async def publish(
    redis: aioredis.Redis, *, sale_id: str, store_id: str, kind: str = "moved", **extra: Any
) -> None:
    """Tell the socket hubs that a line moved (or closed)."""
    await redis.spublish(  # sharded pub/sub: only the channel's shard carries it
        keys.flash_channel(sale_id, store_id), json.dumps({"type": kind, **extra})
    )


def return_token(session: AsyncSession, token: InventoryToken, now: datetime) -> None:
    """The token's unit went back to regular stock: it is out of the sale."""
    token.status, token.updated_at = TokenStatus.RETURNED, now
    session.add(token)


def _check_window(body: FlashSaleCreate, now: datetime) -> tuple[datetime, datetime]:
    if body.starts_at.tzinfo is None or body.ends_at.tzinfo is None:
        raise Unprocessable(
            "starts_at and ends_at need a time zone (e.g. 2025-01-01T12:00:00+05:30)",
            code="invalid_sale_window",
        )
    try:
        starts, ends = body.starts_at.astimezone(UTC), body.ends_at.astimezone(UTC)
    except (OverflowError, ValueError):
        raise Unprocessable(
            "the sale's times are out of range", code="invalid_sale_window"
        ) from None
    if ends <= starts:
        raise Unprocessable("ends_at must be after starts_at", code="invalid_sale_window")
    if ends - starts > timedelta(hours=MAX_SALE_HOURS):
        raise Unprocessable(
            f"a flash sale lasts at most {MAX_SALE_HOURS} h", code="invalid_sale_window"
        )
    if ends <= now:
        raise Unprocessable("the sale would be over already", code="invalid_sale_window")
    if starts > now + timedelta(days=MAX_LEAD_DAYS):
        raise Unprocessable(
            f"a flash sale is scheduled at most {MAX_LEAD_DAYS} days ahead",
            code="invalid_sale_window",
        )
    return max(starts, now), ends  # a start in the past means "now"


def _may_manage(manager: User, city_id: str) -> None:
    check_city_scope(manager, city_id=city_id, what="a flash sale of this city")


_NEW_TOKENS = text("""
    INSERT INTO inventory_tokens (store_id, token_id, sale_id, sku_id, status, updated_at)
    SELECT :store, gen_random_uuid(), :sale, :sku, 'AVAILABLE', :now
    FROM generate_series(1, :units)
    RETURNING token_id""")


async def create_sale(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    manager: User,
    body: FlashSaleCreate,
    now: datetime,
    settings: Settings,
) -> FlashSale:
    """Schedule a sale and pre-generate its tokens: one row per unit per store, each unit
    set aside from regular stock by its own hold, all in the caller's transaction."""
    starts, ends = _check_window(body, now)
    store_ids = sorted(set(body.store_ids))
    if len(store_ids) != len(body.store_ids):
        raise Unprocessable("a store is named twice", code="duplicate_store")
    stores = {
        s.store_id: s
        for s in (
            await session.exec(select(DarkStore).where(col(DarkStore.store_id).in_(store_ids)))
        ).all()
    }
    missing = [s for s in store_ids if s not in stores]
    if missing:
        raise NotFound(f"no store {', '.join(missing)}", code="store_not_found", stores=missing)
    cities = {s.city_id for s in stores.values()}
    if len(cities) != 1:
        raise Unprocessable("a flash sale runs in one city", code="stores_in_several_cities")
    city_id = cities.pop()
    _may_manage(manager, city_id)
    product = await session.get(Product, body.sku_id)
    if product is None or not product.is_active:
        raise NotFound(f"no product {body.sku_id}", code="product_not_found")
    if body.sale_price_paise > product.mrp_paise:
        raise Unprocessable(
            f"the sale price is above the MRP ({product.mrp_paise} paise)",
            code="price_above_mrp",
        )
    overlap = (
        await session.execute(
            text("""
            SELECT s.sale_id FROM flash_sales s
            JOIN flash_sale_stores fs ON fs.sale_id = s.sale_id
            WHERE s.sku_id = :sku AND s.status = 'ACTIVE' AND fs.store_id = ANY(:stores)
              AND s.starts_at < :ends AND s.ends_at > :starts
            LIMIT 1"""),
            {"sku": body.sku_id, "stores": store_ids, "starts": starts, "ends": ends},
        )
    ).first()
    if overlap is not None:
        raise SaleOverlap(
            f"sale {overlap[0]} of {body.sku_id} overlaps at one of these stores",
            sale_id=str(overlap[0]),
        )
    sale = FlashSale(
        city_id=city_id,
        sku_id=body.sku_id,
        sale_price_paise=body.sale_price_paise,
        per_customer_limit=body.per_customer_limit,
        starts_at=starts,
        ends_at=ends,
        status=SaleState.ACTIVE,
        created_by=manager.id,
        created_at=now,
    )
    session.add(sale)
    await session.flush()
    hold_s = token_hold_s(sale, now, settings)
    for store_id in store_ids:
        session.add(
            FlashSaleStore(sale_id=sale.sale_id, store_id=store_id, units=body.units_per_store)
        )
        buckets = (await engine.read_buckets(redis, store_id=store_id, sku_ids=[body.sku_id]))[
            body.sku_id
        ]
        if buckets is not None and buckets.available < body.units_per_store:
            raise InsufficientStock(
                [
                    {
                        "sku_id": body.sku_id,
                        "store_id": store_id,
                        "requested_more": body.units_per_store,
                        "available": buckets.available,
                    }
                ]
            )
        tokens = (
            await session.execute(
                _NEW_TOKENS,
                {
                    "store": store_id,
                    "sale": sale.sale_id,
                    "sku": body.sku_id,
                    "now": now,
                    "units": body.units_per_store,
                },
            )
        ).all()
        for (token_id,) in tokens:
            await inventory.reserve_lines(
                session,
                redis,
                store_id=store_id,
                holder=token_holder(token_id),
                lines={body.sku_id: 1},
                now=now,
                hold_s=hold_s,
                mode="HARD",
                actor_id=manager.id,
            )
    await record_action(
        session,
        actor_id=manager.id,
        city_id=city_id,
        action="flash.create",
        target=str(sale.sale_id),
        now=now,
        details={
            "sku_id": body.sku_id,
            "stores": store_ids,
            "units_per_store": body.units_per_store,
            "sale_price_paise": body.sale_price_paise,
            "starts_at": starts.isoformat(),
            "ends_at": ends.isoformat(),
        },
    )

    async def load_lines() -> None:
        for store_id in store_ids:
            await queue.init(
                redis,
                sale_id=str(sale.sale_id),
                store_id=store_id,
                open_=True,
                reason="",
                units=body.units_per_store,
                free=body.units_per_store,
                slot_s=settings.flash_slot_seconds,
                slots=[],
                max_ticket=0,
                max_admit=0,
                started=now >= starts,  # before: joins wait in the waiting room
            )

    uow.after_commit(session, load_lines)
    uow.after_commit(session, lambda: catalog_changed(redis))  # the offer shows in the catalogue
    return sale


async def stop_sale(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale_id: uuid.UUID,
    manager: User,
    reason: str,
    now: datetime,
) -> FlashSale:
    """A manager's stop: unsold units go back to regular stock now; checkouts already
    paying finish normally."""
    sale = await get_sale(session, sale_id=sale_id, lock="update")
    _may_manage(manager, sale.city_id)
    if sale.status != SaleState.ACTIVE:
        raise FlashEnded(f"the sale is already {sale.status.lower()}", sale_status=sale.status)
    await finish_sale(session, redis, sale=sale, now=now, state=SaleState.STOPPED, reason=reason)
    sale.stopped_by = manager.id
    await record_action(
        session,
        actor_id=manager.id,
        city_id=sale.city_id,
        action="flash.stop",
        target=str(sale.sale_id),
        now=now,
        reason=reason,
    )
    return sale


async def finish_sale(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    now: datetime,
    state: SaleState,
    reason: str | None = None,
) -> int:
    """End a sale (the caller holds its row lock): every token nobody is paying for
    releases its unit to regular stock; the lines close after the commit. Returns the
    units released."""
    tokens = (
        await session.exec(
            select(InventoryToken)
            .where(
                InventoryToken.sale_id == sale.sale_id,
                col(InventoryToken.status).in_([TokenStatus.AVAILABLE, TokenStatus.CLAIMED]),
                col(InventoryToken.order_id).is_(None),
            )
            .order_by(col(InventoryToken.store_id), col(InventoryToken.token_id))
            .with_for_update()
        )
    ).all()
    why = f"flash sale {state.value.lower()}" + (f": {reason}" if reason else "")
    for token in tokens:
        await inventory.settle_hold(
            session,
            redis,
            store_id=token.store_id,
            holder=token_holder(token.token_id),
            outcome="RELEASED",
            now=now,
            reason=why[:200],
        )
        return_token(session, token, now)
    sale.status = state
    sale.ended_at = now
    sale.stop_reason = reason
    session.add(sale)
    await session.flush()
    store_ids = list(await sale_stores(session, sale.sale_id))
    closing = "stopped" if state == SaleState.STOPPED else "ended"

    async def close_lines() -> None:
        for store_id in store_ids:
            await queue.close(redis, sale_id=str(sale.sale_id), store_id=store_id, reason=closing)
            await publish(
                redis, sale_id=str(sale.sale_id), store_id=store_id, kind="closed", reason=closing
            )

    uow.after_commit(session, close_lines)
    uow.after_commit(session, lambda: catalog_changed(redis))  # the offer leaves the catalogue
    return len(tokens)


_COUNTS = text("""
    SELECT store_id, status, count(*) FROM inventory_tokens
    WHERE sale_id = :sale GROUP BY store_id, status""")


async def sale_public(
    session: AsyncSession, redis: aioredis.Redis, *, sale: FlashSale, now: datetime
) -> FlashSalePublic:
    stores = await sale_stores(session, sale.sale_id)
    counts: dict[str, dict[str, int]] = {s: {} for s in stores}
    for store_id, status, n in await session.execute(_COUNTS, {"sale": sale.sale_id}):
        counts.setdefault(store_id, {})[status] = int(n)
    pipe = redis.pipeline(transaction=False)
    for store_id in stores:
        pipe.zcard(keys.flash_wait(str(sale.sale_id), store_id))
    waiting = dict(zip(stores, await pipe.execute(), strict=True))
    product = await session.get(Product, sale.sku_id)
    rows = [
        FlashStoreUnits(
            store_id=store_id,
            units=units,
            available=counts[store_id].get(TokenStatus.AVAILABLE, 0),
            in_checkout=counts[store_id].get(TokenStatus.CLAIMED, 0),
            sold=counts[store_id].get(TokenStatus.SOLD, 0),
            waiting=int(waiting[store_id]),
        )
        for store_id, units in stores.items()
    ]
    left = sum(r.available + r.in_checkout for r in rows)
    return FlashSalePublic(
        sale_id=sale.sale_id,
        city_id=sale.city_id,
        sku_id=sale.sku_id,
        name=product.name if product else sale.sku_id,
        mrp_paise=product.mrp_paise if product else sale.sale_price_paise,
        sale_price_paise=sale.sale_price_paise,
        starts_at=sale.starts_at,
        ends_at=sale.ends_at,
        per_customer_limit=sale.per_customer_limit,
        status=public_status(sale, now, units_left=left),
        units=sum(stores.values()),
        sold=sum(r.sold for r in rows),
        stores=rows,
        stop_reason=sale.stop_reason,
    )


async def list_sales(
    session: AsyncSession,
    *,
    now: datetime,
    city_id: str | None,
    store_id: str | None,
    include_finished: bool,
    before: datetime | None,
    limit: int,
) -> list[FlashSale]:
    """Sales by start time, newest first: live and upcoming ones unless asked for all."""
    query = select(FlashSale)
    if city_id:
        query = query.where(FlashSale.city_id == city_id)
    if store_id:
        query = query.where(
            col(FlashSale.sale_id).in_(
                select(FlashSaleStore.sale_id).where(FlashSaleStore.store_id == store_id)
            )
        )
    if not include_finished:
        query = query.where(FlashSale.status == SaleState.ACTIVE, col(FlashSale.ends_at) > now)
    if before is not None:
        query = query.where(col(FlashSale.starts_at) < before)
    query = query.order_by(col(FlashSale.starts_at).desc(), col(FlashSale.sale_id)).limit(limit)
    return list((await session.exec(query)).all())


async def queue_figures(
    session: AsyncSession, redis: aioredis.Redis, *, city_id: str, now: datetime
) -> list[FlashQueueOps]:
    """The control tower's view of the city's live sales: line length and tokens."""
    sales = (
        await session.exec(
            select(FlashSale)
            .where(
                FlashSale.city_id == city_id,
                FlashSale.status == SaleState.ACTIVE,
                col(FlashSale.starts_at) <= now,
                col(FlashSale.ends_at) > now,
            )
            .order_by(col(FlashSale.starts_at), col(FlashSale.sale_id))
        )
    ).all()
    figures: list[FlashQueueOps] = []
    for sale in sales:
        view = await sale_public(session, redis, sale=sale, now=now)
        figures.append(
            FlashQueueOps(
                sale_id=sale.sale_id,
                sku_id=sale.sku_id,
                status=view.status,
                waiting=sum(s.waiting for s in view.stores),
                in_checkout=sum(s.in_checkout for s in view.stores),
                tokens_left=sum(s.available for s in view.stores),
                sold=view.sold,
            )
        )
    return figures
