"""Carts: a store-bound basket whose lines are soft reservations (10-minute holds).

A line change takes no lock (``set_line``); checkout (``cart_checkout``, through
``flows.checkout``) converts the lines into a hard hold moved to the new order, places the
order and starts the payment; the payment outcome confirms or cancels it.
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.catalog.pricing import cart_totals
from server.catalog.snapshot import Catalog
from server.identity.models import User
from server.inventory import service as inventory
from server.inventory.errors import HoldNotActive, InsufficientStock, UnknownSku
from server.inventory.queries import (
    HeldLine,
    had_expired_hold,
    held_lines,
    priced_from_books,
    soft_hold,
)
from server.inventory.reconcile import being_repaired
from server.kit import db
from server.kit.cache import TTLCache
from server.kit.errors import Conflict, NotFound, Unprocessable
from server.orders.models import Cart
from server.stores.models import DarkStore
from shared.schemas.orders import CartLine, CartPublic

# a live soft hold: its quantities by SKU and its expiry
SoftHold = tuple[dict[str, int], datetime]


class CartRow(NamedTuple):
    """A cart's row as a statement wrote or returned it: a detached, read-only copy (an
    ORM ``Cart`` cost ~0.1 ms to build)."""

    store_id: str
    cart_id: uuid.UUID
    user_id: uuid.UUID
    status: str
    created_at: datetime
    updated_at: datetime


AnyCart = Cart | CartRow  # what the read-only helpers take


class CartExpired(Conflict):
    code, title = "cart_expired", "The cart's holds ran out"


class HoldLifeOver(Conflict):
    code, title = "hold_life_over", "The cart has held stock as long as a cart may"


def _life_ends(cart: AnyCart, hold_life_s: int | None) -> datetime | None:
    if hold_life_s is None or cart.created_at is None:
        return None
    return cart.created_at + timedelta(seconds=hold_life_s)


def _hold_for(
    cart: AnyCart, *, now: datetime, hold_s: int, hold_life_s: int | None, adding: bool
) -> int:
    """Each cart change renews the cart's holds by ``hold_s``, but never past the cart's
    life (``hold_life_s`` from its creation): no one keeps stock from others for ever.
    Past it, lines can still be removed, not added."""
    if hold_life_s is None or cart.created_at is None:
        return hold_s
    left = int((cart.created_at + timedelta(seconds=hold_life_s) - now).total_seconds())
    if left <= 0 and adding:
        raise HoldLifeOver(
            f"this cart has held stock for {hold_life_s // 60} minutes, the most a cart "
            "may; check out or start a new cart"
        )
    return max(1, min(hold_s, left))


# the store's state, the customer's open carts and (when both allow it) the new cart in
# one statement; ``made`` says whether it was written
_NEW_CART = text("""
    WITH store AS (SELECT is_operational FROM dark_stores WHERE store_id = :store),
    holding AS (
      SELECT count(*) AS n FROM carts
      WHERE user_id = :user AND status = 'ACTIVE' AND created_at > :young),
    made AS (
      INSERT INTO carts (store_id, cart_id, user_id, status, created_at, updated_at)
      SELECT :store, :cart, :user, 'ACTIVE', :now, :now FROM store, holding
      WHERE store.is_operational
        AND (CAST(:max AS int) IS NULL OR holding.n < CAST(:max AS int))
      RETURNING cart_id)
    SELECT (SELECT is_operational FROM store) AS operational, holding.n AS holding,
      EXISTS (SELECT FROM made) AS made
    FROM holding""")


async def create_cart(
    session: AsyncSession,
    *,
    user: User,
    store_id: str,
    now: datetime,
    max_holding: int | None = None,
    hold_life_s: int = 0,
) -> CartRow:
    """A new cart; refused when the customer already has ``max_holding`` active carts young
    enough to hold stock (with ``cart_max_units_per_sku`` this caps what one customer can
    keep from others). The cart returned is a detached copy of the row written."""
    cart = CartRow(store_id, uuid.uuid4(), user.id, "ACTIVE", now, now)
    found = await (
        await db.execute(
            session,
            _NEW_CART,
            {
                "store": store_id,
                "cart": cart.cart_id,
                "user": user.id,
                "now": now,
                "young": now - timedelta(seconds=hold_life_s),
                "max": max_holding,
            },
        )
    ).fetchone()
    assert found is not None  # one row: the holding count
    operational, holding, made = found
    if made:
        _facts.put((session.bind, cart.cart_id), cart)
        return cart
    if max_holding is not None and holding >= max_holding:
        raise Conflict(
            f"you already have {holding} open carts; check out or wait for one to end",
            code="too_many_carts",
        )
    if operational is None:
        raise NotFound(f"no store {store_id}", code="store_not_found")
    raise Conflict(f"{store_id} is not taking orders right now", code="store_paused")


def new_cart_view(cart: AnyCart, *, hold_life_s: int | None) -> CartPublic:
    """``cart_view`` of a cart just created: nothing held, nothing expired (no reads)."""
    return _public(
        cart,
        status=cart.status,
        lines=[],
        expires=None,
        seconds_left=None,
        hold_life_s=hold_life_s,
        dropped=[],
    )


async def get_cart(
    session: AsyncSession, *, cart_id: uuid.UUID, user: User, for_update: bool = False
) -> Cart:
    query = select(Cart).where(Cart.cart_id == cart_id)
    if for_update:
        query = query.with_for_update()
    cart = (await session.exec(query)).first()
    if cart is None or cart.user_id != user.id:
        raise NotFound("no such cart", code="cart_not_found")
    return cart


CART_COLUMNS = ", ".join(CartRow._fields)  # a returned row is a CartRow as it is


def cart_from_row(row: tuple[Any, ...]) -> CartRow:
    """A detached cart from a row of ``CART_COLUMNS``."""
    return CartRow(*row)


# A line change reads its cart (owner, store, status, creation) from this process's copy,
# at most CART_MAX_AGE_S old, and takes no lock or transaction: the lock that serialised
# it with the cart's checkout cost three round trips and a transaction's work, three times
# an order. A copy may be behind the row (a checkout or a store switch elsewhere): Redis
# refuses what an old copy would get wrong (the checkout's MOVED mark, the left store's
# RELEASED tombstone, both outliving any copy) and such a refusal is decided again from
# the row. Keyed by engine too: a test process serves many databases.
CART_MAX_AGE_S = 30.0
_facts: TTLCache[CartRow] = TTLCache(CART_MAX_AGE_S, max_items=20_000)
_READ = text("SELECT " + CART_COLUMNS + " FROM carts WHERE cart_id = :cart")


async def read_cart(
    session: AsyncSession, *, cart_id: uuid.UUID, user: User, fresh: bool = False
) -> CartRow:
    """The customer's cart as this process's copy has it, or as the row has it now
    (``fresh``, which also renews the copy); no lock."""
    key = (session.bind, cart_id)
    if fresh:
        _facts.drop(key)

    async def load() -> CartRow:
        row = await (await db.execute(session, _READ, {"cart": cart_id})).fetchone()
        if row is None:
            raise NotFound("no such cart", code="cart_not_found")
        return cart_from_row(row)

    cart = await _facts.get_or_load(key, load)
    if cart.user_id != user.id:
        raise NotFound("no such cart", code="cart_not_found")
    return cart


def forget_cart(session: AsyncSession, cart_id: uuid.UUID) -> None:
    """This process's copy of the cart is behind (its status or store changes)."""
    _facts.drop((session.bind, cart_id))


