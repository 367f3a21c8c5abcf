"""Orders: the state machine, placing an order from a cart, payment outcomes, cancelling.

Every state change goes through ``transition``: it checks the shared transition table,
stamps the state's timestamp, writes an ``order_events`` row and an outbox event in the
caller's transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.events.service import emit
from server.identity.models import User
from server.inventory import service as inventory
from server.kit.errors import Conflict, NotFound
from server.orders.models import Order, OrderEvent, OrderItem
from server.payments.models import Payment, Refund
from shared.enums import ItemStatus, Movement, OrderStatus, Role
from shared.schemas import OrderItemPublic, OrderPublic
from shared.states import CUSTOMER_CANCELLABLE, TIMESTAMP_COLUMN, can_transition


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "Not possible in the order's current state"


async def transition(
    session: AsyncSession,
    *,
    order: Order,
    to: OrderStatus,
    now: datetime,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
) -> None:
    current = OrderStatus(order.status)
    if not can_transition(current, to):
        raise InvalidTransition(
            f"an order in {current} cannot move to {to}", current=current.value, target=to.value
        )
    setattr(order, TIMESTAMP_COLUMN[to], now)
    order.status = to
    if to == OrderStatus.CANCELLED:
        order.cancel_reason = reason
    session.add(order)
    session.add(
        OrderEvent(
            store_id=order.store_id,
            order_id=order.order_id,
            from_status=current,
            to_status=to,
            at=now,
            actor_id=actor_id,
            reason=reason,
        )
    )
    await emit(
        session,
        topic="order.status",
        store_id=order.store_id,
        aggregate_id=str(order.order_id),
        now=now,
        payload={
            "order_id": str(order.order_id),
            "store_id": order.store_id,
            "from": current.value,
            "status": to.value,
            "at": now.isoformat(),
            "reason": reason,
        },
    )


async def get_order(
    session: AsyncSession, *, order_id: uuid.UUID, viewer: User, for_update: bool = False
) -> Order:
    """An order the viewer may see; others' orders are 404 (existence is not leaked)."""
    query = select(Order).where(Order.order_id == order_id)
    if for_update:
        query = query.with_for_update()
    order = (await session.exec(query)).first()
    if order is None or not _may_view(order, viewer):
        raise NotFound("no such order", code="order_not_found")
    return order


def _may_view(order: Order, viewer: User) -> bool:
    if viewer.role == Role.ADMIN:
        return True
    if viewer.role == Role.CUSTOMER:
        return order.user_id == viewer.id
    if viewer.role == Role.MANAGER:
        return order.city_id == viewer.city_id
    if viewer.role == Role.PICKER:
        return order.store_id == viewer.store_id
    return viewer.role == Role.RIDER and order.rider_id == viewer.id


async def list_orders(
    session: AsyncSession, *, user: User, limit: int, before: datetime | None
) -> list[Order]:
    query = select(Order).where(Order.user_id == user.id)
    if before is not None:
        query = query.where(col(Order.placed_at) < before)
    return list(
        (await session.exec(query.order_by(col(Order.placed_at).desc()).limit(limit))).all()
    )


async def public(session: AsyncSession, order: Order, *, show_otp: bool = False) -> OrderPublic:
    items = (
        await session.exec(
            select(OrderItem)
            .where(OrderItem.store_id == order.store_id, OrderItem.order_id == order.order_id)
            .order_by(col(OrderItem.sku_id))
        )
    ).all()
    times = {
        s.value: getattr(order, col_name)
        for s, col_name in TIMESTAMP_COLUMN.items()
        if getattr(order, col_name) is not None
    }
    return OrderPublic(
        order_id=order.order_id,
        store_id=order.store_id,
        status=order.status,
        items=[OrderItemPublic.model_validate(i) for i in items],
        subtotal_paise=order.subtotal_paise,
        delivery_fee_paise=order.delivery_fee_paise,
        handling_fee_paise=order.handling_fee_paise,
        discount_paise=order.discount_paise,
        total_amount_paise=order.total_amount_paise,
        currency=order.currency,
        cancel_reason=order.cancel_reason,
        placed_at=order.placed_at,
        sla_deadline=order.sla_deadline,
        status_times=times,
        rider_id=order.rider_id,
        delivery_otp=order.delivery_otp if show_otp else None,
    )


