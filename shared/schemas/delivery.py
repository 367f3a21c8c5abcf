"""The rider handheld: shift, GPS fixes, trips and their stops."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class ShiftChange(BaseModel):
    on_duty: bool


class GpsFix(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    at: datetime
    speed_mps: float | None = Field(default=None, ge=0, le=60)
    heading_deg: float | None = Field(default=None, ge=0, le=360)
    accuracy_m: float | None = Field(default=None, ge=0, le=10_000)
    # the handheld's battery: the dispatcher's battery term reads the last one reported
    battery_pct: float | None = Field(default=None, ge=0, le=100)


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
    # the store the rider works for (a manager may move them to another one)
    home_store_id: str | None = None
    home_store_name: str | None = None


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
    # what the customer wrote at checkout, for the rider at the door
    landmark: str | None = None
    instructions: str | None = None
    # the customer's number to call: only on the trip's own rider's view, while the drop is open
    customer_phone: str | None = None


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
