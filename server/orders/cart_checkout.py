"""Buying a cart: the ``CheckoutSource`` of ``flows.checkout`` for a cart's soft holds.

The checkout locks the cart's row (its line changes take none: ``cart.set_line``), prices
the hold from the catalogue and moves it to the order exactly as priced; a line changed
after the read makes the move read it again (``CartSource.reprice``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.catalog.pricing import cart_totals
from server.catalog.snapshot import Catalog
from server.idempotency.service import Claim
from server.identity.models import User
from server.inventory import service as inventory
from server.inventory.errors import InsufficientStock
from server.inventory.queries import hold_moved
from server.inventory.reconcile import being_repaired
from server.kit import db
from server.kit.config import Settings
from server.kit.errors import NotFound, Unprocessable
from server.orders import flows
from server.orders.cart import (
    CART_COLUMNS,
    CartExpired,
    CartRow,
    cart_from_row,
    forget_cart,
    get_cart,
    had_expired_lines,
    priced_lines,
    require_active,
)
from server.orders.flows import CheckoutOutcome, CheckoutSource, Purchase
from server.orders.service import OrderLine
from server.payments.gateway import PaymentGateway
from shared.schemas.orders import CheckoutRequest

# a checkout locks and stamps the cart in one statement: no ORM object read, then flushed
# back (issue 17 point 4)
_TOUCH = text("UPDATE carts SET updated_at = :now WHERE cart_id = :cart RETURNING " + CART_COLUMNS)


async def _touch_cart(
    session: AsyncSession, *, cart_id: uuid.UUID, user: User, now: datetime
) -> CartRow:
    """The customer's cart, locked to the end of the transaction and stamped ``now``; a
    detached copy (changing it writes nothing)."""
    row = await (await db.execute(session, _TOUCH, {"now": now, "cart": cart_id})).fetchone()
    cart = None if row is None else cart_from_row(row)
    if cart is None or cart.user_id != user.id:
        raise NotFound("no such cart", code="cart_not_found")
    return cart


_CHECKED_OUT = text(
    "UPDATE carts SET status = 'CHECKED_OUT' WHERE store_id = :store AND cart_id = :cart"
)
# a checkout locks, stamps and checks out the customer's active cart in one statement (its
# transaction rolls it back if the checkout fails); no row: ``_touch_cart`` says why
_CHECKING_OUT = text(
    "UPDATE carts SET updated_at = :now, status = 'CHECKED_OUT' "
    "WHERE cart_id = :cart AND user_id = :user AND status = 'ACTIVE' "
    "RETURNING " + CART_COLUMNS
)


class CartSource(CheckoutSource):
    """A cart's soft holds, bought at the store's prices."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        user: User,
        cart_id: uuid.UUID,
        soft_hold_s: int,
        retention_s: int,
        catalog: Catalog | None = None,
    ) -> None:
        self._redis, self._user, self._cart_id = redis, user, cart_id
        self._soft_hold_s, self._retention_s, self._catalog = soft_hold_s, retention_s, catalog
        self._cart: CartRow | None = None
        self._held: dict[str, int] = {}

    async def open(self, session: AsyncSession, *, now: datetime) -> Purchase:
        found = await db.execute(
            session, _CHECKING_OUT, {"now": now, "cart": self._cart_id, "user": self._user.id}
        )
        row = await found.fetchone()
        if row is not None:
            cart = cart_from_row(row)
        else:  # not the customer's, or not active (or active again by now: checked out later)
            cart = await _touch_cart(session, cart_id=self._cart_id, user=self._user, now=now)
            require_active(cart)
        self._cart = cart
        return await self._priced(session, now=now)

    async def reprice(self, session: AsyncSession, *, now: datetime) -> Purchase:
        """The cart stays locked; its lines changed after they were read."""
        return await self._priced(session, now=now)

    async def _priced(self, session: AsyncSession, *, now: datetime) -> Purchase:
        cart = self._cart
        assert cart is not None  # opened (locked, stamped) in this transaction
        lines = await priced_lines(
            session, self._redis, self._catalog, store_id=cart.store_id, holder=str(cart.cart_id)
        )
        if not lines:
            if await had_expired_lines(
                session, self._redis, cart, now=now, retention_s=self._retention_s
            ):
                raise CartExpired("the cart's holds expired; start a new cart")
            if await hold_moved(self._redis, store_id=cart.store_id, holder=str(cart.cart_id)):
                raise await being_repaired(self._redis, cart.store_id, what="this cart")
            raise Unprocessable("the cart is empty", code="cart_empty")
        self._held = {h.sku_id: h.quantity for h in lines}
        return Purchase(
            store_id=cart.store_id,
            holder=str(cart.cart_id),
            lines=[OrderLine(h.sku_id, h.quantity, h.unit_price_paise, h.mrp_paise) for h in lines],
            totals=cart_totals([(h.unit_price_paise, h.mrp_paise, h.quantity) for h in lines]),
            cart_id=cart.cart_id,
        )

    async def placed(self, session: AsyncSession, *, order_id: uuid.UUID, now: datetime) -> None:
        assert self._cart is not None  # opened (locked, stamped) in this transaction
        forget_cart(session, self._cart.cart_id)
        if self._cart.status == "ACTIVE":  # not checked out as it was opened
            await db.execute(
                session, _CHECKED_OUT, {"store": self._cart.store_id, "cart": self._cart.cart_id}
            )

    async def reopen(self, session: AsyncSession, *, now: datetime) -> None:
        """The customer gets the cart back with its items held again, so a retry can
        succeed."""
        cart = await get_cart(session, cart_id=self._cart_id, user=self._user, for_update=True)
        cart.status, cart.updated_at = "ACTIVE", now
        session.add(cart)
        forget_cart(session, cart.cart_id)
        for sku, qty in self._held.items():
            try:
                await inventory.reserve_lines(
                    session,
                    self._redis,
                    store_id=cart.store_id,
                    holder=str(self._cart_id),
                    lines={sku: qty},
                    now=now,
                    hold_s=self._soft_hold_s,
                    over=("MOVED",),  # the checkout's mark: the cart is the customer's again
                )
            except InsufficientStock:
                continue  # taken meanwhile: the cart view shows what is still held


async def checkout(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    gateway: PaymentGateway,
    settings: Settings,
    user: User,
    cart_id: uuid.UUID,
    body: CheckoutRequest,
    order_id: uuid.UUID,
    now: datetime,
    claim: Claim | None = None,
    catalog: Catalog | None = None,
) -> CheckoutOutcome:
    """Buy the cart as order ``order_id``: the order is CONFIRMED (or PLACED while the
    payment is pending), or the payment was declined (the order cancelled, its items put
    back). ``catalog``: where the lines are priced (``priced_lines``)."""
    source = CartSource(
        redis,
        user=user,
        cart_id=cart_id,
        soft_hold_s=settings.soft_hold_s,
        retention_s=settings.reservation_retention_s,
        catalog=catalog,
    )
    return await flows.checkout(
        sessions,
        redis,
        source=source,
        gateway=gateway,
        settings=settings,
        user=user,
        address=body.address,
        order_id=order_id,
        now=now,
        claim=claim,
    )
