"""Carts, orders, their items and the order-event history."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, Identity, Index
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Column, Field, SQLModel

from server.kit.columns import Timestamp, enum_field, tz_field
from shared.enums import ItemStatus, OrderStatus


class Cart(SQLModel, table=True):
    """Keyed (store_id, cart_id) like every per-store table (Citus); no foreign key to
    ``users`` (a customer's row lives apart from the store's books)."""

    __tablename__ = "carts"

    store_id: str = Field(foreign_key="dark_stores.store_id", primary_key=True, max_length=20)
    cart_id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True, index=True)
    user_id: uuid.UUID = Field(index=True)
    status: str = Field(default="ACTIVE", max_length=20)  # ACTIVE, CHECKED_OUT, ABANDONED
    created_at: Timestamp = tz_field(server_now=True)
    updated_at: Timestamp = tz_field(server_now=True)


class Order(SQLModel, table=True):
    """An order, keyed (store_id, order_id) so it can be distributed by store (Citus)."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_order_id", "order_id", unique=False),
        Index("ix_orders_store_status", "store_id", "status"),
    )

    store_id: str = Field(foreign_key="dark_stores.store_id", primary_key=True, max_length=20)
    order_id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(index=True)  # no foreign key: users live apart (Citus)
    city_id: str = Field(foreign_key="cities.city_id", max_length=10)
    cart_id: uuid.UUID | None = None
    status: OrderStatus = enum_field(OrderStatus.PLACED, max_length=30)
    currency: str = Field(default="INR", max_length=3)
    subtotal_paise: int = 0
    delivery_fee_paise: int = 0
    handling_fee_paise: int = 0
    discount_paise: int = 0
    total_amount_paise: int = 0
    delivery_address: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    delivery_lat: float
    delivery_lng: float
    cancel_reason: str | None = Field(default=None, max_length=200)
    rider_id: uuid.UUID | None = Field(default=None, index=True)
    # shown to the customer, asked by the rider at the door
    delivery_otp: str | None = Field(default=None, max_length=4)
    sla_deadline: Timestamp = tz_field()
    promised_at: Timestamp = tz_field()  # the door time promised at checkout
    placed_at: Timestamp = tz_field(index=True)
    confirmed_at: Timestamp = tz_field()
    picking_at: Timestamp = tz_field()
    partially_fulfilled_at: Timestamp = tz_field()
    packed_at: Timestamp = tz_field()
    dispatched_at: Timestamp = tz_field()
    out_for_delivery_at: Timestamp = tz_field()
    delivered_at: Timestamp = tz_field()
    cancelled_at: Timestamp = tz_field()


class OrderItem(SQLModel, table=True):
    __tablename__ = "order_items"
    __table_args__ = (
        ForeignKeyConstraint(["store_id", "order_id"], ["orders.store_id", "orders.order_id"]),
        CheckConstraint("quantity <= ordered_qty", name="ck_order_items_quantity_ordered"),
    )

    store_id: str = Field(primary_key=True, max_length=20)
    order_id: uuid.UUID = Field(primary_key=True)
    sku_id: str = Field(foreign_key="products.sku_id", primary_key=True, max_length=50)
    # the units to deliver: a short pick lowers it to the units found
    quantity: int = Field(ge=1)
    # the units the customer ordered (or the picker substituted); picking never changes it
    ordered_qty: int = Field(ge=1)
    unit_price_paise: int = Field(ge=0)
    mrp_paise: int = Field(ge=0)
    status: ItemStatus = enum_field(ItemStatus.PENDING, max_length=20)
    picked_qty: int = 0
    substitute_sku: str | None = Field(default=None, max_length=50)


class OrderEvent(SQLModel, table=True):
    """One row per state change, written in the transaction that changes the state."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order", "order_id", "at"),)

    store_id: str = Field(primary_key=True, max_length=20)
    event_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(), primary_key=True)
    )
    order_id: uuid.UUID
    from_status: OrderStatus | None = enum_field(None, max_length=30)
    to_status: OrderStatus = enum_field(max_length=30)
    at: Timestamp = tz_field(server_now=True)
    actor_id: uuid.UUID | None = None
    reason: str | None = Field(default=None, max_length=200)


class OrderDirectory(SQLModel, table=True):
    """Which store holds an order: written once when the order is placed, so a lookup by
    ``order_id`` alone (tracking, the customer's GET) finds the store, then reads the
    order on that store's shard. Distributed by ``order_id`` on Citus (server/kit/citus.py)."""

    __tablename__ = "order_directory"

    order_id: uuid.UUID = Field(primary_key=True)
    store_id: str = Field(max_length=20)
