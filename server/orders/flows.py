"""Checkout: the one workflow spanning orders, inventory, payments and picking.

A cart's checkout and a flash sale's share this skeleton; what they buy from (a
``CheckoutSource``) differs:

1. one transaction: the request's Idempotency-Key claimed (under ``run_once``), the
   source is locked and checked, the store must deliver to the address and the payment
   breaker must not be open, the source's hold moves to the new order (HARD, for the
   payment window), the order is PLACED with a pending payment;
2. the charge, outside any transaction (the order id is the provider's idempotency key);
3. one transaction applying the charge's outcome (``apply_payment``, which the webhook
   uses too): paid, the stock is committed, the order CONFIRMED and queued for picking;
   declined, the stock goes back and the order is CANCELLED; the key's answer is stored.

When the provider could not be asked at all (breaker, bulkhead), a compensating
transaction drops the key's claim, cancels the order and gives the source its hold back,
so a retry starts afresh; unless a retry has taken the claim over meanwhile (this request
ran past ``ABANDONED_AFTER``): the order is the retry's to resume then, and nothing is
undone (``Claim.release``).

The caller names the order (``order_id``): a retry of a checkout that crashed (or was
answered 5xx) after placing it names the same order, never a second one, and resumes it:
the charge is asked again under the order's key (the provider answers the first charge,
or makes it now) and its outcome applied. A charge whose outcome nobody retries is
settled by the payment-timeout sweep (``orders/unpaid.py``), which asks the provider
once the payment window has passed: the money either confirms the order or goes back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.catalog.pricing import Totals
from server.idempotency.service import Claim
from server.identity.models import User
from server.inventory import service as inventory
from server.inventory.errors import HoldChanged
from server.kit import db
from server.kit.cache import TTLCache
from server.kit.config import Settings
from server.kit.db import transaction
from server.orders import service as orders
from server.orders import views
from server.orders.models import Order
from server.orders.service import OrderLine
from server.payments.breaker import CircuitOpen, PaymentUnavailable
from server.payments.gateway import PaymentGateway
from server.payments.models import Payment
from server.payments.provider import ChargeResult
from server.picking.service import enqueue as enqueue_picking
from server.stores.models import DarkStore
from server.stores.selection import Candidate, require_serviceable
from shared.enums import OrderStatus
from shared.geo import LatLng
from shared.schemas.orders import DeliveryAddress, OrderPublic

UNANSWERED = "timeout"  # the gateway's failure_reason when the provider did not answer


@dataclass(frozen=True)
class CheckoutPlaced:
    """The order stands: CONFIRMED when paid, PLACED while the payment is pending (or, to
    a retry after a crash, as it is now)."""

    order: OrderPublic


@dataclass(frozen=True)
class PaymentDeclined:
    """The payment failed: nothing was charged, the order is cancelled, its stock went back."""

    order_id: uuid.UUID
    failure_reason: str | None


CheckoutOutcome = CheckoutPlaced | PaymentDeclined


@dataclass(frozen=True)
class Purchase:
    """What a source sells: its held lines at one store, priced."""

    store_id: str
    holder: str  # the reservation-engine holder whose hold moves to the order
    lines: list[OrderLine]
    totals: Totals
    cart_id: uuid.UUID | None = None
    hold_actor: uuid.UUID | None = None  # recorded on the hold's move to the order


class CheckoutSource:
    """Where a checkout's stock is held (a cart, a flash-sale slot). Each hook runs in the
    flow's transaction of its step. Subclasses implement ``open`` and ``placed``; the
    other hooks do nothing unless overridden."""

    async def open(self, session: AsyncSession, *, now: datetime) -> Purchase:
        """Lock the source and check it can be bought now (a DomainError if not)."""
        raise NotImplementedError

    async def reprice(self, session: AsyncSession, *, now: datetime) -> Purchase:
        """The opened source's hold changed before it moved to the order (a cart's line
        changes take no lock): what it sells now. By default it is opened again."""
        return await self.open(session, now=now)

    async def placed(self, session: AsyncSession, *, order_id: uuid.UUID, now: datetime) -> None:
        """The order holds the stock now: the source is being paid."""
        raise NotImplementedError

    async def take_back(self, session: AsyncSession, *, order: Order, now: datetime) -> None:
        """The provider could not be asked; before the order is cancelled (which releases
        what it still holds), the source may take the order's hold back."""

    async def reopen(self, session: AsyncSession, *, now: datetime) -> None:
        """After that cancel: the source can be bought again."""

    async def charged(
        self,
        session: AsyncSession,
        *,
        order: Order,
        payment: Payment,
        result: ChargeResult,
        now: datetime,
    ) -> None:
        """The charge answered; its outcome is applied to the order next."""

    async def settled(
        self, session: AsyncSession, *, order: Order, result: ChargeResult, now: datetime
    ) -> None:
        """The outcome was applied (the order is CONFIRMED, CANCELLED or still PLACED)."""


