"""Tables of demand forecasting and replenishment.

* ``sales_history``: units sold per store x SKU per hour (only hours that sold: absent = 0).
  The bulk-loaded fact table: no foreign keys (they would check every one of ~5 M COPY rows;
  the loader takes its store and SKU ids from ``dark_stores``/``products``).
* ``sales_stockout_hours``: the hours of a store x SKU whose sales are censored (the shelf
  was empty at some moment of the hour), so a model does not read them as low demand.
* ``weather_days``, ``calendar_events``, ``flash_sale_schedule``: the external drivers the
  model reads (``source`` says whether a row was imported or generated for the demo; an
  imported row always wins over a synthetic one).
* ``demand_forecasts``: one row per store x SKU per forecast run (``forecast_at`` = origin).
* ``replenishment_orders``: PLANNED -> DISPATCHED (units in transit) -> RECEIVED (available).

Dates and hours of the factor tables are Asia/Kolkata local (a match at ``start_hour`` 19
starts at 19:00 IST); timestamps are ``timestamptz``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Identity,
    Index,
    UniqueConstraint,
    text,
)
from sqlmodel import Column, Field, SQLModel

from server.kit.columns import Timestamp, enum_field, tz_field


class ReplenishmentStatus(StrEnum):
    PLANNED = "PLANNED"  # decided by the rule, nothing moved yet
    DISPATCHED = "DISPATCHED"  # left the warehouse: units are in the store's in_transit bucket
    RECEIVED = "RECEIVED"  # arrived: in_transit -> available


class FactorSource(StrEnum):
    IMPORT = "import"  # from a CSV (real data): never overwritten by synthetic rows
    SYNTHETIC = "synthetic"  # generated with the demo history
    SYSTEM = "system"  # a flash sale the system itself ran (copied by the hourly roll-up)


class SalesHistory(SQLModel, table=True):
    __tablename__ = "sales_history"
    __table_args__ = (CheckConstraint("units > 0", name="ck_sales_history_units_positive"),)

    store_id: str = Field(primary_key=True, max_length=20)
    sku_id: str = Field(primary_key=True, max_length=50)
    hour_start: datetime = Field(
        sa_type=DateTime(timezone=True),
        primary_key=True,
    )
    units: int


class StockoutHour(SQLModel, table=True):
    """A store x SKU local hour in which the shelf was empty at some moment (``available``
    reached 0): its sales are censored, a lower bound on demand, not demand. Written by the
    hourly roll-up (``server/forecast/rollup.py``) next to the hour's ``sales_history`` row."""

    __tablename__ = "sales_stockout_hours"

    store_id: str = Field(primary_key=True, max_length=20)
    sku_id: str = Field(primary_key=True, max_length=50)
    hour_start: datetime = Field(sa_type=DateTime(timezone=True), primary_key=True)


class DailyWeather(SQLModel, table=True):
    """Rain in one city on one local day. ``rainy`` is the flag as the model reads it
    (given, or ``rain_mm >= 2.5``); ``rain_mm`` is NULL when the source only had the flag."""

    __tablename__ = "weather_days"

    city_id: str = Field(foreign_key="cities.city_id", primary_key=True, max_length=10)
    day: date = Field(primary_key=True)
    rain_mm: float | None = Field(default=None, sa_type=Float)
    rainy: bool
    source: FactorSource = enum_field(FactorSource.IMPORT, max_length=12)


class CalendarEvent(SQLModel, table=True):
    """A scheduled event (only ``kind = 'cricket'`` moves demand). ``city_id`` NULL:
    watched everywhere. ``event_id`` is derived from the event's fields, so importing the
    same file twice updates instead of duplicating."""

    __tablename__ = "calendar_events"

    event_id: str = Field(primary_key=True, max_length=64)
    day: date = Field(index=True)
    start_hour: int = Field(ge=0, le=23)
    duration_hours: int = Field(default=5, ge=1, le=24)
    kind: str = Field(default="cricket", max_length=30)
    name: str = Field(default="", max_length=200)
    city_id: str | None = Field(default=None, foreign_key="cities.city_id", max_length=10)
    source: FactorSource = enum_field(FactorSource.IMPORT, max_length=12)


class FlashSaleSchedule(SQLModel, table=True):
    """One SKU on sale on one local day in one store (``store_id`` NULL: every store)."""

    __tablename__ = "flash_sale_schedule"
    __table_args__ = (
        UniqueConstraint(
            "day",
            "sku_id",
            "store_id",
            name="uq_flash_sale_day_sku_store",
            postgresql_nulls_not_distinct=True,
        ),
    )

    flash_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(), primary_key=True)
    )
    day: date
    sku_id: str = Field(foreign_key="products.sku_id", max_length=50)
    store_id: str | None = Field(default=None, foreign_key="dark_stores.store_id", max_length=20)
    source: FactorSource = enum_field(FactorSource.IMPORT, max_length=12)


class DemandForecast(SQLModel, table=True):
    """Expected units over the 24 h and 72 h after ``forecast_at`` (the run's origin)."""

    __tablename__ = "demand_forecasts"
    __table_args__ = (Index("ix_demand_forecasts_store_time", "store_id", "forecast_at"),)

    store_id: str = Field(primary_key=True, max_length=20)
    sku_id: str = Field(primary_key=True, max_length=50)
    forecast_at: datetime = Field(
        sa_type=DateTime(timezone=True),
        primary_key=True,
    )
    next_24h: float = Field(sa_type=Float)
    next_72h: float = Field(sa_type=Float)


class ReplenishmentOrder(SQLModel, table=True):
    """A warehouse -> dark store order for one SKU, keyed by store like every per-store table
    (``replenishment_id`` alone has a plain index for lookups)."""

    __tablename__ = "replenishment_orders"
    __table_args__ = (
        Index("ix_replenishment_orders_id", "replenishment_id"),
        Index(
            "ix_replenishment_orders_open",
            "store_id",
            "sku_id",
            postgresql_where=text("status IN ('PLANNED', 'DISPATCHED')"),
        ),
        CheckConstraint("quantity > 0 AND cases > 0", name="ck_replenishment_orders_positive"),
    )

    store_id: str = Field(foreign_key="dark_stores.store_id", primary_key=True, max_length=20)
    replenishment_id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    sku_id: str = Field(foreign_key="products.sku_id", max_length=50)
    quantity: int  # units: a whole number of case packs
    cases: int
    status: ReplenishmentStatus = enum_field(ReplenishmentStatus.PLANNED, max_length=20)
    created_at: Timestamp = tz_field(server_now=True)
    dispatched_at: Timestamp = tz_field()
    received_at: Timestamp = tz_field()
    forecast_24h: float = Field(sa_type=Float)
    forecast_72h: float = Field(sa_type=Float)
