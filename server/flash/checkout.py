"""Buying the unit of a checkout slot: the shared checkout flow (``orders.flows``) with a
token as its source, and the token's fate once its order has an outcome."""

from __future__ import annotations

import uuid
from datetime import datetime

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.catalog.models import Product
from server.catalog.pricing import flash_totals
from server.flash import queue
from server.flash.admission import claimed_token, end_slots, free_token
from server.flash.errors import CheckoutInProgress, NoCheckoutSlot, SlotExpired
from server.flash.limits import require_under_limit, sold_to
from server.flash.models import FlashSale, InventoryToken, TokenStatus, token_holder
from server.flash.sales import get_sale, is_live, require_live, return_token, token_hold_s
from server.idempotency.service import Claim
from server.identity.models import User
from server.inventory import service as inventory
from server.inventory.errors import InsufficientStock
from server.kit.config import Settings
from server.orders import flows
from server.orders.flows import CheckoutOutcome, CheckoutSource, Purchase
from server.orders.models import Order
from server.orders.service import OrderLine
from server.payments.gateway import PaymentGateway
from server.payments.models import Payment
from server.payments.provider import ChargeResult
from shared.enums import OrderStatus
from shared.schemas.orders import CheckoutRequest


async def checkout(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    *,
    gateway: PaymentGateway,
    settings: Settings,
    customer: User,
    sale_id: uuid.UUID,
    body: CheckoutRequest,
    order_id: uuid.UUID,
    now: datetime,
    claim: Claim | None = None,
) -> CheckoutOutcome:
    """Buy the unit of the customer's checkout slot as order ``order_id``: a normal order
    at the sale price, CONFIRMED (or PLACED while the payment is pending), or the payment
    was declined (the order cancelled, the token and its unit back in the sale's pool). A
    slot that ended here gives way to the next customer in line."""
    slot = _SlotSource(redis, settings=settings, customer=customer, sale_id=sale_id)
    outcome = await flows.checkout(
        sessions,
        redis,
        source=slot,
        gateway=gateway,
        settings=settings,
        user=customer,
        address=body.address,
        order_id=order_id,
        now=now,
        claim=claim,
    )
    if slot.ended is not None:
        sale, token = slot.paid_from()
        await end_slots(
            sessions,
            redis,
            sale=sale,
            store_id=token.store_id,
            ended={str(customer.id): slot.ended},
            now=now,
            settings=settings,
        )
    return outcome