async def checkout(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    source: CheckoutSource,
    gateway: PaymentGateway,
    settings: Settings,
    user: User,
    address: DeliveryAddress,
    order_id: uuid.UUID,
    now: datetime,
    claim: Claim | None = None,
) -> CheckoutOutcome:
    """Place order ``order_id`` from the source's hold, charge it, apply the outcome. A
    retry after a crash finds the order: settled, it is answered as it is; still unpaid,
    the charge is asked again under the same key (the provider answers the first one, or
    makes it now) and its outcome applied. Raises ``PaymentUnavailable`` when the provider
    could not be asked (a new order is compensated first; a resumed one stays unpaid)."""
    point = LatLng(address.lat, address.lng)
    async with transaction(sessions) as session:
        fresh = claim is not None and await claim.take(session, attempt_id=order_id)
        earlier = None if fresh else await _placed_earlier(session, order_id=order_id)
        if isinstance(earlier, CheckoutPlaced | PaymentDeclined):
            if claim is not None:
                await claim.answer(session, earlier)
            return earlier
        unpaid = earlier or await _place(
            session,
            redis,
            source=source,
            settings=settings,
            gateway=gateway,
            user=user,
            address=address,
            point=point,
            order_id=order_id,
            now=now,
        )
    resumed = earlier is not None
    try:
        # one charge per order: the order id is the provider's idempotency key
        result = await gateway.charge(
            payment_id=str(unpaid.payment_id),
            order_id=str(order_id),
            amount_paise=unpaid.amount_paise,
            currency="INR",
            idempotency_key=str(order_id),
            now=now.timestamp(),
        )
    except PaymentUnavailable:
        if not resumed:
            await _give_back(
                sessions,
                redis,
                source=source,
                unpaid=unpaid,
                order_id=order_id,
                user=user,
                now=now,
                claim=claim,
            )
        raise
    # a refusal from here on (a store being reloaded: 503) leaves the order placed and
    # charged: the key's claim is kept (``run_once``) and a retry resumes it
    return await _applied(
        sessions,
        redis,
        source=None if resumed else source,
        unpaid=unpaid,
        order_id=order_id,
        result=result,
        now=now,
        claim=claim,
    )


@dataclass(frozen=True)
class _Unpaid:
    """A PLACED order whose charge's outcome is not applied yet; ``lines`` as ordered when
    this request placed it (None: an earlier attempt did)."""

    store_id: str
    payment_id: uuid.UUID
    amount_paise: int
    lines: list[OrderLine] | None = None


async def _move_hold(
    session: AsyncSession,
    redis: aioredis.Redis,
    purchase: Purchase,
    *,
    order_id: uuid.UUID,
    now: datetime,
    settings: Settings,
) -> None:
    """The purchase's hold, exactly as priced, becomes the order's (HARD, for the payment
    window); ``HoldChanged`` if it is not the hold's any more."""
    await inventory.reserve_lines(
        session,
        redis,
        store_id=purchase.store_id,
        holder=purchase.holder,
        lines={line.sku_id: line.quantity for line in purchase.lines},
        now=now,
        hold_s=settings.payment_window_s,
        mode="HARD",
        new_holder=str(order_id),
        actor_id=purchase.hold_actor,
    )


async def _place(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    source: CheckoutSource,
    settings: Settings,
    gateway: PaymentGateway,
    user: User,
    address: DeliveryAddress,
    point: LatLng,
    order_id: uuid.UUID,
    now: datetime,
) -> _Unpaid:
    """Step 1: the source's hold moves to the new order, PLACED with a pending payment."""
    purchase = await source.open(session, now=now)
    promise = await _require_checkout_possible(
        session,
        gateway=gateway,
        settings=settings,
        store_id=purchase.store_id,
        point=point,
        now=now,
    )
    try:
        await _move_hold(session, redis, purchase, order_id=order_id, now=now, settings=settings)
    except HoldChanged:  # a line changed since the source was read: read it again, once
        purchase = await source.reprice(session, now=now)
        await _move_hold(session, redis, purchase, order_id=order_id, now=now, settings=settings)
    payment_id = await orders.place_order(
        session,
        order_id=order_id,
        user=user,
        store_id=purchase.store_id,
        city_id=await _city_of(session, purchase.store_id),
        cart_id=purchase.cart_id,
        lines=purchase.lines,
        totals=purchase.totals,
        address=address.model_dump(),
        lat=point.lat,
        lng=point.lng,
        now=now,
        sla_s=settings.sla_s,
        promised_at=now + timedelta(minutes=promise.eta_min),
    )
    await source.placed(session, order_id=order_id, now=now)
    return _Unpaid(purchase.store_id, payment_id, purchase.totals.total_paise, purchase.lines)


