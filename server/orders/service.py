"""Orders: the state machine, placing an order, cancelling (checkout is in ``flows``,
what is shown of an order in ``views``).

Every state change goes through ``transition``: it checks the shared transition table,
stamps the state's timestamp, writes an ``order_events`` row and an outbox event in the
caller's transaction (the three in one statement: a checkout's round trips are counted,
``tests/server/orders/test_checkout_statements.py``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from psycopg import AsyncCursor
from sqlalchemy import func, text
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.catalog.models import Product
from server.catalog.pricing import Totals
from server.events.service import Event, dispatch, outbox_insert
from server.identity.models import User
from server.inventory import service as inventory
from server.kit import db
from server.kit.errors import Conflict, NotFound
from server.orders.models import Order, OrderDirectory, OrderEvent, OrderItem
from server.payments.models import Payment, Refund
from shared.enums import ItemStatus, Movement, OrderStatus, Role
from shared.states import CUSTOMER_CANCELLABLE, TIMESTAMP_COLUMN, can_transition


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "Not possible in the order's current state"


@dataclass(frozen=True)
class OrderLine:
    """One line of a new order, priced when it was bought."""

    sku_id: str
    quantity: int
    unit_price_paise: int
    mrp_paise: int


@dataclass(frozen=True)
class PaymentOutcome:
    """A charge's outcome written to the order's payment row."""

    payment_id: uuid.UUID
    status: str
    provider_ref: str | None
    failure_reason: str | None

    def params(self, store_id: str, now: datetime) -> dict[str, Any]:
        return {
            "store": store_id,
            "payment": self.payment_id,
            "pay_status": self.status,
            "pay_ref": self.provider_ref,
            "pay_reason": self.failure_reason,
            "now": now,
        }


_PAYMENT_SET = """UPDATE payments SET status = :pay_status, provider_ref = :pay_ref,
  failure_reason = :pay_reason, updated_at = :now
  WHERE store_id = :store AND payment_id = :payment"""
_PAYMENT_OUTCOME = text(_PAYMENT_SET)


async def record_payment(
    session: AsyncSession, *, store_id: str, outcome: PaymentOutcome, now: datetime
) -> None:
    """The outcome on its own (the order is not moving: ``transition`` writes it otherwise)."""
    await db.execute(session, _PAYMENT_OUTCOME, outcome.params(store_id, now))


async def transition(
    session: AsyncSession,
    *,
    order: Order,
    to: OrderStatus,
    now: datetime,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
    payment: PaymentOutcome | None = None,
) -> None:
    """Move the order to ``to``; ``payment``: the charge's outcome that moves it, written
    by the same statement (the payment shares the order's store: co-located)."""
    current = OrderStatus(order.status)
    if not can_transition(current, to):
        raise InvalidTransition(
            f"an order in {current} cannot move to {to}", current=current.value, target=to.value
        )
    # the row, its event and the outbox row in one statement (db.execute flushes the
    # caller's other changes first): the row's lock, held to commit, numbers one order's
    # events in commit order
    params = _status_params(
        store_id=order.store_id,
        order_id=order.order_id,
        came_from=current,
        to=to,
        now=now,
        actor_id=actor_id,
        reason=reason,
    ) | {"cancelling": to == OrderStatus.CANCELLED}
    if payment is None:
        written = await db.execute(session, _TRANSITION[to], params)
    else:
        written = await db.execute(
            session, _TRANSITION_PAID[to], params | payment.params(order.store_id, now)
        )
    # the object as the row now is (nothing left for a flush to write)
    set_committed_value(order, TIMESTAMP_COLUMN[to], now)
    set_committed_value(order, "status", to)
    if to == OrderStatus.CANCELLED:
        set_committed_value(order, "cancel_reason", reason)
    await dispatch(
        session,
        Event(ORDER_STATUS, await _payload(written), now, order.store_id, str(order.order_id)),
    )


ORDER_STATUS = "order.status"
# the order_events row, written after ``{after}`` (the order's row), and its outbox event
# (the row's id as the payload's ``sequence``): a tracking socket drops by it what its
# client already has
_STATUS_EVENT_CTE = """
    event AS (
      INSERT INTO order_events (store_id, order_id, from_status, to_status, at, actor_id,
        reason)
      SELECT :store, :order, :came_from, :to, :now, :actor, :reason FROM {after}
      RETURNING event_id)""" + outbox_insert(
    "event", merged="jsonb_build_object('sequence', event.event_id)"
)
_MOVED_CTE = """moved AS (
      UPDATE orders SET status = :to, {column} = :now, cancel_reason = CASE
        WHEN CAST(:cancelling AS boolean) THEN CAST(:reason AS varchar) ELSE cancel_reason END
      WHERE store_id = :store AND order_id = :order
      RETURNING order_id),"""
_TRANSITION = {
    status: text(f"""
    WITH {_MOVED_CTE.format(column=column)}
    {_STATUS_EVENT_CTE.format(after="moved")}""")
    for status, column in TIMESTAMP_COLUMN.items()
}
# the same with the payment's outcome that moves the order (a round trip less a charge)
_TRANSITION_PAID = {
    status: text(f"""
    WITH paid AS ({_PAYMENT_SET}),
    {_MOVED_CTE.format(column=column)}
    {_STATUS_EVENT_CTE.format(after="moved")}""")
    for status, column in TIMESTAMP_COLUMN.items()
}


def _status_params(
    *,
    store_id: str,
    order_id: uuid.UUID,
    came_from: OrderStatus | None,
    to: OrderStatus,
    now: datetime,
    actor_id: uuid.UUID | None,
    reason: str | None,
) -> dict[str, Any]:
    payload = {
        "order_id": str(order_id),
        "store_id": store_id,
        "from": came_from.value if came_from else None,
        "status": to.value,
        "at": now.isoformat(),
        "reason": reason,
    }
    return {
        "store": store_id,
        "order": order_id,
        "came_from": came_from.value if came_from else None,
        "to": to.value,
        "now": now,
        "actor": actor_id,
        "reason": reason,
        "topic": ORDER_STATUS,
        "aggregate": str(order_id),
        "payload": json.dumps(payload),
    }


async def latest_sequence(session: AsyncSession, *, order_id: uuid.UUID) -> int:
    """The ``sequence`` of the order's newest state change (0 before any)."""
    newest = await session.exec(
        select(func.max(OrderEvent.event_id)).where(OrderEvent.order_id == order_id)
    )
    return newest.one() or 0


async def get_order(
    session: AsyncSession, *, order_id: uuid.UUID, viewer: User, for_update: bool = False
) -> Order:
    """An order the viewer may see; others' orders are 404 (existence is not leaked)."""
    store_id = await store_of_order(session, order_id=order_id)
    query = select(Order).where(Order.store_id == store_id, Order.order_id == order_id)
    if for_update:
        query = query.with_for_update()
    order = (await session.exec(query)).first()
    if order is None or not _may_view(order, viewer):
        raise NotFound("no such order", code="order_not_found")
    return order


async def store_of_order(session: AsyncSession, *, order_id: uuid.UUID) -> str | None:
    """The store holding the order, from ``order_directory`` (None: no such order), so a
    lookup by order id reads one store's rows (one shard on Citus)."""
    found = await session.exec(
        select(OrderDirectory.store_id).where(OrderDirectory.order_id == order_id)
    )
    return found.first()


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


# an order, its items, its pending payment and its first state in one statement
_PLACE = text(f"""
    WITH placed AS (
      INSERT INTO orders (store_id, order_id, user_id, city_id, cart_id, status, currency,
        subtotal_paise, delivery_fee_paise, handling_fee_paise, discount_paise,
        total_amount_paise, delivery_address, delivery_lat, delivery_lng, sla_deadline,
        promised_at, placed_at)
      VALUES (:store, :order, :actor, :city, :cart, :to, :currency, :subtotal,
        :delivery_fee, :handling_fee, :discount, :total, CAST(:address AS jsonb), :lat,
        :lng, :sla, :promised, :now)
      RETURNING order_id),
    items AS (
      INSERT INTO order_items (store_id, order_id, sku_id, quantity, ordered_qty,
        unit_price_paise, mrp_paise, status, picked_qty)
      SELECT :store, :order, sku, qty, qty, price, mrp, :item_status, 0
      FROM unnest(CAST(:skus AS text[]), CAST(:qtys AS int[]), CAST(:prices AS int[]),
        CAST(:mrps AS int[])) AS line(sku, qty, price, mrp)),
    payment AS (
      INSERT INTO payments (store_id, payment_id, order_id, amount_paise, currency, status,
        created_at, updated_at)
      VALUES (:store, :payment, :order, :total, :currency, 'PENDING', :now, :now)),
    {_STATUS_EVENT_CTE.format(after="placed")}""")


async def place_order(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    user: User,
    store_id: str,
    city_id: str,
    cart_id: uuid.UUID | None,
    lines: list[OrderLine],
    totals: Totals,
    address: dict[str, Any],
    lat: float,
    lng: float,
    now: datetime,
    sla_s: int,
    promised_at: datetime | None = None,
) -> uuid.UUID:
    """Insert the order (PLACED), its items and a pending payment (whose id is returned).
    The caller has already hard-reserved the stock."""
    payment_id = uuid.uuid4()
    params = _status_params(
        store_id=store_id,
        order_id=order_id,
        came_from=None,
        to=OrderStatus.PLACED,
        now=now,
        actor_id=user.id,
        reason=None,
    )
    written = await db.execute(
        session,
        _PLACE,
        params
        | {
            "city": city_id,
            "cart": cart_id,
            "currency": "INR",
            "subtotal": totals.subtotal_paise,
            "delivery_fee": totals.delivery_fee_paise,
            "handling_fee": totals.handling_fee_paise,
            "discount": totals.discount_paise,
            "total": totals.total_paise,
            "address": json.dumps(address),
            "lat": lat,
            "lng": lng,
            "sla": now + timedelta(seconds=sla_s),
            "promised": promised_at,
            "item_status": ItemStatus.PENDING.value,
            "skus": [line.sku_id for line in lines],
            "qtys": [line.quantity for line in lines],
            "prices": [line.unit_price_paise for line in lines],
            "mrps": [line.mrp_paise for line in lines],
            "payment": payment_id,
        },
    )
    event = Event(ORDER_STATUS, await _payload(written), now, store_id, str(order_id))
    await dispatch(session, event)
    # the directory is laid out by order id (Citus), apart from the store's rows
    await db.execute(session, _DIRECTORY, {"order": order_id, "store": store_id})
    return payment_id


_DIRECTORY = text("INSERT INTO order_directory (order_id, store_id) VALUES (:order, :store)")


async def _payload(written: AsyncCursor[Any]) -> Any:
    """The outbox payload a statement returned (its one row)."""
    row = await written.fetchone()
    assert row is not None
    return row[0]


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
    await session.execute(
        text("UPDATE order_items SET status = :s WHERE store_id = :st AND order_id = :o"),
        {"s": ItemStatus.CANCELLED.value, "st": order.store_id, "o": order.order_id},
    )
    # a cancelled order leaves the pick queue
    await session.execute(
        text(
            "UPDATE pick_tasks SET status = 'CANCELLED' WHERE store_id = :st AND order_id = :o "
            "AND status IN ('WAITING', 'PICKING')"
        ),
        {"st": order.store_id, "o": order.order_id},
    )


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
        await _refund_the_rest(session, order=order, paid=paid, reason="order_cancelled", now=now)


# the cold chain of these categories breaks on a failed trip: the units cannot be sold again
CHILLED_CATEGORIES = frozenset({"dairy-bread-eggs", "meat-fish"})


async def take_back_undelivered(
    session: AsyncSession, redis: aioredis.Redis, *, order: Order, now: datetime, actor: User
) -> None:
    """A bag the rider could not deliver comes back to the store, and the money goes back.

    Every unit in the bag (its picked units) is booked back into the store through the
    inventory engine (Redis and PostgreSQL), as a RETURN movement: a product of a chilled
    category (``CHILLED_CATEGORIES``: dairy, meat and fish, out of the cold chain on the
    trip) comes back DAMAGED (to be written off), any other, sealed and sellable, back to
    available. The customer is owed what they paid less what is already owed back (short
    picks)."""
    bag = (
        await session.exec(
            select(OrderItem, Product.category_id)
            .join(Product, col(Product.sku_id) == col(OrderItem.sku_id))
            .where(
                OrderItem.store_id == order.store_id,
                OrderItem.order_id == order.order_id,
                col(OrderItem.picked_qty) > 0,
            )
            .order_by(col(OrderItem.sku_id))
        )
    ).all()
    for item, category in bag:
        chilled = category in CHILLED_CATEGORIES
        await inventory.move_stock(
            session,
            redis,
            store_id=order.store_id,
            sku_id=item.sku_id,
            movement=Movement.RETURN,
            now=now,
            d_available=0 if chilled else item.picked_qty,
            d_damaged=item.picked_qty if chilled else 0,
            reference=str(order.order_id),
            actor_id=actor.id,
            reason="delivery failed: chilled, back damaged" if chilled else "delivery failed",
        )
    paid = (
        await session.exec(
            select(Payment).where(Payment.order_id == order.order_id, Payment.status == "SUCCEEDED")
        )
    ).first()
    if paid is not None:
        await _refund_the_rest(session, order=order, paid=paid, reason="delivery_failed", now=now)


async def _refund_the_rest(
    session: AsyncSession, *, order: Order, paid: Payment, reason: str, now: datetime
) -> None:
    """Owe back what was paid less what the order's refunds already return (short lines,
    paid out or waiting to be): never twice. A line's refund held for the customer's
    answer is voided when its offer closes on the ended order, so it is not counted."""
    owed = (
        await session.exec(
            select(func.coalesce(func.sum(Refund.amount_paise), 0)).where(
                Refund.store_id == order.store_id,
                Refund.order_id == order.order_id,
                col(Refund.status).in_(("PENDING", "SUCCEEDED")),
            )
        )
    ).one()
    if paid.amount_paise > owed:
        owe_refund(
            session, order=order, amount_paise=paid.amount_paise - owed, reason=reason, now=now
        )


def owe_refund(
    session: AsyncSession, *, order: Order, amount_paise: int, reason: str, now: datetime
) -> None:
    """Record the money the customer gets back (the provider is paid out elsewhere)."""
    session.add(
        Refund(
            store_id=order.store_id,
            order_id=order.order_id,
            amount_paise=amount_paise,
            reason=reason,
            created_at=now,
        )
    )
