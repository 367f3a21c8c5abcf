"""API schemas the server returns and the apps read (pydantic; no server imports)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from shared.enums import Role

T = TypeVar("T")


class Problem(BaseModel):
    """RFC 9457 problem details plus a stable machine ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] | None = None


class LoginRequest(BaseModel):
    login: str = Field(min_length=1, max_length=80, examples=["picker.koramangala.1"])
    secret: str = Field(
        min_length=1, max_length=128, description="Password or staff PIN", examples=["1111"]
    )


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    login: str
    name: str
    role: Role
    store_id: str | None = None
    city_id: str | None = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: UserPublic


class ServiceCheck(BaseModel):
    ok: bool
    detail: str | None = None


class Health(BaseModel):
    status: str  # "ok" or "degraded"
    postgres: ServiceCheck
    redis: ServiceCheck
    migration: ServiceCheck


class StorePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    store_id: str
    store_name: str
    city_id: str
    lat: float
    lng: float
    service_radius_m: int
    is_operational: bool
    address: str | None = None


class Page(BaseModel, Generic[T]):
    """A page of a cursor-paged list: pass ``next_cursor`` back as ``cursor``."""

    items: list[T]
    next_cursor: str | None = None


class StockRow(BaseModel):
    """Stock of one SKU at one store: physical = available + reserved + damaged + in_transit."""

    model_config = ConfigDict(from_attributes=True)

    store_id: str
    sku_id: str
    available_qty: int
    reserved_qty: int
    damaged_qty: int
    in_transit_qty: int
    reorder_level: int
    max_capacity: int
    bin_code: str | None = None
    version: int

    @property
    def physical_qty(self) -> int:
        return self.available_qty + self.reserved_qty + self.damaged_qty + self.in_transit_qty

    @property
    def low_stock(self) -> bool:
        return self.available_qty <= self.reorder_level


class ReceiveStock(BaseModel):
    quantity: int = Field(ge=1, le=10_000, examples=[24])
    from_transit: bool = Field(
        default=True,
        description="true: a transfer arrives (in_transit -> available); "
        "false: new stock received at the store",
    )
    reference: str | None = Field(default=None, max_length=80, examples=["TRF-20261124-17"])


class DamageStock(BaseModel):
    quantity: int = Field(ge=1, le=10_000, examples=[2])
    reason: str = Field(min_length=1, max_length=200, examples=["crushed carton"])


class CountStock(BaseModel):
    counted: int = Field(
        ge=0, le=100_000, description="units on the shelf, held ones included", examples=[31]
    )
    version: int = Field(ge=0, le=2**62, description="the stock row's version when the count began")
    reason: str | None = Field(default=None, max_length=200)


class ServiceableStore(BaseModel):
    store_id: str
    store_name: str
    distance_m: float
    eta_min: float = Field(description="estimated minutes to the door, queue included")
    orders_in_flight: int
    active_pickers: int
    idle_riders: int


class StoreSelection(BaseModel):
    stores: list[ServiceableStore]
    cell: str = Field(description="location cell the answer is cached for (30 s)")


class CategoryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    category_id: str
    name: str
    sort_order: int


class ProductCard(BaseModel):
    sku_id: str
    name: str
    brand: str
    category_id: str
    pack_size: str
    mrp_paise: int
    price_paise: int
    currency: str = "INR"
    image_url: str | None = None
    available_qty: int = Field(description="live from the reservation engine")
    in_stock: bool


class ProductDetail(BaseModel):
    sku_id: str
    name: str
    brand: str
    category_id: str
    pack_size: str
    weight_grams: int
    barcode: str
    mrp_paise: int
    price_paise: int
    currency: str = "INR"
    image_urls: list[str]


class Availability(BaseModel):
    store_id: str
    available: dict[str, int]


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
    lat: float = Field(ge=-90, le=90, examples=[12.9352])
    lng: float = Field(ge=-180, le=180, examples=[77.6245])


class CheckoutRequest(BaseModel):
    address: DeliveryAddress
    payment_method: str = Field(default="upi", pattern=r"^(upi|card|wallet)$")


class OrderItemPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sku_id: str
    quantity: int
    unit_price_paise: int
    mrp_paise: int
    status: str
    picked_qty: int
    substitute_sku: str | None = None


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
    status_times: dict[str, datetime] = Field(default_factory=dict)
    rider_id: uuid.UUID | None = None
    delivery_otp: str | None = Field(default=None, description="shown to the customer only")


class CancelRequest(BaseModel):
    reason: str = Field(default="changed my mind", min_length=1, max_length=200)


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
    quantity: int
    picked_qty: int
    status: str
    bin_code: str | None
    aisle: str | None
    walk_seq: int | None
    substitute_sku: str | None = None


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
    short_qty: int
    policy: str
    substitutes: list[SubstituteOption]


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


class ShiftChange(BaseModel):
    on_duty: bool


class GpsFix(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    at: datetime
    speed_mps: float | None = Field(default=None, ge=0, le=60)
    heading_deg: float | None = Field(default=None, ge=0, le=360)
    accuracy_m: float | None = Field(default=None, ge=0, le=10_000)


class FixBatch(BaseModel):
    fixes: list[GpsFix] = Field(max_length=5000)


class FixBatchResult(BaseModel):
    accepted: int
    duplicates: int


class RiderPublic(BaseModel):
    rider_id: uuid.UUID
    status: str
    on_duty: bool
    lat: float | None
    lng: float | None
    trip_id: uuid.UUID | None = None


class TripStopPublic(BaseModel):
    order_id: uuid.UUID
    seq: int
    status: str
    lat: float
    lng: float
    address: str | None
    planned_arrival_at: datetime | None
    sla_deadline: datetime | None
    order_status: str


class TripPublic(BaseModel):
    trip_id: uuid.UUID
    store_id: str
    store_lat: float
    store_lng: float
    status: str
    stops: list[TripStopPublic]


class PickupRequest(BaseModel):
    bag_labels: list[str] = Field(min_length=1, max_length=20)


class DeliverRequest(BaseModel):
    otp: str = Field(pattern=r"^[0-9]{4}$")


class FailRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=200)