async def _give_back(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    source: CheckoutSource,
    unpaid: _Unpaid,
    order_id: uuid.UUID,
    user: User,
    now: datetime,
    claim: Claim | None,
) -> None:
    """The provider could not be asked: the order is cancelled, the source gets its hold
    back and the key's claim goes with them, so a retry starts afresh. The claim first:
    one a retry took over (it resumes this order, perhaps charged by now) refuses, and
    nothing is undone."""
    async with transaction(sessions) as session:
        if claim is not None:
            await claim.release(session)
        order = await session.get(Order, (unpaid.store_id, order_id))
        assert order is not None  # placed in step 1
        await source.take_back(session, order=order, now=now)
        await orders.cancel_order(
            session,
            redis,
            order=order,
            now=now,
            actor=user,
            reason="payment_unavailable",
            by_customer=False,
        )
        await source.reopen(session, now=now)


async def _applied(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    source: CheckoutSource | None,
    unpaid: _Unpaid,
    order_id: uuid.UUID,
    result: ChargeResult,
    now: datetime,
    claim: Claim | None,
) -> CheckoutOutcome:
    """Step 3: the charge's outcome applied; the key answered. ``source`` None: a resumed
    order, whose source (a flash token) catches up with it on its own sweep."""
    async with transaction(sessions) as session:
        order, payment = await _locked_order_and_payment(
            session, store_id=unpaid.store_id, order_id=order_id, payment_id=unpaid.payment_id
        )
        if source is not None:
            await source.charged(session, order=order, payment=payment, result=result, now=now)
        await apply_payment(
            session,
            redis,
            order=order,
            payment=payment,
            charge=result,
            now=now,
            hard_skus=None if unpaid.lines is None else [line.sku_id for line in unpaid.lines],
        )
        if source is not None:
            await source.settled(session, order=order, result=result, now=now)
        outcome: CheckoutOutcome
        if order.status == OrderStatus.CANCELLED:
            outcome = PaymentDeclined(order_id=order_id, failure_reason=result.failure_reason)
        elif unpaid.lines is not None:
            # built from what the flow holds: a fresh order has no refund or substitution yet
            outcome = CheckoutPlaced(order=views.placed_public(order, unpaid.lines))
        else:
            outcome = CheckoutPlaced(order=await views.public(session, order))
        if claim is not None:
            await claim.answer(session, outcome)
    return outcome


# a store's city never changes: read once per process, not on every checkout
_cities: TTLCache[str] = TTLCache(3600)


async def _city_of(session: AsyncSession, store_id: str) -> str:
    async def load() -> str:
        store = await session.get(DarkStore, store_id)
        assert store is not None  # the source's store exists (foreign key)
        return store.city_id

    return await _cities.get_or_load(store_id, load)


async def _placed_earlier(
    session: AsyncSession, *, order_id: uuid.UUID
) -> CheckoutOutcome | _Unpaid | None:
    """The order an earlier attempt of this checkout placed: its outcome as it stands, or
    (its charge's outcome never applied) what resuming it needs."""
    store_id = await orders.store_of_order(session, order_id=order_id)
    if store_id is None:
        return None
    order = await session.get(Order, (store_id, order_id))
    assert order is not None  # the directory row is written with the order
    payment = (
        await session.exec(
            select(Payment).where(Payment.store_id == store_id, Payment.order_id == order_id)
        )
    ).one()
    if payment.status == "FAILED" and order.status == OrderStatus.CANCELLED:
        return PaymentDeclined(order_id=order_id, failure_reason=payment.failure_reason)
    if payment.status == "PENDING" and order.status == OrderStatus.PLACED:
        return _Unpaid(store_id, payment.payment_id, payment.amount_paise)
    return CheckoutPlaced(order=await views.public(session, order))


