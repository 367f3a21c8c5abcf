"""What a customer, a picker or a manager sees of an order (``OrderPublic``): read from its
rows, or built from what the transaction that placed it knows (no read back)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.orders.models import Order, OrderItem
from server.orders.service import OrderLine
from server.payments.models import Refund
from server.picking.models import SubstitutionOffer
from shared.enums import ItemStatus
from shared.schemas.orders import (
    OrderItemPublic,
    OrderPublic,
    RefundPublic,
    SubstitutionOfferPublic,
)
from shared.states import TIMESTAMP_COLUMN


async def public(session: AsyncSession, order: Order, *, show_otp: bool = False) -> OrderPublic:
    items = (
        await session.exec(
            select(OrderItem)
            .where(OrderItem.store_id == order.store_id, OrderItem.order_id == order.order_id)
            .order_by(col(OrderItem.sku_id))
        )
    ).all()
    refunds = (
        await session.exec(
            select(Refund)
            .where(Refund.store_id == order.store_id, Refund.order_id == order.order_id)
            .order_by(col(Refund.created_at))
        )
    ).all()
    offers = (
        await session.exec(
            select(SubstitutionOffer)
            .where(
                SubstitutionOffer.store_id == order.store_id,
                SubstitutionOffer.order_id == order.order_id,
            )
            .order_by(col(SubstitutionOffer.sku_id))
        )
    ).all()
    return _view(
        order,
        [OrderItemPublic.model_validate(i) for i in items],
        refunds,
        offers,
        show_otp=show_otp,
    )


def _view(
    order: Order,
    items: list[OrderItemPublic],
    refunds: Sequence[Refund],
    offers: Sequence[SubstitutionOffer],
    *,
    show_otp: bool,
) -> OrderPublic:
    times = {
        s.value: getattr(order, col_name)
        for s, col_name in TIMESTAMP_COLUMN.items()
        if getattr(order, col_name) is not None
    }
    return OrderPublic(
        order_id=order.order_id,
        store_id=order.store_id,
        status=order.status,
        items=items,
        subtotal_paise=order.subtotal_paise,
        delivery_fee_paise=order.delivery_fee_paise,
        handling_fee_paise=order.handling_fee_paise,
        discount_paise=order.discount_paise,
        total_amount_paise=order.total_amount_paise,
        currency=order.currency,
        cancel_reason=order.cancel_reason,
        placed_at=order.placed_at,
        sla_deadline=order.sla_deadline,
        promised_at=order.promised_at,
        status_times=times,
        rider_id=order.rider_id,
        delivery_otp=order.delivery_otp if show_otp else None,
        refunds=[RefundPublic.model_validate(r) for r in refunds],
        substitutions=[SubstitutionOfferPublic.model_validate(o) for o in offers],
    )


def placed_public(order: Order, lines: list[OrderLine]) -> OrderPublic:
    """The view of an order this transaction placed or confirmed, from what it knows: its
    lines as ordered, no refund or substitution yet (no read back)."""
    items = [
        OrderItemPublic(
            sku_id=line.sku_id,
            quantity=line.quantity,
            ordered_qty=line.quantity,
            unit_price_paise=line.unit_price_paise,
            mrp_paise=line.mrp_paise,
            status=ItemStatus.PENDING,
            picked_qty=0,
        )
        for line in sorted(lines, key=lambda line: line.sku_id)
    ]
    return _view(order, items, [], [], show_otp=False)
