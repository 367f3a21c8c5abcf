"""Cities, dark stores and their shelf layout."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Column, Field, SQLModel

from server.kit.columns import Timestamp, tz_field


class City(SQLModel, table=True):
    __tablename__ = "cities"

    city_id: str = Field(primary_key=True, max_length=10)
    name: str = Field(max_length=80)
    timezone: str = Field(default="Asia/Kolkata", max_length=40)


class DarkStoreBase(SQLModel):
    store_name: str = Field(max_length=100)
    city_id: str = Field(foreign_key="cities.city_id", max_length=10, index=True)
    lat: float
    lng: float
    service_radius_m: int = 3000
    is_operational: bool = True
    # "substitute" (picker may substitute), "ask" (customer decides), "never"
    substitution_policy: str = Field(default="substitute", max_length=20)
    # under "ask", what happens when the customer does not answer in time: "substitute"
    # (the proposed product) or "refund" (the line is dropped)
    substitution_fallback: str = Field(
        default="substitute", max_length=20, sa_column_kwargs={"server_default": "substitute"}
    )


class DarkStore(DarkStoreBase, table=True):
    __tablename__ = "dark_stores"

    store_id: str = Field(primary_key=True, max_length=20)
    address: str | None = Field(default=None, max_length=200)
    # GeoJSON Polygon/MultiPolygon; when set it replaces the radius as the service area
    service_zone: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    # {"mon": [["06:00", "02:00"]], ...}; a closing time before the opening one spans midnight
    operating_hours: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    paused_reason: str | None = Field(default=None, max_length=200)
    created_at: Timestamp = tz_field(server_now=True)


class StoreBin(SQLModel, table=True):
    """A pick location. ``walk_seq`` orders bins along the picker's S-shaped path."""

    __tablename__ = "store_bins"

    store_id: str = Field(foreign_key="dark_stores.store_id", primary_key=True, max_length=20)
    bin_code: str = Field(primary_key=True, max_length=20)  # e.g. "B-03-2"
    aisle: str = Field(max_length=4)
    shelf: int
    bin: int
    walk_seq: int
