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
    flash: FlashOffer | None = Field(default=None, description="a live flash sale of it here")


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
    flash: FlashOffer | None = Field(default=None, description="a live flash sale of it here")


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
    quantity: int = Field(description="units to pick: fewer than ordered after a short pick")
    ordered_qty: int | None = Field(default=None, description=ORDERED_QTY)
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
    short_qty: int = Field(description="units of the line short in all: ordered - found")
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


class RefusedFix(BaseModel):
    at: datetime
    code: str  # fix_in_future, fix_too_old, naive_time
    detail: str


class FixBatchResult(BaseModel):
    accepted: int
    duplicates: int
    refused: list[RefusedFix] = Field(default_factory=list)  # left out; the rest applied


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
    # the server's ETA at the door from the rider's last position, the customer's ETA;
    # None once the drop is closed or while the rider's position is unknown
    eta_at: datetime | None = None


class TripPublic(BaseModel):
    trip_id: uuid.UUID
    store_id: str
    store_lat: float
    store_lng: float
    status: str
    stops: list[TripStopPublic]
    # The server clock may run faster than real time: a handheld judges deadlines by
    # server_now, moved on by the real time since the answer came x clock_speed.
    server_now: datetime | None = None
    clock_speed: float = 1.0  # simulated seconds per real second (sped-up demos)
    offer_expires_at: datetime | None = None  # OFFERED only: then it goes to someone else


class PickupRequest(BaseModel):
    bag_labels: list[str] = Field(min_length=1, max_length=20)


class DeliverRequest(BaseModel):
    otp: str = Field(pattern=r"^[0-9]{4}$")


class FailRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=200)


class ReleaseRequest(BaseModel):
    """Why the rider gives a trip back before pickup (bags not ready, vehicle problem)."""

    reason: str = Field(min_length=1, max_length=200)


# --- control tower (ops) ------------------------------------------------------------------


class StoreOps(BaseModel):
    """One dark store's live numbers in the control-tower feed."""

    store_id: str
    name: str
    lat: float
    lng: float
    is_operational: bool
    paused_reason: str | None = None
    service_radius_m: int
    orders_by_state: dict[str, int] = Field(default_factory=dict)  # active orders only
    oldest_wait_s: float = 0.0  # oldest order not yet handed to a rider
    predicted_breaches: int = 0
    active_pickers: int = 0
    idle_riders: int = 0
    busy_riders: int = 0
    low_stock: int = 0
    stock_outs: int = 0
    stockout_risk: int = 0  # SKUs the forecast says run out within 24 h
    risk: float = 0.0  # 0..1, higher is worse; the table sorts by it


class OpsOrder(BaseModel):
    """An active order as the store drill-down shows it."""

    order_id: uuid.UUID
    store_id: str
    status: str
    placed_at: datetime
    age_s: float  # at ``at`` of the message that carried it; count on from ``placed_at``
    sla_deadline: datetime | None
    predicted_breach: bool
    rider_id: uuid.UUID | None = None
    drop_lat: float | None = None
    drop_lng: float | None = None


class OpsRider(BaseModel):
    rider_id: uuid.UUID
    name: str
    store_id: str | None
    status: str
    lat: float | None
    lng: float | None
    idle_s: float | None = None  # time since the rider's last status change when IDLE


class OpsPicker(BaseModel):
    user_id: uuid.UUID
    name: str
    store_id: str
    picking_order_id: uuid.UUID | None = None


class FlashQueueOps(BaseModel):
    sale_id: uuid.UUID
    sku_id: str
    status: str
    waiting: int
    in_checkout: int
    tokens_left: int
    sold: int


class CityOps(BaseModel):
    city_id: str
    orders_last_minute: int
    orders_per_minute: list[int] = Field(default_factory=list)  # last 30 min, oldest first
    delivered_today: int
    within_10_share: float | None  # of today's deliveries, None before the first one
    within_15_share: float | None
    p50_door_s: float | None
    p90_door_s: float | None
    cancellations_by_reason: dict[str, int] = Field(default_factory=dict)
    flash_queues: list[FlashQueueOps] = Field(default_factory=list)


class AlertPublic(BaseModel):
    alert_id: uuid.UUID
    kind: str  # shared.enums.AlertKind
    severity: str  # shared.enums.AlertSeverity
    store_id: str | None
    subject: str | None  # what it is about: an order, a rider, a SKU
    message: str
    raised_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: uuid.UUID | None = None
    resolved_at: datetime | None = None


class OpsSnapshot(BaseModel):
    """The whole city, sent on connect (``type`` "snapshot") and by ``GET /v1/ops/snapshot``."""

    type: str = "snapshot"
    at: datetime
    clock_speed: float = 1.0  # simulated seconds per real second (sped-up demos)
    city: CityOps
    stores: list[StoreOps]
    orders: list[OpsOrder]
    riders: list[OpsRider]
    pickers: list[OpsPicker]
    alerts: list[AlertPublic]  # open (unresolved) alerts, newest first


class OpsChanges(BaseModel):
    """What changed since the previous message on the same socket (``type`` "changes").
    Lists hold upserts by id; ``removed_*`` hold ids that left the view."""

    type: str = "changes"
    at: datetime
    city: CityOps | None = None
    stores: list[StoreOps] = Field(default_factory=list)
    orders: list[OpsOrder] = Field(default_factory=list)
    removed_orders: list[uuid.UUID] = Field(default_factory=list)
    riders: list[OpsRider] = Field(default_factory=list)
    removed_riders: list[uuid.UUID] = Field(default_factory=list)
    pickers: list[OpsPicker] = Field(default_factory=list)
    removed_pickers: list[uuid.UUID] = Field(default_factory=list)
    alerts: list[AlertPublic] = Field(default_factory=list)
    removed_alerts: list[uuid.UUID] = Field(default_factory=list)


class PauseStore(BaseModel):
    reason: str = Field(min_length=1, max_length=200)


class StoreRadius(BaseModel):
    service_radius_m: StrictInt = Field(ge=500, le=10_000)
    reason: str | None = Field(default=None, max_length=200)


class ReassignOrder(BaseModel):
    rider_id: uuid.UUID
    reason: str = Field(min_length=1, max_length=200)


class OpsCancelOrder(BaseModel):
    reason: str = Field(min_length=1, max_length=200)


class AuditEntry(BaseModel):
    entry_id: int
    at: datetime
    actor_id: uuid.UUID
    city_id: str
    action: str
    target: str
    reason: str | None
    details: dict[str, Any] = Field(default_factory=dict)


# --- flash sales --------------------------------------------------------------------------
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


ProductCard.model_rebuild()
ProductDetail.model_rebuild()