async def priced_lines(
    session: AsyncSession,
    redis: aioredis.Redis,
    catalog: Catalog | None,
    *,
    store_id: str,
    holder: str,
    known: SoftHold | None = None,
) -> list[HeldLine]:
    """The holder's live soft hold (``soft_hold``), named and priced from the replica's
    catalogue (``server.catalog.snapshot``), not PostgreSQL: every cart view and checkout
    read it (a statement, ~4 an order). Prices change only with the catalogue, which drops
    its copy on ``catalog_changed``. A SKU the catalogue does not sell at the store (an
    inactive product) is left to the books: they price them all then. ``known``: the hold
    as this request's change left it (not read again)."""
    held = known or await soft_hold(session, redis, store_id=store_id, holder=holder)
    if held is None or not held[0]:
        return []
    quantities, expires = held
    store = None if catalog is None else await catalog.store(store_id, on=session)
    items = {} if store is None else store.items
    if not all(sku in items for sku in quantities):
        return await priced_from_books(
            session, store_id=store_id, quantities=quantities, expires=expires
        )
    lines = []
    for sku in sorted(quantities):
        card = items[sku].card
        lines.append(
            HeldLine(
                sku_id=sku,
                name=card["name"],
                pack_size=card["pack_size"],
                quantity=quantities[sku],
                unit_price_paise=card["price_paise"],
                mrp_paise=card["mrp_paise"],
                expires_at=expires,
            )
        )
    return lines


