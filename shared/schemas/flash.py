"""Flash sales: the offer on product cards, the manager's sale, the customer's line."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, StrictInt


class FlashOffer(BaseModel):
    """A flash sale running now for a product at a store (on product cards and detail)."""

    sale_id: uuid.UUID
    price_paise: int
    currency: str = "INR"
    starts_at: datetime
    ends_at: datetime
    per_customer_limit: int


class FlashSaleCreate(BaseModel):
    sku_id: str = Field(
        min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_-]+$", examples=["SKU00042"]
    )
    store_ids: list[str] = Field(min_length=1, max_length=20, examples=[["BLR-KOR"]])
    sale_price_paise: StrictInt = Field(ge=1, le=10_000_000, examples=[100])
    starts_at: datetime = Field(description="RFC 3339 with a time zone")
    ends_at: datetime = Field(description="after starts_at, at most 24 h later")
    units_per_store: StrictInt = Field(ge=1, le=5000, examples=[1000])
    per_customer_limit: StrictInt = Field(default=1, ge=1, le=10)


class FlashSaleStop(BaseModel):
    reason: str = Field(min_length=1, max_length=200, examples=["pricing error"])


class FlashStoreUnits(BaseModel):
    store_id: str
    units: int
    available: int = Field(description="tokens nobody holds yet")
    in_checkout: int = Field(description="tokens held by a checkout slot")
    sold: int
    waiting: int = Field(description="customers in this store's line")


class FlashSalePublic(BaseModel):
    sale_id: uuid.UUID
    city_id: str
    sku_id: str
    name: str
    mrp_paise: int
    sale_price_paise: int
    currency: str = "INR"
    starts_at: datetime
    ends_at: datetime
    per_customer_limit: int
    status: str = Field(description="SCHEDULED, LIVE, SOLD_OUT, ENDED or STOPPED")
    units: int
    sold: int
    stores: list[FlashStoreUnits]
    stop_reason: str | None = None
    waiting_room_url: str | None = Field(
        default=None,
        description="where to join, poll and watch the line (POST .../queue, GET .../queue/me, "
        "/ws/flash/{sale_id}): the waiting room's own server; none: this API. Check out here",
    )


class FlashJoin(BaseModel):
    store_id: str = Field(
        min_length=1, max_length=20, pattern=r"^[A-Z0-9-]+$", examples=["BLR-KOR"]
    )


class FlashQueueEntry(BaseModel):
    """A customer's place in a sale's line (``POST .../queue``, ``GET .../queue/me``)."""

    sale_id: uuid.UUID
    store_id: str
    status: str = Field(
        description="WAITING, ADMITTING (a slot is being handed over: ask again in a "
        "second), ADMITTED, PAYING, PURCHASED or CLOSED"
    )
    ticket: int | None = Field(default=None, description="join order in the sale (1 = first)")
    position: int | None = Field(default=None, description="WAITING: 1 = next in line")
    estimated_wait_s: int | None = None
    admitted_no: int | None = Field(default=None, description="admission order in the sale")
    slot_expires_at: datetime | None = None
    slot_seconds_left: int | None = None
    units_left: int = Field(description="tokens not sold yet (free or in checkout)")
    closed_reason: str | None = Field(default=None, description="sold_out, stopped or ended")
    order_id: uuid.UUID | None = None
    poll_after_s: int = Field(description="without the websocket: ask again after this long")
