"""Carts: a store-bound basket whose lines are soft reservations (10-minute holds).

Checkout converts them into a hard hold moved to the new order, places the order and
starts the payment; the payment outcome confirms or cancels it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.catalog.pricing import cart_totals
from server.identity.models import User
from server.inventory import service as inventory
from server.inventory.errors import HoldNotActive, InsufficientStock, UnknownSku
from server.kit.config import Settings
from server.kit.db import transaction
from server.kit.errors import Conflict, NotFound, Unprocessable
from server.orders import service as orders
from server.orders.checkout import charge_order, payment_failed, require_checkout_possible
from server.orders.models import Cart, Order
from server.payments.breaker import PaymentUnavailable
from server.payments.gateway import PaymentGateway
from server.payments.models import Payment
from server.stores.models import DarkStore
from shared.enums import OrderStatus
from shared.geo import LatLng
from shared.schemas import CartLine, CartPublic, CheckoutRequest


class CartExpired(Conflict):
    code, title = "cart_expired", "The cart's holds ran out"


async def create_cart(session: AsyncSession, *, user: User, store_id: str, now: datetime) -> Cart:
    store = await session.get(DarkStore, store_id)
    if store is None:
        raise NotFound(f"no store {store_id}", code="store_not_found")
    if not store.is_operational:
        raise Conflict(f"{store_id} is not taking orders right now", code="store_paused")
    cart = Cart(user_id=user.id, store_id=store_id, created_at=now, updated_at=now)
    session.add(cart)
    await session.flush()
    return cart


async def get_cart(
    session: AsyncSession, *, cart_id: uuid.UUID, user: User, for_update: bool = False
) -> Cart:
    cart = await session.get(Cart, cart_id, with_for_update=for_update)
    if cart is None or cart.user_id != user.id:
        raise NotFound("no such cart", code="cart_not_found")
    return cart


_LINES = text("""
    SELECT r.sku_id, p.name, p.pack_size, r.quantity, sp.selling_price_paise, p.mrp_paise,
           r.expires_at
    FROM inventory_reservations r
    JOIN products p ON p.sku_id = r.sku_id
    JOIN store_prices sp ON sp.store_id = r.store_id AND sp.sku_id = r.sku_id
    WHERE r.store_id = :store AND r.order_id = :holder AND r.status = 'SOFT'
      AND r.quantity > 0
    ORDER BY r.sku_id""")


async def cart_view(
    session: AsyncSession, *, cart: Cart, now: datetime, dropped: list[str] | None = None
) -> CartPublic:
    rows = list(
        await session.exec(
            _LINES,
            params={  # type: ignore[call-overload]
                "store": cart.store_id,
                "holder": str(cart.cart_id),
            },
        )
    )
    lines = [
        CartLine(
            sku_id=r[0],
            name=r[1],
            pack_size=r[2],
            quantity=r[3],
            unit_price_paise=r[4],
            mrp_paise=r[5],
            line_total_paise=r[3] * r[4],
        )
        for r in rows
    ]
    expires = min((r[6] for r in rows), default=None)
    status = cart.status
    if status == "ACTIVE" and not rows and await _had_expired_lines(session, cart):
        status = "EXPIRED"
    totals = cart_totals([(ln.unit_price_paise, ln.mrp_paise, ln.quantity) for ln in lines])
    return CartPublic(
        cart_id=cart.cart_id,
        store_id=cart.store_id,
        status=status,
        lines=lines,
        hold_expires_at=expires,
        hold_seconds_left=max(0, int((expires - now).total_seconds())) if expires else None,
        subtotal_paise=totals.subtotal_paise,
        delivery_fee_paise=totals.delivery_fee_paise,
        handling_fee_paise=totals.handling_fee_paise,
        discount_paise=totals.discount_paise,
        total_paise=totals.total_paise,
        dropped=dropped or [],
    )


async def _had_expired_lines(session: AsyncSession, cart: Cart) -> bool:
    found = (
        await session.exec(
            text(  # type: ignore[call-overload]
                "SELECT 1 FROM inventory_reservations WHERE store_id = :s AND order_id = :h "
                "AND status = 'EXPIRED' LIMIT 1"
            ),
            params={"s": cart.store_id, "h": str(cart.cart_id)},
        )
    ).first()
    return found is not None


def _require_active(cart: Cart) -> None:
    if cart.status != "ACTIVE":
        raise Conflict("this cart was checked out; start a new one", code="cart_checked_out")


async def set_line(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    cart: Cart,
    sku_id: str,
    quantity: int,
    now: datetime,
    hold_s: int,
) -> None:
    _require_active(cart)
    try:
        await inventory.reserve_lines(
            session,
            redis,
            store_id=cart.store_id,
            holder=str(cart.cart_id),
            lines={sku_id: quantity},
            now=now,
            hold_s=hold_s,
        )
    except HoldNotActive as exc:
        raise CartExpired("the cart's holds expired; start a new cart") from exc
    cart.updated_at = now
    session.add(cart)


async def switch_store(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    cart: Cart,
    store_id: str,
    now: datetime,
    hold_s: int,
) -> list[str]:
    """Move the cart to another store: old holds are released, each line is held again
    at the new store where it is in stock; returns the SKUs that could not move."""
    _require_active(cart)
    if store_id == cart.store_id:
        return []
    if await session.get(DarkStore, store_id) is None:
        raise NotFound(f"no store {store_id}", code="store_not_found")
    old = {
        r[0]: r[3]
        for r in await session.exec(
            _LINES,
            params={  # type: ignore[call-overload]
                "store": cart.store_id,
                "holder": str(cart.cart_id),
            },
        )
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
            )
        except (InsufficientStock, UnknownSku):
            dropped.append(sku)
    return dropped


async def checkout(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    gateway: PaymentGateway,
    settings: Settings,
    user: User,
    cart_id: uuid.UUID,
    body: CheckoutRequest,
    now: datetime,
) -> tuple[int, dict]:
    """Hard-reserve the cart, place the order, charge it, apply the outcome.

    Returns (HTTP status, body): 201 with the order (CONFIRMED, or PLACED while the
    payment is pending), or 402 when the payment failed (stock released, order cancelled).
    """
    order_id = uuid.uuid4()
    point = LatLng(body.address.lat, body.address.lng)
    async with transaction(sessions) as session:
        cart = await get_cart(session, cart_id=cart_id, user=user, for_update=True)
        _require_active(cart)
        lines = list(
            await session.exec(
                _LINES,
                params={  # type: ignore[call-overload]
                    "store": cart.store_id,
                    "holder": str(cart.cart_id),
                },
            )
        )
        if not lines:
            if await _had_expired_lines(session, cart):
                raise CartExpired("the cart's holds expired; start a new cart")
            raise Unprocessable("the cart is empty", code="cart_empty")
        await require_checkout_possible(
            session, redis, gateway=gateway, store_id=cart.store_id, point=point, now=now
        )
        await inventory.reserve_lines(
            session,
            redis,
            store_id=cart.store_id,
            holder=str(cart.cart_id),
            lines={r[0]: r[3] for r in lines},
            now=now,
            hold_s=settings.payment_window_s,
            mode="HARD",
            new_holder=str(order_id),
        )
        store = await session.get(DarkStore, cart.store_id)
        totals = cart_totals([(r[4], r[5], r[3]) for r in lines])
        order, payment = await orders.place_order(
            session,
            order_id=order_id,
            user=user,
            store_id=cart.store_id,
            city_id=store.city_id,
            cart_id=cart.cart_id,  # type: ignore[union-attr]
            lines=[(r[0], r[3], r[4], r[5]) for r in lines],
            totals=totals,
            address=body.address.model_dump(),
            lat=point.lat,
            lng=point.lng,
            now=now,
            sla_s=settings.sla_s,
        )
        cart.status, cart.updated_at = "CHECKED_OUT", now
        session.add(cart)
        payment_id, amount = payment.payment_id, payment.amount_paise
    held = {r[0]: r[3] for r in lines}
    try:
        result = await charge_order(
            gateway, payment_id=payment_id, order_id=order_id, amount_paise=amount, now=now
        )
    except PaymentUnavailable:
        await _undo_checkout(
            sessions,
            redis,
            user=user,
            cart_id=cart_id,
            order_id=order_id,
            lines=held,
            now=now,
            hold_s=settings.soft_hold_s,
        )
        raise
    async with transaction(sessions) as session:
        order = await session.get(Order, (cart.store_id, order_id), with_for_update=True)
        payment = await session.get(Payment, (cart.store_id, payment_id), with_for_update=True)
        await orders.apply_payment(
            session,
            redis,
            order=order,
            payment=payment,  # type: ignore[arg-type]
            status=result.status.value,
            provider_ref=result.provider_ref,
            failure_reason=result.failure_reason,
            now=now,
        )
        view = await orders.public(session, order)  # type: ignore[arg-type]
    if view.status == OrderStatus.CANCELLED:  # the payment was declined or failed
        return payment_failed(order_id, result, what_happened="the items were put back")
    return 201, view.model_dump(mode="json")


async def _undo_checkout(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    user: User,
    cart_id: uuid.UUID,
    order_id: uuid.UUID,
    lines: dict[str, int],
    now: datetime,
    hold_s: int,
) -> None:
    """The provider could not be asked (breaker, bulkhead): cancel the order, give the
    customer their cart back with its items held again, so a retry can succeed."""
    async with transaction(sessions) as session:
        order = (await session.exec(select(Order).where(Order.order_id == order_id))).one()
        await orders.cancel_order(
            session,
            redis,
            order=order,
            now=now,
            actor=user,
            reason="payment_unavailable",
            by_customer=False,
        )
        cart = await get_cart(session, cart_id=cart_id, user=user, for_update=True)
        cart.status, cart.updated_at = "ACTIVE", now
        session.add(cart)
        for sku, qty in lines.items():
            try:
                await inventory.reserve_lines(
                    session,
                    redis,
                    store_id=cart.store_id,
                    holder=str(cart_id),
                    lines={sku: qty},
                    now=now,
                    hold_s=hold_s,
                )
            except InsufficientStock:
                continue  # taken meanwhile: the cart view shows what is still held
