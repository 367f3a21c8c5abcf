"""Pick tasks (one per confirmed order) and the scans that fill them."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Index, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Column, Field, SQLModel

from server.kit.columns import Timestamp, tz_field


class PickTask(SQLModel, table=True):
    __tablename__ = "pick_tasks"
    __table_args__ = (Index("ix_pick_tasks_queue", "store_id", "status", "sla_deadline"),)

    store_id: str = Field(primary_key=True, max_length=20)
    order_id: uuid.UUID = Field(primary_key=True)
    status: str = Field(default="WAITING", max_length=20)  # WAITING, PICKING, PACKED, CANCELLED
    picker_id: uuid.UUID | None = None
    sla_deadline: Timestamp = tz_field()
    estimate_s: float = 0
    # the walk's features, kept so recorded durations can calibrate the estimate
    bin_steps: int = 0
    aisle_changes: int = 0
    units: int = 0
    created_at: Timestamp = tz_field(server_now=True)
    claimed_at: Timestamp = tz_field()
    packed_at: Timestamp = tz_field()
    duration_s: float | None = None
    bag_count: int | None = None
    bag_label: str | None = Field(default=None, max_length=40)


class PickScan(SQLModel, table=True):
    """One scan as the terminal sent it; ``scan_id`` makes a retried scan count once."""

    __tablename__ = "pick_scans"

    store_id: str = Field(primary_key=True, max_length=20)
    scan_id: str = Field(primary_key=True, max_length=64)
    order_id: uuid.UUID = Field(index=True)
    sku_id: str | None = Field(default=None, max_length=50)
    code: str = Field(max_length=120)
    accepted: bool
    at: Timestamp = tz_field(server_now=True)


class SubstitutionOffer(SQLModel, table=True):
    """A short line offered to the customer (store policy ``ask``): ``PENDING`` until they
    answer or ``expires_at`` passes, then ``SUBSTITUTED`` (with ``chosen_sku``) or
    ``REFUNDED`` once, by whichever of the answer and the timeout updates it first."""

    __tablename__ = "substitution_offers"
    __table_args__ = (
        Index(
            "ix_substitution_offers_due",
            "store_id",
            "expires_at",
            postgresql_where=text("status = 'PENDING'"),
        ),
    )

    store_id: str = Field(primary_key=True, max_length=20)
    order_id: uuid.UUID = Field(primary_key=True)
    sku_id: str = Field(primary_key=True, max_length=50)  # the short line
    quantity: int = Field(ge=1)  # units short, the substitute's quantity
    proposed_sku: str = Field(max_length=50)
    # the offered products, the proposed one first: [{sku_id, name, pack_size, price_paise}]
    candidates: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    status: str = Field(default="PENDING", max_length=20)  # PENDING, SUBSTITUTED, REFUNDED
    chosen_sku: str | None = Field(default=None, max_length=50)
    decided_by: str | None = Field(default=None, max_length=20)  # customer, timeout
    picker_id: uuid.UUID | None = None
    created_at: Timestamp = tz_field()
    expires_at: Timestamp = tz_field()
    resolved_at: Timestamp = tz_field()
