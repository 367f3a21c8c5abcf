"""Flash sales: create and stop (managers), join the line, check out in a slot, the tick.

How the pieces fit:

* **Tokens** (``inventory_tokens``): created with the sale, one row per unit, each unit
  set aside from regular stock by its own HARD hold in the reservation engine (holder
  ``flash:<token_id>``, expiring after the sale's end plus a grace as a safety net), so
  regular carts can never sell it and physical = available + reserved + damaged +
  in_transit holds throughout.
* **Admission**: Redis pops the head of a store's line into a checkout slot while a slot
  and a free token exist (``queue.admit``); the admitting request then claims one token
  per admitted customer in PostgreSQL with ``FOR UPDATE SKIP LOCKED`` (concurrent
  admitters never wait on each other's rows).
* **Checkout** moves the token's hold to a normal order at the sale price (the same
  engine call a cart's checkout makes), charges through the flash sale's own payment
  slots, and applies the outcome through ``orders.apply_payment``: paid, the order's hold
  is committed like any order's and picking and delivery work unchanged; declined, the
  hold moves back to the token and the token (and its unit) is free for the next in line.
* **Slots expire** by the server clock in the leased tick: an unused claim returns its
  token and the next customer is admitted. **The end** (or a manager's stop) releases
  every unsold token's hold to regular stock.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.catalog.models import Product
from server.catalog.pricing import flash_totals
from server.flash import queue
from server.flash.models import (
    FlashSale,
    FlashSaleStore,
    InventoryToken,
    SaleState,
    TokenStatus,
    token_holder,
)
from server.identity.models import User
from server.inventory import engine
from server.inventory import service as inventory
from server.inventory.errors import InsufficientStock
from server.kit import keys, uow
from server.kit.cache import TTLCache
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.db import transaction
from server.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from server.ops.audit import record_action
from server.orders import service as orders
from server.orders.checkout import charge_order, payment_failed, require_checkout_possible
from server.orders.models import Order
from server.payments.breaker import PaymentUnavailable
from server.payments.gateway import PaymentGateway
from server.payments.models import Payment
from server.stores.models import DarkStore
from shared.enums import OrderStatus, Role
from shared.geo import LatLng
from shared.schemas import (
    CheckoutRequest,
    FlashOffer,
    FlashQueueEntry,
    FlashQueueOps,
    FlashSaleCreate,
    FlashSalePublic,
    FlashStoreUnits,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_SALE_HOURS = 24
MAX_LEAD_DAYS = 30


# --- errors -------------------------------------------------------------------------------
class FlashSaleNotFound(NotFound):
    code, title = "flash_sale_not_found", "No such flash sale"


class FlashNotStarted(Conflict):
    code, title = "flash_not_started", "The flash sale has not started"


class FlashEnded(Conflict):
    code, title = "flash_ended", "The flash sale is over"


class FlashSoldOut(Conflict):
    code, title = "flash_sold_out", "Sold out"


class LimitReached(Conflict):
    code, title = "flash_limit_reached", "Per-customer limit reached"


class NoCheckoutSlot(Conflict):
    code, title = "no_checkout_slot", "No checkout slot"


class SlotExpired(Conflict):
    code, title = "slot_expired", "The checkout slot expired"


class CheckoutInProgress(Conflict):
    code, title = "checkout_in_progress", "A checkout is already in progress"


class NotInQueue(NotFound):
    code, title = "not_in_queue", "Not in the queue"


class QueuedElsewhere(Conflict):
    code, title = "queued_elsewhere", "Already in another store's line"


class SaleOverlap(Conflict):
    code, title = "flash_overlap", "Another sale of this product overlaps"


# --- small helpers ------------------------------------------------------------------------
def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def public_status(sale: FlashSale, now: datetime, *, units_left: int | None = None) -> str:
    """SCHEDULED, LIVE, SOLD_OUT, ENDED or STOPPED (stored state plus the clock)."""
    if sale.status == SaleState.STOPPED:
        return "STOPPED"
    if sale.status == SaleState.ENDED or now >= sale.ends_at:  # type: ignore[operator]
        return "ENDED"
    if now < sale.starts_at:  # type: ignore[operator]
        return "SCHEDULED"
    return "SOLD_OUT" if units_left == 0 else "LIVE"


def _is_live(sale: FlashSale, now: datetime) -> bool:
    return sale.status == SaleState.ACTIVE and sale.starts_at <= now < sale.ends_at  # type: ignore[operator]


def _require_live(sale: FlashSale, now: datetime) -> None:
    status = public_status(sale, now)
    if status == "SCHEDULED":
        raise FlashNotStarted(
            f"the sale starts at {sale.starts_at.isoformat()}",  # type: ignore[union-attr]
            starts_at=sale.starts_at.isoformat(),  # type: ignore[union-attr]
        )
    if status in ("ENDED", "STOPPED"):
        raise FlashEnded(f"the sale is {status.lower()}", sale_status=status)


def _token_hold_s(sale: FlashSale, now: datetime, settings: Settings) -> int:
    """A token's hold lasts past the sale's end (plus a grace): the sweeper's safety net."""
    end = sale.ends_at + timedelta(seconds=settings.flash_token_grace_s)  # type: ignore[operator]
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