class _SlotSource(CheckoutSource):
    """The token of the customer's checkout slot: its hold moves to the order; a payment
    that does not go through moves it back, so the unit stays with the sale."""

    def __init__(
        self, redis: aioredis.Redis, *, settings: Settings, customer: User, sale_id: uuid.UUID
    ) -> None:
        self._redis, self._settings = redis, settings
        self._customer, self._sale_id = customer, sale_id
        self._sale: FlashSale | None = None
        self._token: InventoryToken | None = None
        self.ended: queue.Outcome | None = None  # how the slot ended, once it has

    def paid_from(self) -> tuple[FlashSale, InventoryToken]:
        """The sale (as last read) and the token the checkout bought."""
        assert self._sale is not None and self._token is not None  # opened
        return self._sale, self._token

    async def open(self, session: AsyncSession, *, now: datetime) -> Purchase:
        sale = await get_sale(session, sale_id=self._sale_id, lock="share")
        require_live(sale, now)
        token = await claimed_token(session, sale_id=sale.sale_id, customer=self._customer.id)
        if token is None:
            raise NoCheckoutSlot("you have no checkout slot; join the line and wait your turn")
        if token.order_id is not None:
            raise CheckoutInProgress("your checkout is being paid", order_id=str(token.order_id))
        if token.slot_expires_at is None or token.slot_expires_at <= now:
            raise SlotExpired("your checkout slot ran out; join the line again")
        await require_under_limit(session, self._redis, sale=sale, customer=self._customer.id)
        product = await session.get(Product, token.sku_id)
        assert product is not None  # a sale is created for an existing product
        self._sale, self._token = sale, token
        return Purchase(
            store_id=token.store_id,
            holder=token_holder(token.token_id),
            lines=[OrderLine(token.sku_id, 1, sale.sale_price_paise, product.mrp_paise)],
            totals=flash_totals(sale.sale_price_paise, product.mrp_paise),
            hold_actor=self._customer.id,
        )

    async def placed(self, session: AsyncSession, *, order_id: uuid.UUID, now: datetime) -> None:
        token = self.paid_from()[1]
        token.order_id, token.updated_at = order_id, now
        session.add(token)

    async def _lock_token(self, session: AsyncSession) -> InventoryToken:
        key = self.paid_from()[1]
        token = await session.get(
            InventoryToken, (key.store_id, key.token_id), with_for_update=True
        )
        assert token is not None  # tokens are never deleted
        self._token = token
        return token

    async def _back_to_token(
        self, session: AsyncSession, *, token: InventoryToken, order: Order, now: datetime
    ) -> None:
        """The order's hold moves back to the token: the unit stays set aside for the sale."""
        sale, _ = self.paid_from()
        await _hold_for_token(
            session,
            self._redis,
            sale=sale,
            token=token,
            now=now,
            settings=self._settings,
            taken_from=str(order.order_id),
        )

    async def take_back(self, session: AsyncSession, *, order: Order, now: datetime) -> None:
        # not the customer's doing: the order goes, the slot and its token stay theirs
        token = await self._lock_token(session)
        await self._back_to_token(session, token=token, order=order, now=now)

    async def reopen(self, session: AsyncSession, *, now: datetime) -> None:
        token = self.paid_from()[1]
        token.order_id, token.updated_at = None, now
        session.add(token)

    async def charged(
        self,
        session: AsyncSession,
        *,
        order: Order,
        payment: Payment,
        result: ChargeResult,
        now: datetime,
    ) -> None:
        token = await self._lock_token(session)
        self._sale = sale = await get_sale(session, sale_id=self._sale_id)
        if result.status.value != "FAILED" or payment.status != "PENDING":
            return
        if is_live(sale, now):
            await self._back_to_token(session, token=token, order=order, now=now)
            free_token(token, now)
            session.add(token)
            self.ended = "returned"
        else:  # the sale ended meanwhile: the unit goes back to regular stock
            return_token(session, token, now)

    async def settled(
        self, session: AsyncSession, *, order: Order, result: ChargeResult, now: datetime
    ) -> None:
        if result.status.value == "SUCCEEDED":
            sale, token = self.paid_from()
            self.ended = await settle_paid_token(
                session,
                self._redis,
                sale=sale,
                token=token,
                order=order,
                now=now,
                settings=self._settings,
            )


async def _hold_for_token(
    session: AsyncSession,
    redis: aioredis.Redis,
    *,
    sale: FlashSale,
    token: InventoryToken,
    now: datetime,
    settings: Settings,
    taken_from: str | None = None,
) -> None:
    """Set the token's unit aside for the sale again: the hold of ``taken_from`` (the
    order) moves back to the token, or without it a new hold is taken from regular stock."""
    holder = token_holder(token.token_id)
    await inventory.reserve_lines(
        session,
        redis,
        store_id=token.store_id,
        holder=taken_from or holder,
        lines={token.sku_id: 1},
        now=now,
        hold_s=token_hold_s(sale, now, settings),
        mode="HARD",
        new_holder=holder if taken_from else None,
        over=("MOVED",),  # the token's hold moved to the order that gave the unit back
    )


async def settle_paid_token(
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
        assert token.claimed_by is not None  # a claimed token names its customer
        await sold_to(session, redis, sale_id=sale.sale_id, customer=token.claimed_by)
        return "sold"
    if not is_live(sale, now):
        return_token(session, token, now)
        return "sold"  # nothing goes back to the (closed) line
    try:
        await _hold_for_token(session, redis, sale=sale, token=token, now=now, settings=settings)
    except InsufficientStock:
        # a regular cart took the unit meanwhile: the sale has one unit less, never more
        token.status, token.updated_at = TokenStatus.VOID, now
        session.add(token)
        return "sold"
    free_token(token, now)
    session.add(token)
    return "returned"
