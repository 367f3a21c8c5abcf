"""Carts, checkout and orders, as the customer sees them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt


class CartCreate(BaseModel):
    store_id: str = Field(
        min_length=1, max_length=20, pattern=r"^[A-Z0-9-]+$", examples=["BLR-KOR"]
    )


class CartLineSet(BaseModel):
    quantity: StrictInt = Field(
        ge=0, le=50, description="wanted quantity; 0 removes the line", examples=[2]
    )


class CartSwitchStore(BaseModel):
    store_id: str = Field(min_length=1, max_length=20, pattern=r"^[A-Z0-9-]+$")


class CartLine(BaseModel):
    sku_id: str
    name: str
    pack_size: str
    quantity: int
    unit_price_paise: int
    mrp_paise: int
    line_total_paise: int


class CartPublic(BaseModel):
    cart_id: uuid.UUID
    store_id: str
    status: str = Field(description="ACTIVE, EXPIRED (holds ran out) or CHECKED_OUT")
    lines: list[CartLine]
    hold_expires_at: datetime | None = None
    hold_seconds_left: int | None = None
    hold_life_ends_at: datetime | None = Field(
        default=None,
        description="a cart holds stock at most until then (QC_CART_HOLD_LIFE_S after it "
        "was created); past it lines can be removed, not added",
    )
    subtotal_paise: int
    delivery_fee_paise: int
    handling_fee_paise: int
    discount_paise: int
    total_paise: int
    currency: str = "INR"
    dropped: list[str] = Field(
        default_factory=list, description="lines that could not move to a new store"
    )


class DeliveryAddress(BaseModel):
    line1: str = Field(min_length=1, max_length=200, examples=["4th Cross, 5th Block"])
    landmark: str | None = Field(default=None, max_length=120)
    # shown to the rider at the drop: gate code, floor, "leave with the guard"
    instructions: str | None = Field(
        default=None, max_length=200, examples=["3rd floor, ring twice"]
    )
    lat: float = Field(ge=-90, le=90, examples=[12.9352])
    lng: float = Field(ge=-180, le=180, examples=[77.6245])


class CheckoutRequest(BaseModel):
    address: DeliveryAddress
    payment_method: str = Field(default="upi", pattern=r"^(upi|card|wallet)$")


ORDERED_QTY = "units ordered (for a substitute: units put in); picking never changes it"


class OrderItemPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sku_id: str
    quantity: int = Field(description="units to deliver: fewer than ordered after a short pick")
    ordered_qty: int | None = Field(default=None, description=ORDERED_QTY)
    unit_price_paise: int
    mrp_paise: int
    status: str
    picked_qty: int
    substitute_sku: str | None = None


class RefundPublic(BaseModel):
    """Money owed back on the order and how far its payout got."""

    model_config = ConfigDict(from_attributes=True)

    refund_id: uuid.UUID
    sku_id: str | None = Field(default=None, description="set when one line was refunded")
    amount_paise: int
    reason: str
    status: str = Field(
        description="HELD (the line waits on a substitution answer), PENDING (being paid "
        "out), SUCCEEDED, FAILED, or VOID (the order was cancelled and refunded whole)"
    )
    created_at: datetime | None = None
    updated_at: datetime | None = None


class SubstituteCandidate(BaseModel):
    sku_id: str
    name: str
    pack_size: str
    price_paise: int = Field(description="what the customer pays a unit: never above the line's")


class SubstitutionOfferPublic(BaseModel):
    """A short line the customer is asked about (store policy ``ask``)."""

    model_config = ConfigDict(from_attributes=True)

    sku_id: str = Field(description="the line that is short")
    quantity: int = Field(description="units short: the substitute's quantity")
    proposed_sku: str
    candidates: list[SubstituteCandidate] = Field(description="what may be chosen, proposed first")
    status: str = Field(description="PENDING (waiting on the answer), SUBSTITUTED or REFUNDED")
    chosen_sku: str | None = None
    decided_by: str | None = Field(default=None, description="customer, or timeout")
    expires_at: datetime | None = Field(
        default=None, description="after it the store's fallback rule decides"
    )


class SubstitutionAnswer(BaseModel):
    answer: Literal["accept", "refuse", "choose"] = Field(
        description="accept the proposed product, refuse any (the line is refunded), or "
        "choose another of the candidates (``substitute_sku``)"
    )
    substitute_sku: str | None = Field(default=None, min_length=1, max_length=50)


class OrderPublic(BaseModel):
    order_id: uuid.UUID
    store_id: str
    status: str
    items: list[OrderItemPublic]
    subtotal_paise: int
    delivery_fee_paise: int
    handling_fee_paise: int
    discount_paise: int
    total_amount_paise: int
    currency: str
    cancel_reason: str | None = None
    placed_at: datetime | None = None
    sla_deadline: datetime | None = None
    promised_at: datetime | None = None  # the door time promised at checkout (honest ETA)
    status_times: dict[str, datetime] = Field(default_factory=dict)
    rider_id: uuid.UUID | None = None
    delivery_otp: str | None = Field(default=None, description="shown to the customer only")
    refunds: list[RefundPublic] = Field(default_factory=list)
    substitutions: list[SubstitutionOfferPublic] = Field(default_factory=list)


class CancelRequest(BaseModel):
    reason: str = Field(default="changed my mind", min_length=1, max_length=200)
