"""Pick tasks (one per confirmed order) and the scans that fill them."""

from __future__ import annotations

import uuid

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

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
