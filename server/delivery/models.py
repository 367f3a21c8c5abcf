"""Riders and their sampled location history."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel

from server.kit.columns import Timestamp, enum_field, tz_field
from shared.enums import RiderStatus


class Rider(SQLModel, table=True):
    __tablename__ = "riders"

    rider_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True)
    city_id: str = Field(foreign_key="cities.city_id", max_length=10, index=True)
    home_store_id: str | None = Field(
        default=None, foreign_key="dark_stores.store_id", max_length=20
    )
    vehicle: str = Field(default="scooter", max_length=20)  # bicycle, scooter, ev-scooter
    rating: float = Field(default=4.5, ge=0, le=5)
    battery_pct: float = Field(default=100, ge=0, le=100)
    status: RiderStatus = enum_field(RiderStatus.OFFLINE, max_length=20)
    on_duty: bool = False
    lat: float | None = None
    lng: float | None = None
    last_fix_at: Timestamp = tz_field()
    # the trip the rider goes to the store for next (offered, accepted or at the store);
    # set only while empty (``trips.claim_rider``): one next trip per rider, race-free
    next_trip_id: uuid.UUID | None = None


class RiderLocation(SQLModel, table=True):
    """Sampled history of fixes (live positions live in Redis GEO)."""

    __tablename__ = "rider_locations"

    rider_id: uuid.UUID = Field(primary_key=True)
    recorded_at: datetime = Field(sa_type=DateTime(timezone=True), primary_key=True)
    lat: float
    lng: float
    speed_mps: float | None = None
    accuracy_m: float | None = None


class RiderLocationOffset(SQLModel, table=True):
    """How far PostgreSQL holds a city's stream of sampled fixes (``riderlog:{C}``): the
    history writer locks this row, writes the entries after it and moves it in the same
    transaction, so each fix reaches ``rider_locations`` exactly once."""

    __tablename__ = "rider_location_offsets"

    city_id: str = Field(foreign_key="cities.city_id", primary_key=True, max_length=10)
    applied_id: str = Field(default="0-0", max_length=40)
    applied_at: Timestamp = tz_field(server_now=True)


class RiderShift(SQLModel, table=True):
    __tablename__ = "rider_shifts"

    rider_id: uuid.UUID = Field(primary_key=True)
    started_at: datetime = Field(sa_type=DateTime(timezone=True), primary_key=True)
    ended_at: Timestamp = tz_field()


class Trip(SQLModel, table=True):
    """One rider run from a store: a single order or a batch of up to three."""

    __tablename__ = "trips"

    # keyed (store_id, trip_id) like every per-store table (Citus)
    store_id: str = Field(max_length=20, primary_key=True)
    trip_id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True, index=True)
    rider_id: uuid.UUID = Field(index=True)
    # OFFERED, ACCEPTED, AT_STORE, PICKED_UP, OUT, COMPLETED, CANCELLED
    status: str = Field(default="OFFERED", max_length=20)
    created_at: Timestamp = tz_field(server_now=True)
    updated_at: Timestamp = tz_field(server_now=True)
    planned_depart_at: Timestamp = tz_field()


class TripStop(SQLModel, table=True):
    __tablename__ = "trip_stops"

    store_id: str = Field(max_length=20, primary_key=True)  # the trip's store (Citus key)
    trip_id: uuid.UUID = Field(primary_key=True, index=True)  # a trip's stops by its id alone
    order_id: uuid.UUID = Field(primary_key=True, index=True)
    seq: int
    status: str = Field(default="PENDING", max_length=20)  # PENDING, ARRIVED, DELIVERED, FAILED
    planned_arrival_at: Timestamp = tz_field()
    otp_attempts: int = 0
    otp_locked: bool = False
    arrived_at: Timestamp = tz_field()
    delivered_at: Timestamp = tz_field()
    failed_reason: str | None = Field(default=None, max_length=200)