async def cart_view(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    cart: AnyCart,
    now: datetime,
    retention_s: int,
    dropped: list[str] | None = None,
    hold_life_s: int | None = None,
    catalog: Catalog | None = None,
    known: SoftHold | None = None,
) -> CartPublic:
    """The cart as the customer sees it; ``known``: its hold as this request's change left
    it (``set_line``'s answer), else read. ``retention_s``: how long ended holds' rows are
    kept (``had_expired_lines``)."""
    held = await priced_lines(
        session, redis, catalog, store_id=cart.store_id, holder=str(cart.cart_id), known=known
    )
    lines = [
        CartLine(
            sku_id=h.sku_id,
            name=h.name,
            pack_size=h.pack_size,
            quantity=h.quantity,
            unit_price_paise=h.unit_price_paise,
            mrp_paise=h.mrp_paise,
            line_total_paise=h.quantity * h.unit_price_paise,
        )
        for h in held
    ]
    expires = min((h.expires_at for h in held), default=None)
    status = cart.status
    if status == "ACTIVE" and not held:
        if await had_expired_lines(session, redis, cart, now=now, retention_s=retention_s):
            status = "EXPIRED"
    return _public(
        cart,
        status=status,
        lines=lines,
        expires=expires,
        seconds_left=max(0, int((expires - now).total_seconds())) if expires else None,
        hold_life_s=hold_life_s,
        dropped=dropped or [],
    )


def _public(
    cart: AnyCart,
    *,
    status: str,
    lines: list[CartLine],
    expires: datetime | None,
    seconds_left: int | None,
    hold_life_s: int | None,
    dropped: list[str],
) -> CartPublic:
    totals = cart_totals([(ln.unit_price_paise, ln.mrp_paise, ln.quantity) for ln in lines])
    return CartPublic(
        cart_id=cart.cart_id,
        store_id=cart.store_id,
        status=status,
        lines=lines,
        hold_expires_at=expires,
        hold_seconds_left=seconds_left,
        hold_life_ends_at=_life_ends(cart, hold_life_s),
        subtotal_paise=totals.subtotal_paise,
        delivery_fee_paise=totals.delivery_fee_paise,
        handling_fee_paise=totals.handling_fee_paise,
        discount_paise=totals.discount_paise,
        total_paise=totals.total_paise,
        dropped=dropped,
    )


async def had_expired_lines(
    session: AsyncSession, redis: aioredis.Redis, cart: AnyCart, *, now: datetime, retention_s: int
) -> bool:
    """Whether an active cart holding nothing lost its holds to expiry: its hold's
    tombstone (a day) or EXPIRED rows (``had_expired_hold``) or, once the retention may
    have deleted both, its age. The retention deletes the rows of a hold that ended more
    than ``retention_s`` ago, and a cart is created before any of its holds starts, so a
    cart whose rows may be gone was created more than ``retention_s`` ago. Its creation,
    not its last touch (a checkout or a line's removal stamps that now) nor its hold
    life's end (a hold may end before the life does). A cart that old is long past its
    hold life (minutes; the retention is days): it can hold nothing, and reads EXPIRED
    whether or not it ever held anything (the rows that would tell may be gone)."""
    if cart.created_at is not None and now - cart.created_at > timedelta(seconds=retention_s):
        return True
    return await had_expired_hold(session, redis, store_id=cart.store_id, holder=str(cart.cart_id))


def require_active(cart: AnyCart) -> None:
    if cart.status != "ACTIVE":
        raise Conflict("this cart was checked out; start a new one", code="cart_checked_out")


