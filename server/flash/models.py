"""Flash sales, the stores they run at, and their inventory tokens (one row per unit).

A token is a unit set aside from regular stock through the reservation engine: its own
HARD hold (holder ``flash:<token_id>``) keeps the unit out of every regular cart while
the token is AVAILABLE or CLAIMED. A paid checkout moves that hold to the order and
commits it like any order's; an unpaid claim moves it back; the end of the sale
releases what is left to regular stock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Index, text
from sqlmodel import Field, SQLModel

from server.kit.columns import Timestamp, enum_field, tz_field


class SaleState(StrEnum):
    """What is stored; the public status (SCHEDULED, LIVE, SOLD_OUT, ...) is derived."""

    ACTIVE = "ACTIVE"  # scheduled or running: its tokens hold stock
    ENDED = "ENDED"  # reached ends_at; unsold units went back to regular stock
    STOPPED = "STOPPED"  # a manager stopped it; unsold units went back


class TokenStatus(StrEnum):
    AVAILABLE = "AVAILABLE"  # waiting for a customer; its unit is held for the sale
    CLAIMED = "CLAIMED"  # a customer holds a checkout slot with it (order_id once paying)
    SOLD = "SOLD"  # paid: the unit left the books with the order
    RETURNED = "RETURNED"  # the sale ended or stopped: the unit went back to regular stock
    VOID = "VOID"  # its unit was lost to regular stock and could not be taken back


class FlashSale(SQLModel, table=True):
    __tablename__ = "flash_sales"
    __table_args__ = (
        Index("ix_flash_sales_city_status", "city_id", "status"),
        CheckConstraint("ends_at > starts_at", name="ck_flash_sales_window"),
    )

    sale_id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    city_id: str = Field(foreign_key="cities.city_id", max_length=10)
    sku_id: str = Field(foreign_key="products.sku_id", max_length=50)
    sale_price_paise: int
    per_customer_limit: int = 1
    starts_at: datetime = tz_field(nullable=False)
    ends_at: datetime = tz_field(nullable=False)
    status: SaleState = enum_field(SaleState.ACTIVE, max_length=12)
    created_by: uuid.UUID = Field(foreign_key="users.id")
    created_at: datetime = tz_field(nullable=False)
    ended_at: Timestamp = tz_field()
    stopped_by: uuid.UUID | None = None
    stop_reason: str | None = Field(default=None, max_length=200)


class FlashSaleStore(SQLModel, table=True):
    """A store taking part in a sale, with the units set aside there."""

    __tablename__ = "flash_sale_stores"
    __table_args__ = (Index("ix_flash_sale_stores_store", "store_id"),)

    sale_id: uuid.UUID = Field(foreign_key="flash_sales.sale_id", primary_key=True)
    store_id: str = Field(foreign_key="dark_stores.store_id", primary_key=True, max_length=20)
    units: int


class InventoryToken(SQLModel, table=True):
    """One unit of a flash sale at one store, claimed with ``FOR UPDATE SKIP LOCKED``.

    Keyed (store_id, token_id) like every per-store table (Citus). A customer holds at
    most one CLAIMED token per sale: the claim checks it, and a partial unique index per
    (store, sale, customer) backs it up on the store's shard.
    """

    __tablename__ = "inventory_tokens"
    __table_args__ = (
        Index("ix_inventory_tokens_claim", "sale_id", "store_id", "status"),
        Index("ix_inventory_tokens_customer", "sale_id", "claimed_by"),
        Index(
            "uq_inventory_tokens_one_claim",
            "store_id",
            "sale_id",
            "claimed_by",
            unique=True,
            postgresql_where=text("status = 'CLAIMED'"),
        ),
    )

    store_id: str = Field(foreign_key="dark_stores.store_id", primary_key=True, max_length=20)
    token_id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    sale_id: uuid.UUID = Field(foreign_key="flash_sales.sale_id")
    sku_id: str = Field(max_length=50)
    status: TokenStatus = enum_field(TokenStatus.AVAILABLE, max_length=12)
    claimed_by: uuid.UUID | None = None
    claimed_at: Timestamp = tz_field()
    slot_expires_at: Timestamp = tz_field()
    ticket: int | None = Field(default=None, sa_type=BigInteger)  # the claim's join order
    admit_no: int | None = Field(default=None, sa_type=BigInteger)  # its admission order
    order_id: uuid.UUID | None = None
    sold_at: Timestamp = tz_field()
    updated_at: datetime = tz_field(nullable=False)


def token_holder(token_id: uuid.UUID | str) -> str:
    """The reservation-engine holder of a token's unit."""
    return f"flash:{token_id}"