async def place_order(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    user: User,
    store_id: str,
    city_id: str,
    cart_id: uuid.UUID,
    lines: list[tuple[str, int, int, int]],
    totals: object,
    address: dict,
    lat: float,
    lng: float,
    now: datetime,
    sla_s: int,
) -> tuple[Order, Payment]:
    """Insert the order (PLACED), its items and a pending payment. ``lines``: (sku,
    qty, unit price, MRP). The caller has already hard-reserved the stock."""
    t = totals
    order = Order(
        store_id=store_id,
        order_id=order_id,
        user_id=user.id,
        city_id=city_id,
        cart_id=cart_id,
        status=OrderStatus.PLACED,
        subtotal_paise=t.subtotal_paise,
        delivery_fee_paise=t.delivery_fee_paise,  # type: ignore[attr-defined]
        handling_fee_paise=t.handling_fee_paise,
        discount_paise=t.discount_paise,  # type: ignore[attr-defined]
        total_amount_paise=t.total_paise,
        delivery_address=address,  # type: ignore[attr-defined]
        delivery_lat=lat,
        delivery_lng=lng,
        placed_at=now,
        sla_deadline=now + timedelta(seconds=sla_s),
    )
    session.add(order)
    for sku, qty, price, mrp in lines:
        session.add(
            OrderItem(
                store_id=store_id,
                order_id=order_id,
                sku_id=sku,
                quantity=qty,
                ordered_qty=qty,
                unit_price_paise=price,
                mrp_paise=mrp,
            )
        )
    session.add(
        OrderEvent(
            store_id=store_id,
            order_id=order_id,
            from_status=None,
            to_status=OrderStatus.PLACED,
            at=now,
            actor_id=user.id,
        )
    )
    await emit(
        session,
        topic="order.status",
        store_id=store_id,
        aggregate_id=str(order_id),
        now=now,
        payload={
            "order_id": str(order_id),
            "store_id": store_id,
            "from": None,
            "status": OrderStatus.PLACED.value,
            "at": now.isoformat(),
            "reason": None,
        },
    )
    payment = Payment(
        store_id=store_id,
        order_id=order_id,
        amount_paise=t.total_paise,  # type: ignore[attr-defined]
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    await session.flush()
    return order, payment


async def apply_payment(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    order: Order,
    payment: Payment,
    status: str,
    provider_ref: str | None,
    failure_reason: str | None,
    now: datetime,
) -> None:
    """Apply a charge outcome once: SUCCEEDED commits the stock and confirms the order;
    FAILED releases it and cancels. A second report of an applied outcome changes nothing.
    """
    if payment.status != "PENDING" or status == "PENDING":
        return
    payment.status, payment.provider_ref = status, provider_ref
    payment.failure_reason, payment.updated_at = failure_reason, now
    session.add(payment)
    holder = str(order.order_id)
    if order.status != OrderStatus.PLACED:
        # the order was cancelled (timeout, customer) before the money arrived: give it back
        if status == "SUCCEEDED":
            session.add(
                Refund(
                    store_id=order.store_id,
                    order_id=order.order_id,
                    amount_paise=payment.amount_paise,
                    reason="order_cancelled",
                    created_at=now,
                )
            )
        return
    if status == "SUCCEEDED":
        settled = await inventory.settle_hold(
            session, redis, store_id=order.store_id, holder=holder, outcome="COMMITTED", now=now
        )
        if settled.status != "OK":
            # the hold ran out before the money arrived: never confirm unheld stock
            session.add(
                Refund(
                    store_id=order.store_id,
                    order_id=order.order_id,
                    amount_paise=payment.amount_paise,
                    reason="hold_expired",
                    created_at=now,
                )
            )
            await transition(
                session, order=order, to=OrderStatus.CANCELLED, now=now, reason="hold_expired"
            )
            return
        await transition(session, order=order, to=OrderStatus.CONFIRMED, now=now)
        from server.picking.service import enqueue  # picking builds on orders, not back

        await enqueue(session, order=order, now=now)
    else:
        await inventory.settle_hold(
            session,
            redis,
            store_id=order.store_id,
            holder=holder,
            outcome="RELEASED",
            now=now,
            reason="payment_failed",
        )
        await transition(
            session,
            order=order,
            to=OrderStatus.CANCELLED,
            now=now,
            reason=f"payment_failed: {failure_reason or 'declined'}",
        )


async def cancel_order(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    order: Order,
    now: datetime,
    actor: User,
    reason: str,
    by_customer: bool,
) -> None:
    """Cancel with the stock returned: a held order releases its hold; a paid one returns
    the committed units to the shelf and owes a refund."""
    if by_customer and order.status not in CUSTOMER_CANCELLABLE:
        raise Conflict(
            "picking has started; the order can no longer be cancelled",
            code="too_late_to_cancel",
            status_now=order.status,
        )
    if order.status == OrderStatus.PLACED:
        await inventory.settle_hold(
            session,
            redis,
            store_id=order.store_id,
            holder=str(order.order_id),
            outcome="RELEASED",
            now=now,
            actor_id=actor.id,
            reason=reason,
        )
    else:
        await _return_committed_units(session, redis, order=order, now=now, actor=actor)
    await transition(
        session, order=order, to=OrderStatus.CANCELLED, now=now, actor_id=actor.id, reason=reason
    )
    await session.exec(
        text("UPDATE order_items SET status = :s WHERE store_id = :st AND order_id = :o"),  # type: ignore[call-overload]
        params={"s": ItemStatus.CANCELLED.value, "st": order.store_id, "o": order.order_id},
    )
    # a cancelled order leaves the pick queue
    await session.exec(
        text(
            "UPDATE pick_tasks SET status = 'CANCELLED' WHERE store_id = :st AND order_id = :o "
            "AND status IN ('WAITING', 'PICKING')"
        ),  # type: ignore[call-overload]
        params={"st": order.store_id, "o": order.order_id},
    )


async def cancel_unpaid(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    now: datetime,
    window_s: int,
    actor: User | None = None,
) -> int:
    """PLACED orders whose payment never settled within the window are cancelled and their
    hold released (a crash between placing and paying must not leave them forever)."""
    stale = (
        await session.exec(
            select(Order)
            .where(
                Order.status == OrderStatus.PLACED,
                col(Order.placed_at) < now - timedelta(seconds=window_s),
            )
            .with_for_update(skip_locked=True)
            .limit(100)
        )
    ).all()
    for order in stale:
        await inventory.settle_hold(
            session,
            redis,
            store_id=order.store_id,
            holder=str(order.order_id),
            outcome="RELEASED",
            now=now,
            reason="payment_timeout",
        )
        await transition(
            session, order=order, to=OrderStatus.CANCELLED, now=now, reason="payment_timeout"
        )
    return len(stale)


async def _return_committed_units(
    session: AsyncSession, redis: aioredis.Redis, *, order: Order, now: datetime, actor: User
) -> None:
    items = (
        await session.exec(
            select(OrderItem).where(
                OrderItem.store_id == order.store_id, OrderItem.order_id == order.order_id
            )
        )
    ).all()
    for item in items:
        back = (
            item.quantity - item.picked_qty
            if order.status != OrderStatus.CONFIRMED
            else item.quantity
        )
        if back > 0:
            await inventory.move_stock(
                session,
                redis,
                store_id=order.store_id,
                sku_id=item.sku_id,
                movement=Movement.RETURN,
                now=now,
                d_available=back,
                reference=str(order.order_id),
                actor_id=actor.id,
                reason="order cancelled",
            )
    paid = (
        await session.exec(
            select(Payment).where(Payment.order_id == order.order_id, Payment.status == "SUCCEEDED")
        )
    ).first()
    if paid is not None:
        session.add(
            Refund(
                store_id=order.store_id,
                order_id=order.order_id,
                amount_paise=paid.amount_paise,
                reason="order_cancelled",
                created_at=now,
            )
        )