async def set_line(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    cart_id: uuid.UUID,
    user: User,
    sku_id: str,
    quantity: int,
    now: datetime,
    hold_s: int,
    hold_life_s: int | None = None,
    max_units: int | None = None,
) -> tuple[CartRow, SoftHold]:
    """Hold ``quantity`` of the SKU for the customer's cart (0 releases it). Returns the
    cart and its hold as the change left it (``reserve.lua`` answers it).

    No lock: the change races its cart's checkout in Redis alone. A checkout moves the
    hold only as it priced it (a hold changed since is read again) and leaves a MOVED
    mark that refuses the changes after it; the cart comes from this process's copy
    (``read_cart``) and a refusal met with the copy is decided again from the row."""
    if max_units is not None and quantity > max_units:
        raise Unprocessable(
            f"at most {max_units} units of one product per cart", code="quantity_over_limit"
        )
    change = partial(
        _hold_line,
        session,
        redis,
        sku_id=sku_id,
        quantity=quantity,
        now=now,
        hold_s=hold_s,
        hold_life_s=hold_life_s,
    )
    cart = await read_cart(session, cart_id=cart_id, user=user)
    if cart.status == "ACTIVE":
        with suppress(HoldNotActive):
            return cart, await change(cart=cart)
    cart = await read_cart(session, cart_id=cart_id, user=user, fresh=True)
    require_active(cart)
    try:
        # a RELEASED tombstone at the cart's store: a move to another store that did not
        # commit, or the store the cart left and came back to with nothing held
        return cart, await change(cart=cart, over=("RELEASED",))
    except HoldNotActive as refused:
        if refused.extra.get("state") == "MOVED":  # a checkout moved it, not committed yet
            raise await being_repaired(
                redis, cart.store_id, what="this cart", under_way=True
            ) from None
        raise CartExpired("the cart's holds expired; start a new cart") from refused


async def _hold_line(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    cart: CartRow,
    sku_id: str,
    quantity: int,
    now: datetime,
    hold_s: int,
    hold_life_s: int | None,
    over: tuple[str, ...] = (),
) -> SoftHold:
    """``set_line``'s change for the cart as given (``HoldNotActive`` when Redis refuses)."""
    hold_s = _hold_for(cart, now=now, hold_s=hold_s, hold_life_s=hold_life_s, adding=quantity > 0)
    reserved = await inventory.reserve_lines(
        session,
        redis,
        store_id=cart.store_id,
        holder=str(cart.cart_id),
        lines={sku_id: quantity},
        now=now,
        hold_s=hold_s,
        over=over,
    )
    assert reserved.held is not None  # a SOFT change's answer carries the hold
    # the expiry as the hold stores it (a Unix timestamp), as a read of it would give
    expires = datetime.fromtimestamp((now + timedelta(seconds=hold_s)).timestamp(), UTC)
    return {sku: q for sku, q in reserved.held.items() if q > 0}, expires


async def switch_store(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    cart: Cart,
    store_id: str,
    now: datetime,
    hold_s: int,
    hold_life_s: int | None = None,
) -> list[str]:
    """Move the cart to another store: old holds are released, each line is held again
    at the new store where it is in stock; returns the SKUs that could not move."""
    require_active(cart)
    if store_id == cart.store_id:
        return []
    hold_s = _hold_for(cart, now=now, hold_s=hold_s, hold_life_s=hold_life_s, adding=True)
    if await session.get(DarkStore, store_id) is None:
        raise NotFound(f"no store {store_id}", code="store_not_found")
    # before the old hold ends: a line change from a copy of the cart that still names
    # the old store meets a tombstone there, whether or not the cart held anything
    await inventory.leave_store(redis, store_id=cart.store_id, holder=str(cart.cart_id))
    forget_cart(session, cart.cart_id)
    old = {
        h.sku_id: h.quantity
        for h in await held_lines(session, redis, store_id=cart.store_id, holder=str(cart.cart_id))
    }
    await inventory.settle_hold(
        session,
        redis,
        store_id=cart.store_id,
        holder=str(cart.cart_id),
        outcome="RELEASED",
        now=now,
        reason="cart moved to another store",
    )
    cart.store_id, cart.updated_at = store_id, now
    session.add(cart)
    dropped = []
    for sku, qty in sorted(old.items()):
        try:
            await inventory.reserve_lines(
                session,
                redis,
                store_id=store_id,
                holder=str(cart.cart_id),
                lines={sku: qty},
                now=now,
                hold_s=hold_s,
                over=("RELEASED",),  # the cart left this store before
            )
        except (InsufficientStock, UnknownSku):
            dropped.append(sku)
    return dropped
