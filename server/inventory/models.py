"""Stock per (store, sku), reservations and the append-only stock ledger.

Invariant, per (store, sku): physical = available + reserved + damaged + in_transit.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, CheckConstraint, Identity, Index, text
from sqlmodel import Column, Field, SQLModel

from server.kit.columns import Timestamp, enum_field, tz_field
from shared.enums import Movement, ReservationStatus


class StoreInventory(SQLModel, table=True):
    __tablename__ = "store_inventory"
    # no index names the quantities and each page keeps room: a stock update (the journal
    # writer's ~1,000 a batch) stays on its page without new index entries (HOT)
    __table_args__ = (
        CheckConstraint(
            "available_qty >= 0 AND reserved_qty >= 0 AND damaged_qty >= 0 AND in_transit_qty >= 0",
            name="ck_store_inventory_non_negative",
        ),
        {"postgresql_with": {"fillfactor": 80}},
    )

    store_id: str = Field(foreign_key="dark_stores.store_id", primary_key=True, max_length=20)
    sku_id: str = Field(foreign_key="products.sku_id", primary_key=True, max_length=50)
    available_qty: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    reserved_qty: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    damaged_qty: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    in_transit_qty: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    reorder_level: int = Field(default=10, sa_column_kwargs={"server_default": "10"})
    max_capacity: int = Field(default=100, sa_column_kwargs={"server_default": "100"})
    bin_code: str | None = Field(default=None, max_length=20)
    last_updated: Timestamp = tz_field(server_now=True)
    version: int = Field(
        default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"}
    )  # optimistic lock for staff edits


class InventoryReservation(SQLModel, table=True):
    """One hold of one SKU for one cart or order (``order_id`` is the cart id until checkout).

    Keyed by (store, order, sku): an order belongs to one store, and the store column keeps
    the key valid when the table is distributed by ``store_id`` (Citus).
    """

    __tablename__ = "inventory_reservations"
    # the retention purge's scan, oldest first (migration 0023); on ``created_at``, which
    # no update changes, so the updates of a hold stay HOT-eligible
    __table_args__ = (Index("ix_inventory_reservations_created", "store_id", "created_at"),)

    # two indexes only (migrations 0022, 0023): the journal writer upserts ~1,000 rows a
    # batch, each index an entry a new row; no foreign keys either (0021: a trigger query a
    # row), written only for SKUs the gate admitted from store_inventory
    store_id: str = Field(primary_key=True, max_length=20)
    order_id: str = Field(primary_key=True, max_length=50)
    sku_id: str = Field(primary_key=True, max_length=50)
    reservation_id: uuid.UUID = Field(
        default_factory=uuid.uuid4, sa_column_kwargs={"server_default": text("gen_random_uuid()")}
    )  # nothing reads by it
    quantity: int = Field(ge=0)
    status: ReservationStatus = enum_field(max_length=20)
    created_at: Timestamp = tz_field(server_now=True)
    updated_at: Timestamp = tz_field(server_now=True)
    expires_at: Timestamp = tz_field()


class StockLedger(SQLModel, table=True):
    """Every stock movement, never updated or deleted; deltas per bucket."""

    __tablename__ = "stock_ledger"
    __table_args__ = (Index("ix_stock_ledger_sku_time", "store_id", "sku_id", "created_at"),)

    store_id: str = Field(primary_key=True, max_length=20)  # no foreign key: as reservations
    entry_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(), primary_key=True)
    )
    sku_id: str = Field(max_length=50)
    movement: Movement = enum_field(max_length=20)
    d_available: int = 0
    d_reserved: int = 0
    d_damaged: int = 0
    d_in_transit: int = 0
    reference: str | None = Field(default=None, max_length=80)  # order, reservation, transfer
    actor_id: uuid.UUID | None = None
    reason: str | None = Field(default=None, max_length=200)
    created_at: Timestamp = tz_field(server_now=True)


class InventoryJournalOffset(SQLModel, table=True):
    """How far PostgreSQL holds a store's journal of soft-hold movements (``invlog:{S}``,
    a Redis stream id). The batch writer locks this row, applies the entries after it and
    moves it in the same transaction, so each entry reaches the books exactly once."""

    __tablename__ = "inventory_journal_offsets"

    store_id: str = Field(foreign_key="dark_stores.store_id", primary_key=True, max_length=20)
    applied_id: str = Field(default="0-0", max_length=40)
    applied_at: Timestamp = tz_field(server_now=True)
