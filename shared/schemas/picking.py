"""The picker terminal: the queue, the pick list, scans, shorts, substitutes, packing."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from shared.schemas.orders import ORDERED_QTY


class PickTaskSummary(BaseModel):
    order_id: uuid.UUID
    store_id: str
    status: str
    sla_deadline: datetime | None
    seconds_left: int | None
    lines: int
    units: int


class PickLinePublic(BaseModel):
    sku_id: str
    name: str
    pack_size: str
    barcode: str
    quantity: int = Field(description="units to pick: fewer than ordered after a short pick")
    ordered_qty: int | None = Field(default=None, description=ORDERED_QTY)
    picked_qty: int
    status: str
    bin_code: str | None
    aisle: str | None
    walk_seq: int | None
    substitute_sku: str | None = None
    awaiting_customer_until: datetime | None = Field(
        default=None,
        description="a substitute was offered to the customer: the line waits on their "
        "answer until then (the rest of the pick goes on)",
    )


class PickList(BaseModel):
    order_id: uuid.UUID
    store_id: str
    status: str
    picker_id: uuid.UUID | None
    sla_deadline: datetime | None
    estimate_s: float
    claimed_at: datetime | None
    lines: list[PickLinePublic]


class ScanRequest(BaseModel):
    scan_id: str = Field(
        min_length=1,
        max_length=64,
        description="unique per physical scan; a retry with the same id counts once",
    )
    code: str = Field(min_length=1, max_length=120, examples=["8900000000017"])


class ScanResult(BaseModel):
    sku_id: str
    picked_qty: int
    quantity: int
    line_complete: bool
    order_complete: bool
    replayed: bool = False


class ShortPickRequest(BaseModel):
    sku_id: str = Field(min_length=1, max_length=50)
    found_qty: int = Field(ge=0, le=50, description="units actually found on the shelf")
    reason: str = Field(default="missing", pattern=r"^(missing|damaged)$")


class SubstituteOption(BaseModel):
    sku_id: str
    name: str
    pack_size: str
    price_paise: int
    available_qty: int


class ShortPickResult(BaseModel):
    sku_id: str
    short_qty: int = Field(description="units of the line short in all: ordered - found")
    policy: str
    substitutes: list[SubstituteOption]
    awaiting_customer_until: datetime | None = Field(
        default=None,
        description="policy ask: the substitutes were offered to the customer, who answers "
        "by then (else the store's fallback applies); the answer is pushed on /ws/picker",
    )


class SubstituteRequest(BaseModel):
    sku_id: str = Field(min_length=1, max_length=50)
    substitute_sku: str = Field(min_length=1, max_length=50)
    quantity: int = Field(ge=1, le=50)


class PackRequest(BaseModel):
    bag_count: int = Field(ge=1, le=20, examples=[2])


class PackResult(BaseModel):
    order_id: uuid.UUID
    status: str
    bag_label: str
    bag_count: int
    pick_duration_s: float
