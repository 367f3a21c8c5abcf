"""The control tower: the city feed (snapshot, changes), alerts, manager actions, audit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt


class StoreOps(BaseModel):
    """One dark store's live numbers in the control-tower feed."""

    store_id: str
    name: str
    lat: float
    lng: float
    is_operational: bool
    paused_reason: str | None = None
    opens_at: datetime | None = None  # closed by its hours: its next opening (city's zone)
    service_radius_m: int
    # what a picker's short line becomes: "substitute" (the picker picks one), "ask" (the
    # customer chooses; no answer in time: the fallback, "substitute" or "refund"), "never"
    substitution_policy: str = "substitute"
    substitution_fallback: str = "substitute"
    orders_by_state: dict[str, int] = Field(default_factory=dict)  # active orders only
    oldest_wait_s: float = 0.0  # oldest order not yet handed to a rider
    predicted_breaches: int = 0
    active_pickers: int = 0
    idle_riders: int = 0
    busy_riders: int = 0
    low_stock: int = 0
    stock_outs: int = 0  # SKUs with none on the shelf, whatever the cause
    sold_out_today: int = 0  # of those, sold out since the city's midnight (not never stocked)
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
    timezone: str | None = None  # the city's IANA zone ("Asia/Kolkata"): times are shown in it
    orders_last_minute: int
    orders_per_minute: list[int] = Field(default_factory=list)  # last 30 min, oldest first
    delivered_today: int
    within_10_share: float | None  # of today's deliveries, None before the first one
    within_15_share: float | None
    p50_door_s: float | None
    p90_door_s: float | None
    # serviceability asks today and the share refused because no store reached them in time
    # (a store that refused everyone would keep any promise: the two are read together)
    asks_today: int = 0
    refused_share: float | None = None
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


class StoreSubstitution(BaseModel):
    """How the store's short lines are settled (see ``StoreOps.substitution_policy``)."""

    policy: Literal["substitute", "ask", "never"]
    fallback: Literal["substitute", "refund"] = "substitute"
    reason: str | None = Field(default=None, max_length=200)


class ReassignOrder(BaseModel):
    rider_id: uuid.UUID
    reason: str = Field(min_length=1, max_length=200)


class MoveRider(BaseModel):
    """Send a rider to work for another store of the city."""

    store_id: str = Field(min_length=1, max_length=20, pattern=r"^[A-Z0-9-]+$")
    reason: str = Field(min_length=1, max_length=200)


class RiderMoved(BaseModel):
    rider_id: uuid.UUID
    from_store_id: str | None
    store_id: str
    status: str


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


class ServerClockPublic(BaseModel):
    """The server's clock: a terminal (and ``qc token``) sets its own by it. ``speed`` is
    simulated seconds per real second (a demo runs the world faster)."""

    now: datetime
    speed: float


class StageFigures(BaseModel):
    """One stage of an order's way to the door, over the recent window: how many orders
    finished the stage in it, and the time they spent in it."""

    stage: str  # confirm, queue, pick, handover, ride, door, total
    label: str  # "placed→confirmed"
    count: int
    p50_s: float | None = None
    p90_s: float | None = None


class StoreStages(BaseModel):
    store_id: str
    stages: list[StageFigures]


class StageBreakdown(BaseModel):
    """Where the minutes go, per store: stages that ended in the last ``window_s``."""

    city_id: str
    now: datetime
    window_s: int
    stores: list[StoreStages]