# The queue's hot paths (join, where-am-I) read a sale and its stores through a 1 s
# in-process cache: both are fixed once created but for the status, and a stopped or
# ended sale has its lines closed in Redis, which those paths consult anyway.
_hot_sales: TTLCache[tuple[FlashSale, dict[str, int]] | None] = TTLCache(1.0)


async def hot_sale(
    session: AsyncSession, *, sale_id: uuid.UUID
) -> tuple[FlashSale, dict[str, int]]:
    async def load() -> tuple[FlashSale, dict[str, int]] | None:
        sale = (await session.exec(select(FlashSale).where(FlashSale.sale_id == sale_id))).first()
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
    return dict(sorted(rows.all()))  # type: ignore[arg-type]


async def _bought(session: AsyncSession, *, sale_id: uuid.UUID, customer: uuid.UUID) -> int:
    return int(
        (
            await session.exec(
                text(  # type: ignore[call-overload]
                    "SELECT count(*) FROM inventory_tokens WHERE sale_id = :s "
                    "AND claimed_by = :c AND status = 'SOLD'"
                ),
                params={"s": sale_id, "c": customer},
            )
        ).one()[0]
    )


async def publish(
    redis: aioredis.Redis, *, sale_id: str, store_id: str, kind: str = "moved", **extra: Any
) -> None:
    """Tell the socket hubs that a line moved (or closed)."""
    await redis.publish(keys.flash_channel(sale_id, store_id), json.dumps({"type": kind, **extra}))


