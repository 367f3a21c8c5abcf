"""forecasting: history, factors, forecasts, replenishment

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "demand_forecasts",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("forecast_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_24h", sa.Float(), nullable=False),
        sa.Column("next_72h", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "sku_id", "forecast_at"),
    )
    op.create_index(
        "ix_demand_forecasts_store_time",
        "demand_forecasts",
        ["store_id", "forecast_at"],
        unique=False,
    )
    op.create_table(
        "sales_history",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("hour_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.CheckConstraint("units > 0", name="ck_sales_history_units_positive"),
        sa.PrimaryKeyConstraint("store_id", "sku_id", "hour_start"),
    )
    op.create_table(
        "calendar_events",
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("start_hour", sa.Integer(), nullable=False),
        sa.Column("duration_hours", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("city_id", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(
            ["city_id"],
            ["cities.city_id"],
        ),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(op.f("ix_calendar_events_day"), "calendar_events", ["day"], unique=False)
    op.create_table(
        "weather_days",
        sa.Column("city_id", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rain_mm", sa.Float(), nullable=True),
        sa.Column("rainy", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(
            ["city_id"],
            ["cities.city_id"],
        ),
        sa.PrimaryKeyConstraint("city_id", "day"),
    )
    op.create_table(
        "flash_sale_schedule",
        sa.Column("flash_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(
            ["sku_id"],
            ["products.sku_id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["dark_stores.store_id"],
        ),
        sa.PrimaryKeyConstraint("flash_id"),
        sa.UniqueConstraint(
            "day",
            "sku_id",
            "store_id",
            name="uq_flash_sale_day_sku_store",
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_table(
        "replenishment_orders",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("replenishment_id", sa.Uuid(), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("forecast_24h", sa.Float(), nullable=False),
        sa.Column("forecast_72h", sa.Float(), nullable=False),
        sa.CheckConstraint("quantity > 0 AND cases > 0", name="ck_replenishment_orders_positive"),
        sa.ForeignKeyConstraint(
            ["sku_id"],
            ["products.sku_id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["dark_stores.store_id"],
        ),
        sa.PrimaryKeyConstraint("store_id", "replenishment_id"),
    )
    op.create_index(
        "ix_replenishment_orders_id", "replenishment_orders", ["replenishment_id"], unique=False
    )
    op.create_index(
        "ix_replenishment_orders_open",
        "replenishment_orders",
        ["store_id", "sku_id"],
        unique=False,
        postgresql_where=sa.text("status IN ('PLANNED', 'DISPATCHED')"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_replenishment_orders_open",
        table_name="replenishment_orders",
        postgresql_where=sa.text("status IN ('PLANNED', 'DISPATCHED')"),
    )
    op.drop_index("ix_replenishment_orders_id", table_name="replenishment_orders")
    op.drop_table("replenishment_orders")
    op.drop_table("flash_sale_schedule")
    op.drop_table("weather_days")
    op.drop_index(op.f("ix_calendar_events_day"), table_name="calendar_events")
    op.drop_table("calendar_events")
    op.drop_table("sales_history")
    op.drop_index("ix_demand_forecasts_store_time", table_name="demand_forecasts")
    op.drop_table("demand_forecasts")
