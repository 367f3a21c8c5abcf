"""Dark stores and which of them serve a location."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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


class ServiceableStore(BaseModel):
    store_id: str
    store_name: str
    distance_m: float
    eta_min: float = Field(description="estimated minutes to the door, queue included")
    orders_in_flight: int
    active_pickers: int
    idle_riders: int
    effective_radius_m: float = Field(
        default=0.0,
        description="how far the store delivers in time right now (it shrinks "
        "while its queue or riders are stretched)",
    )


class StoreSelection(BaseModel):
    stores: list[ServiceableStore]
    cell: str = Field(description="location cell the answer is cached for (30 s)")