async def _require_checkout_possible(
    session: AsyncSession,
    *,
    gateway: PaymentGateway,
    settings: Settings,
    store_id: str,
    point: LatLng,
    now: datetime,
) -> Candidate:
    """The store delivers to the address in time right now (its promise is returned), and
    the payment breaker is not open (an open breaker answers now, before anything is
    reserved or written)."""
    promise = await require_serviceable(
        session,
        store_id=store_id,
        point=point,
        now=now,
        dynamic=settings.serviceability_dynamic,
        promise_s=settings.serviceability_promise_s,
    )
    open_until = await gateway.breaker.open_until(now.timestamp())
    if open_until is not None:
        raise CircuitOpen(open_until - now.timestamp())
    return promise


# both rows locked in one round trip (a webhook may be applying the same charge), read
# as plain rows: detached copies, no ORM loading on the checkout's path
_LOCK_ORDER_AND_PAYMENT = text(
    "SELECT "
    + ", ".join(
        [f"o.{c}" for c in Order.model_fields] + [f"p.{c} AS p_{c}" for c in Payment.model_fields]
    )
    + """ FROM orders o JOIN payments p ON p.store_id = o.store_id
    WHERE o.store_id = :store AND o.order_id = :order AND p.payment_id = :payment
    FOR UPDATE"""
)


async def _locked_order_and_payment(
    session: AsyncSession, *, store_id: str, order_id: uuid.UUID, payment_id: uuid.UUID
) -> tuple[Order, Payment]:
    found = await db.execute(
        session,
        _LOCK_ORDER_AND_PAYMENT,
        {"store": store_id, "order": order_id, "payment": payment_id},
    )
    row = await found.fetchone()
    assert row is not None  # placed by this checkout, never deleted
    split = len(Order.model_fields)
    order = Order(**dict(zip(Order.model_fields, row[:split], strict=True)))
    order.status = OrderStatus(order.status)
    return order, Payment(**dict(zip(Payment.model_fields, row[split:], strict=True)))


async def apply_payment(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    order: Order,
    payment: Payment,
    charge: ChargeResult,
    now: datetime,
    hard_skus: list[str] | None = None,
) -> None:
    """Apply a charge outcome once: SUCCEEDED commits the stock, confirms the order and
    queues it for picking; FAILED releases the stock and cancels. A second report of an
    applied outcome changes nothing, except that money arriving for a payment given up
    as unanswered (a timeout) is given back. ``hard_skus``: the order's hold as the
    checkout made it (see ``inventory.settle_hold``)."""
    status, failure_reason = charge.status.value, charge.failure_reason
    late_money = payment.failure_reason == UNANSWERED and status == "SUCCEEDED"
    if (payment.status != "PENDING" and not late_money) or status == "PENDING":
        return
    outcome = orders.PaymentOutcome(payment.payment_id, status, charge.provider_ref, failure_reason)
    # the object as the row will be (a loaded one has nothing left for a flush to write)
    for name, value in (
        ("status", status),
        ("provider_ref", charge.provider_ref),
        ("failure_reason", failure_reason),
        ("updated_at", now),
    ):
        set_committed_value(payment, name, value)
    holder = str(order.order_id)
    if order.status != OrderStatus.PLACED:
        await orders.record_payment(session, store_id=order.store_id, outcome=outcome, now=now)
        # the order was cancelled (timeout, customer) before the money arrived: give it back
        if status == "SUCCEEDED":
            orders.owe_refund(
                session,
                order=order,
                amount_paise=payment.amount_paise,
                reason="order_cancelled",
                now=now,
            )
        return
    if status == "SUCCEEDED":
        settled = await inventory.settle_hold(
            session,
            redis,
            store_id=order.store_id,
            holder=holder,
            outcome="COMMITTED",
            now=now,
            hard_skus=hard_skus,
        )
        if settled.status != "OK":
            # the hold ran out before the money arrived: never confirm unheld stock
            orders.owe_refund(
                session,
                order=order,
                amount_paise=payment.amount_paise,
                reason="hold_expired",
                now=now,
            )
            await orders.transition(
                session,
                order=order,
                to=OrderStatus.CANCELLED,
                now=now,
                reason="hold_expired",
                payment=outcome,
            )
            return
        await orders.transition(
            session, order=order, to=OrderStatus.CONFIRMED, now=now, payment=outcome
        )
        await enqueue_picking(session, order=order, now=now)
    else:
        await inventory.settle_hold(
            session,
            redis,
            store_id=order.store_id,
            holder=holder,
            outcome="RELEASED",
            now=now,
            reason="payment_failed",
            hard_skus=hard_skus,
        )
        await orders.transition(
            session,
            order=order,
            to=OrderStatus.CANCELLED,
            now=now,
            reason=f"payment_failed: {failure_reason or 'declined'}",
            payment=outcome,
        )