# --- creating and stopping ----------------------------------------------------------------
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
    if manager.role != Role.ADMIN and manager.city_id != city_id:
        raise Forbidden("managers act on flash sales of their own city only", code="not_your_city")


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
        await session.exec(
            text(  # type: ignore[call-overload]
                """
            SELECT s.sale_id FROM flash_sales s
            JOIN flash_sale_stores fs ON fs.sale_id = s.sale_id
            WHERE s.sku_id = :sku AND s.status = 'ACTIVE' AND fs.store_id = ANY(:stores)
              AND s.starts_at < :ends AND s.ends_at > :starts
            LIMIT 1"""
            ),
            params={"sku": body.sku_id, "stores": store_ids, "starts": starts, "ends": ends},
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
    hold_s = _token_hold_s(sale, now, settings)
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
            await session.exec(
                _NEW_TOKENS,  # type: ignore[call-overload]
                params={
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
            )

    uow.after_commit(session, load_lines)
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
        token.status = TokenStatus.RETURNED
        token.updated_at = now
        session.add(token)
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
    return len(tokens)


# --- reading sales ------------------------------------------------------------------------
_COUNTS = text("""
    SELECT store_id, status, count(*) FROM inventory_tokens
    WHERE sale_id = :sale GROUP BY store_id, status""")


async def sale_public(
    session: AsyncSession, redis: aioredis.Redis, *, sale: FlashSale, now: datetime
) -> FlashSalePublic:
    stores = await sale_stores(session, sale.sale_id)
    counts: dict[str, dict[str, int]] = {s: {} for s in stores}
    for store_id, status, n in await session.exec(_COUNTS, params={"sale": sale.sale_id}):  # type: ignore[call-overload]
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
        starts_at=sale.starts_at,  # type: ignore[arg-type]
        ends_at=sale.ends_at,  # type: ignore[arg-type]
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


async def live_offers(
    session: AsyncSession, *, store_id: str, now: datetime, sku_ids: list[str] | None = None
) -> dict[str, FlashOffer]:
    """The sales running now at a store, by SKU (the catalogue shows their price)."""
    filters = " AND s.sku_id = ANY(:skus)" if sku_ids is not None else ""
    rows = await session.exec(
        text(  # type: ignore[call-overload]
            f"""
        SELECT s.sku_id, s.sale_id, s.sale_price_paise, s.starts_at, s.ends_at,
               s.per_customer_limit
        FROM flash_sales s JOIN flash_sale_stores fs ON fs.sale_id = s.sale_id
        WHERE fs.store_id = :store AND s.status = 'ACTIVE'
          AND s.starts_at <= :now AND s.ends_at > :now{filters}"""
        ),
        params={"store": store_id, "now": now, "skus": sku_ids or []},
    )
    return {
        r[0]: FlashOffer(
            sale_id=r[1], price_paise=r[2], starts_at=r[3], ends_at=r[4], per_customer_limit=r[5]
        )
        for r in rows
    }


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
    figures = []
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


# --- the line -----------------------------------------------------------------------------
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
    counts = {
        status: int(n)
        for status, n in (
            await session.exec(
                text(  # type: ignore[call-overload]
                    "SELECT status, count(*) FROM inventory_tokens "
                    "WHERE sale_id = :sale AND store_id = :store GROUP BY status"
                ),
                params={"sale": sale.sale_id, "store": store_id},
            )
        ).all()
    }
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
        await session.exec(
            text(  # type: ignore[call-overload]
                "SELECT coalesce(max(ticket), 0), coalesce(max(admit_no), 0) "
                "FROM inventory_tokens WHERE sale_id = :sale"
            ),
            params={"sale": sale.sale_id},
        )
    ).one()
    free = counts.get(TokenStatus.AVAILABLE, 0)
    left = free + counts.get(TokenStatus.CLAIMED, 0)
    open_ = sale.status == SaleState.ACTIVE and now < sale.ends_at and left > 0  # type: ignore[operator]
    if sale.status != SaleState.ACTIVE:
        reason = sale.status.lower()
    elif now >= sale.ends_at:  # type: ignore[operator]
        reason = "ended"
    else:
        reason = "" if open_ else "sold_out"
    return await queue.init(
        redis,
        sale_id=str(sale.sale_id),
        store_id=store_id,
        open_=open_,
        reason=reason,
        units=sum(counts.values()),
        free=free if open_ else 0,
        slot_s=settings.flash_slot_seconds,
        slots=[
            queue.Slot(str(c.claimed_by), _ts(c.slot_expires_at), c.admit_no or 0, c.ticket or 0)  # type: ignore[arg-type]
            for c in claims
            if open_
        ],
        max_ticket=int(highest[0]),
        max_admit=int(highest[1]),
    )


async def _on_line(
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
        await session.exec(
            _CLAIM,  # type: ignore[call-overload]
            params={
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
    expires = round(_ts(now) + settings.flash_slot_seconds, 3)
    sale_id = str(sale.sale_id)
    admitted = await _on_line(
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
        ),
    )
    if not admitted:
        return []

    async def undo() -> None:
        await queue.unadmit(
            redis, sale_id=sale_id, store_id=store_id, admissions=admitted, refund=True
        )

    uow.on_rollback(session, undo)
    claimed, missed = [], []
    for a in admitted:
        token = await claim_token(
            session,
            sale_id=sale.sale_id,
            store_id=store_id,
            customer_id=uuid.UUID(a.customer),
            now=now,
            slot_expires_at=_at(expires),
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


async def _end_slots(
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
        now=_ts(now),
        slot_s=settings.flash_slot_seconds,
        max_slots=settings.flash_max_concurrent_checkouts,
    )
    if released.exhausted:
        await _confirm_exhausted(
            sessions, redis, sale=sale, store_id=store_id, now=now, settings=settings
        )
    elif released.can_admit and _is_live(sale, now):
        async with transaction(sessions) as session:
            await admit_next(
                session, redis, sale=sale, store_id=store_id, now=now, settings=settings
            )
    elif released.ended:
        await publish(redis, sale_id=sale_id, store_id=store_id)


async def _line_counts(session: AsyncSession, *, sale_id: uuid.UUID, store_id: str) -> Counter:
    rows = await session.exec(
        text(  # type: ignore[call-overload]
            "SELECT status, count(*) FROM inventory_tokens "
            "WHERE sale_id = :sale AND store_id = :store GROUP BY status"
        ),
        params={"sale": sale_id, "store": store_id},
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
    elif claimed == 0 and _is_live(sale, now):
        if await queue.refill(redis, sale_id=sale_id, store_id=store_id, free=available):
            log.warning(
                "flash queue count fell short; refilled from PostgreSQL",
                extra={"sale_id": sale_id, "store_id": store_id, "free": available},
            )
            async with transaction(sessions) as session:
                await admit_next(
                    session, redis, sale=sale, store_id=store_id, now=now, settings=settings
                )
    # claims PostgreSQL holds without a Redis slot run out by the tick (PostgreSQL decides)


def _poll_after(estimate: int, *, position: int, units_left: int, settings: Settings) -> int:
    """When a client without the socket should ask again. A turn can come sooner than the
    estimate, and a slot a poller has not noticed is wasted, so: among the next in line
    every 2 s; while a unit could still come its way (the units left, a quarter more for
    the payments that fail, the slots) at most every 10 s (a quarter of the estimate);
    further back, where only many failures ahead bring a turn, every 2 minutes (such a
    page mostly learns that the line closed)."""
    slots = settings.flash_max_concurrent_checkouts
    if position <= slots:
        return 2
    if position <= units_left * 5 // 4 + slots:
        return max(2, min(10, estimate // 4, settings.flash_slot_seconds // 6))
    return 120


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
) -> FlashQueueEntry:
    """Where a customer stands: waiting (position, estimate), admitted (slot), paying,
    purchased, or the line closed. ``ticket``: the join's, if the caller knows it."""
    sale_id = str(sale.sale_id)
    view = await queue.positions(
        redis, sale_id=sale_id, store_id=store_id, customers=[str(customer)]
    )
    if not view.loaded:
        await load_line(session, redis, sale=sale, store_id=store_id, now=now, settings=settings)
        view = await queue.positions(
            redis, sale_id=sale_id, store_id=store_id, customers=[str(customer)]
        )
    me = view.customers[str(customer)]
    units_left = view.free + view.in_slots if view.open else 0
    base: dict[str, Any] = {
        "sale_id": sale.sale_id,
        "store_id": store_id,
        "units_left": units_left,
        "ticket": me.ticket or ticket,
    }
    if me.rank is not None:
        position = me.rank + 1
        estimate = queue.wait_estimate(
            position,
            avg_slot_s=view.avg_slot_s,
            max_slots=settings.flash_max_concurrent_checkouts,
            slot_s=settings.flash_slot_seconds,
        )
        return FlashQueueEntry(
            **base,
            status="WAITING",
            position=position,
            estimated_wait_s=estimate,
            poll_after_s=_poll_after(
                estimate, position=position, units_left=units_left, settings=settings
            ),
        )
    claim = (
        await session.exec(
            select(InventoryToken)
            .where(
                InventoryToken.sale_id == sale.sale_id,
                InventoryToken.claimed_by == customer,
                col(InventoryToken.status).in_([TokenStatus.CLAIMED, TokenStatus.SOLD]),
            )
            .order_by(col(InventoryToken.updated_at).desc())
            .limit(1)
        )
    ).first()
    if claim is not None and claim.status == TokenStatus.CLAIMED:
        base |= {"ticket": claim.ticket, "admitted_no": claim.admit_no}
        if claim.order_id is not None:
            return FlashQueueEntry(**base, status="PAYING", order_id=claim.order_id, poll_after_s=2)
        left = max(0, round((claim.slot_expires_at - now).total_seconds()))  # type: ignore[operator]
        return FlashQueueEntry(
            **base,
            status="ADMITTED",
            slot_expires_at=claim.slot_expires_at,
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


def _closed_error(reason: str | None) -> Conflict:
    if reason == "sold_out":
        return FlashSoldOut("every unit of this sale is sold", reason=reason)
    return FlashEnded(f"the sale is over ({reason or 'closed'})", reason=reason or "closed")


async def join(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale_id: uuid.UUID,
    customer: User,
    store_id: str,
    now: datetime,
    settings: Settings,
) -> FlashQueueEntry:
    """Join a store's line: a position and an estimated wait, or a slot at once when one
    is free. One entry per customer; a repeat reports the entry."""
    sale, stores = await hot_sale(session, sale_id=sale_id)
    _require_live(sale, now)
    if store_id not in stores:
        raise NotFound(f"the sale does not run at {store_id}", code="store_not_in_sale")
    if (
        await _bought(session, sale_id=sale.sale_id, customer=customer.id)
        >= sale.per_customer_limit
    ):
        raise LimitReached(
            f"you bought the most this sale allows ({sale.per_customer_limit})",
            limit=sale.per_customer_limit,
        )
    joined = await _on_line(
        session,
        redis,
        sale=sale,
        store_id=store_id,
        now=now,
        settings=settings,
        call=lambda: queue.join(
            redis,
            sale_id=str(sale.sale_id),
            store_id=store_id,
            customer=str(customer.id),
            max_slots=settings.flash_max_concurrent_checkouts,
        ),
    )
    if joined.status == "CLOSED":
        raise _closed_error(joined.reason)
    if joined.status == "ELSEWHERE":
        raise QueuedElsewhere(
            f"you are already in the line at {joined.store_id}", store_id=joined.store_id
        )
    if joined.can_admit:
        await admit_next(session, redis, sale=sale, store_id=store_id, now=now, settings=settings)
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
    at = await redis.hget(keys.flash_entries(str(sale.sale_id)), str(customer))  # type: ignore[misc]
    if at:
        return at.decode() if isinstance(at, bytes) else str(at)
    if asked:
        if asked not in stores:
            raise NotFound(f"the sale does not run at {asked}", code="store_not_in_sale")
        return asked
    if len(stores) == 1:
        return stores[0]
    raise NotInQueue("you are not in this sale's line; join it first")


async def my_entry(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale_id: uuid.UUID,
    customer: User,
    store_id: str | None,
    now: datetime,
    settings: Settings,
) -> FlashQueueEntry:
    sale, stores = await hot_sale(session, sale_id=sale_id)
    store = await entry_store(
        redis, sale=sale, customer=customer.id, asked=store_id, stores=list(stores)
    )
    return await entry_view(
        session, redis, sale=sale, store_id=store, customer=customer.id, now=now, settings=settings
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
        token = await _claimed_token(session, sale_id=sale.sale_id, customer=customer.id)
        if token is None:
            raise NotInQueue("you are not in this sale's line")
        if token.order_id is not None:
            raise CheckoutInProgress("your checkout is being paid; it cannot be given up now")
        _free_token(token, now)
        session.add(token)
    await _end_slots(
        sessions,
        redis,
        sale=sale,
        store_id=token.store_id,
        ended={str(customer.id): "returned"},
        now=now,
        settings=settings,
    )


async def _claimed_token(
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


def _free_token(token: InventoryToken, now: datetime) -> None:
    token.status = TokenStatus.AVAILABLE
    token.claimed_by = token.claimed_at = token.slot_expires_at = None
    token.ticket = token.admit_no = token.order_id = None
    token.updated_at = now


# --- checkout -----------------------------------------------------------------------------
async def _move_back(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    token: InventoryToken,
    order_id: uuid.UUID,
    now: datetime,
    settings: Settings,
) -> None:
    """The order's hold goes back to the token: the unit stays set aside for the sale."""
    await inventory.reserve_lines(
        session,
        redis,
        store_id=token.store_id,
        holder=str(order_id),
        lines={token.sku_id: 1},
        now=now,
        hold_s=_token_hold_s(sale, now, settings),
        mode="HARD",
        new_holder=token_holder(token.token_id),
    )


async def checkout(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    gateway: PaymentGateway,
    settings: Settings,
    customer: User,
    sale_id: uuid.UUID,
    body: CheckoutRequest,
    now: datetime,
) -> tuple[int, dict]:
    """Buy the unit of the customer's checkout slot: a normal order at the sale price.

    Returns (HTTP status, body) like a cart checkout: 201 with the order (CONFIRMED, or
    PLACED while the payment is pending) or 402 when the payment failed (the token and
    its unit went back to the sale's pool, the order is cancelled).
    """
    order_id = uuid.uuid4()
    point = LatLng(body.address.lat, body.address.lng)
    async with transaction(sessions) as session:
        sale = await get_sale(session, sale_id=sale_id, lock="share")
        _require_live(sale, now)
        token = await _claimed_token(session, sale_id=sale.sale_id, customer=customer.id)
        if token is None:
            raise NoCheckoutSlot("you have no checkout slot; join the line and wait your turn")
        if token.order_id is not None:
            raise CheckoutInProgress("your checkout is being paid", order_id=str(token.order_id))
        if token.slot_expires_at <= now:  # type: ignore[operator]
            raise SlotExpired("your checkout slot ran out; join the line again")
        if (
            await _bought(session, sale_id=sale.sale_id, customer=customer.id)
            >= sale.per_customer_limit
        ):
            raise LimitReached(
                f"you bought the most this sale allows ({sale.per_customer_limit})",
                limit=sale.per_customer_limit,
            )
        await require_checkout_possible(
            session, redis, gateway=gateway, store_id=token.store_id, point=point, now=now
        )
        await inventory.reserve_lines(
            session,
            redis,
            store_id=token.store_id,
            holder=token_holder(token.token_id),
            lines={token.sku_id: 1},
            now=now,
            hold_s=settings.payment_window_s,
            mode="HARD",
            new_holder=str(order_id),
            actor_id=customer.id,
        )
        store = await session.get(DarkStore, token.store_id)
        product = await session.get(Product, token.sku_id)
        totals = flash_totals(sale.sale_price_paise, product.mrp_paise)  # type: ignore[union-attr]
        _, payment = await orders.place_order(
            session,
            order_id=order_id,
            user=customer,
            store_id=token.store_id,
            city_id=store.city_id,  # type: ignore[union-attr]
            cart_id=None,  # type: ignore[arg-type]
            lines=[(token.sku_id, 1, sale.sale_price_paise, product.mrp_paise)],  # type: ignore[union-attr]
            totals=totals,
            address=body.address.model_dump(),
            lat=point.lat,
            lng=point.lng,
            now=now,
            sla_s=settings.sla_s,
        )
        token.order_id, token.updated_at = order_id, now
        session.add(token)
        payment_id, amount = payment.payment_id, payment.amount_paise
        store_id, token_id = token.store_id, token.token_id
    try:
        result = await charge_order(
            gateway, payment_id=payment_id, order_id=order_id, amount_paise=amount, now=now
        )
    except PaymentUnavailable:
        # not the customer's doing: the order goes, the slot and its token stay theirs
        async with transaction(sessions) as session:
            order = (await session.exec(select(Order).where(Order.order_id == order_id))).one()
            token = await session.get(InventoryToken, (store_id, token_id), with_for_update=True)
            await _move_back(
                session,
                redis,
                sale=sale,
                token=token,
                order_id=order_id,
                now=now,
                settings=settings,  # type: ignore[arg-type]
            )
            await orders.cancel_order(
                session,
                redis,
                order=order,
                now=now,
                actor=customer,
                reason="payment_unavailable",
                by_customer=False,
            )
            token.order_id, token.updated_at = None, now  # type: ignore[union-attr]
            session.add(token)
        raise
    outcome: queue.Outcome | None = None
    async with transaction(sessions) as session:
        order = await session.get(Order, (store_id, order_id), with_for_update=True)
        payment = await session.get(Payment, (store_id, payment_id), with_for_update=True)
        token = await session.get(InventoryToken, (store_id, token_id), with_for_update=True)
        current = await get_sale(session, sale_id=sale_id)
        assert order is not None and payment is not None and token is not None
        if result.status.value == "FAILED" and payment.status == "PENDING":
            if _is_live(current, now):
                await _move_back(
                    session,
                    redis,
                    sale=current,
                    token=token,
                    order_id=order_id,
                    now=now,
                    settings=settings,
                )
                _free_token(token, now)
                outcome = "returned"
            else:  # the sale ended meanwhile: the unit goes back to regular stock
                token.status, token.updated_at = TokenStatus.RETURNED, now
            session.add(token)
        await orders.apply_payment(
            session,
            redis,
            order=order,
            payment=payment,
            status=result.status.value,
            provider_ref=result.provider_ref,
            failure_reason=result.failure_reason,
            now=now,
        )
        if result.status.value == "SUCCEEDED":
            outcome = await _settle_paid_token(
                session, redis, sale=current, token=token, order=order, now=now, settings=settings
            )
        view = await orders.public(session, order)
    if outcome is not None:
        await _end_slots(
            sessions,
            redis,
            sale=current,
            store_id=store_id,
            ended={str(customer.id): outcome},
            now=now,
            settings=settings,
        )
    if view.status == OrderStatus.CANCELLED:
        return payment_failed(order_id, result, what_happened="the unit went back to the sale")
    return 201, view.model_dump(mode="json")


async def _settle_paid_token(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    token: InventoryToken,
    order: Order,
    now: datetime,
    settings: Settings,
) -> queue.Outcome | None:
    """A token whose order has an outcome: SOLD if the order was confirmed; if it was
    cancelled, its unit went back to regular stock: take it back for the sale if the sale
    still runs (else the token is RETURNED). Returns how the slot ended (None: still
    paying)."""
    if order.status == OrderStatus.PLACED:
        return None
    if order.status != OrderStatus.CANCELLED:
        token.status, token.sold_at, token.updated_at = TokenStatus.SOLD, now, now
        session.add(token)
        return "sold"
    if not _is_live(sale, now):
        token.status, token.updated_at = TokenStatus.RETURNED, now
        session.add(token)
        return "sold"  # nothing goes back to the (closed) line
    try:
        await inventory.reserve_lines(
            session,
            redis,
            store_id=token.store_id,
            holder=token_holder(token.token_id),
            lines={token.sku_id: 1},
            now=now,
            hold_s=_token_hold_s(sale, now, settings),
            mode="HARD",
        )
    except InsufficientStock:
        # a regular cart took the unit meanwhile: the sale has one unit less, never more
        token.status, token.updated_at = TokenStatus.VOID, now
        session.add(token)
        return "sold"
    _free_token(token, now)
    session.add(token)
    return "returned"


# --- the tick (leased loop) ---------------------------------------------------------------
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
                    (FlashSale.status == SaleState.ACTIVE)
                    | col(FlashSale.sale_id).in_(
                        select(InventoryToken.sale_id).where(
                            InventoryToken.status == TokenStatus.CLAIMED,
                            col(InventoryToken.order_id).is_not(None),
                        )
                    )
                )
            )
        ).all()
    for sale in sales:
        if sale.status == SaleState.ACTIVE and now >= sale.ends_at:  # type: ignore[operator]
            async with transaction(sessions) as session:
                locked = await get_sale(session, sale_id=sale.sale_id, lock="update")
                if locked.status == SaleState.ACTIVE:
                    await finish_sale(session, redis, sale=locked, now=now, state=SaleState.ENDED)
            sale = locked
        if now < sale.starts_at:  # type: ignore[operator]
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
                    (Order.store_id == InventoryToken.store_id)  # type: ignore[arg-type]
                    & (Order.order_id == InventoryToken.order_id),
                )
                .where(
                    InventoryToken.sale_id == sale.sale_id,
                    InventoryToken.store_id == store_id,
                    InventoryToken.status == TokenStatus.CLAIMED,
                    Order.status != OrderStatus.PLACED,
                )
                .with_for_update(of=InventoryToken, skip_locked=True)  # type: ignore[arg-type]
            )
        ).all()
        for token, order in paying:
            customer = str(token.claimed_by)
            outcome = await _settle_paid_token(
                session, redis, sale=sale, token=token, order=order, now=now, settings=settings
            )
            if outcome is not None:
                ended[customer] = outcome
        if not _is_live(sale, now):
            return
        view = await queue.positions(redis, sale_id=sale_id, store_id=store_id, customers=[])
        if not view.loaded:
            await load_line(
                session, redis, sale=sale, store_id=store_id, now=now, settings=settings
            )
        # PostgreSQL decides which slots ran out unused: their tokens go back to the pool
        for (customer,) in await session.exec(
            _EXPIRE_CLAIMS,  # type: ignore[call-overload]
            params={"sale": sale.sale_id, "store": store_id, "now": now},
        ):
            ended[str(customer)] = "returned"
        # slots Redis still counts that PostgreSQL has no claim for (a crash between the
        # two): a sold token's slot ends as sold, any other gives its token back
        due = [
            c.decode() if isinstance(c, bytes) else c
            for c in await redis.zrangebyscore(
                keys.flash_slots(sale_id, store_id), "-inf", _ts(now), start=0, num=1000
            )
        ]
        due = [c for c in due if c not in ended]
        if due:
            scores = await redis.zmscore(keys.flash_slots(sale_id, store_id), due)
            held = {
                str(r[1]): r
                for r in await session.exec(
                    _DUE_CLAIMS,  # type: ignore[call-overload]
                    params={
                        "sale": sale.sale_id,
                        "store": store_id,
                        "customers": [uuid.UUID(c) for c in due],
                    },
                )
            }
            for customer, score in zip(due, scores, strict=True):
                row = held.get(customer)
                if row is not None and row[2] == TokenStatus.CLAIMED:
                    continue  # paying, or a claim PostgreSQL has not seen run out
                if row is not None and score is not None and abs(_ts(row[3]) - float(score)) < 0.01:
                    ended[customer] = "sold"
                else:
                    ended[customer] = "returned"
    await _end_slots(
        sessions, redis, sale=sale, store_id=store_id, ended=ended, now=now, settings=settings
    )
