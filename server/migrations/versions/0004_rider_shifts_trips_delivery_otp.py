"""rider shifts, trips, delivery otp

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rider_shifts",
        sa.Column("rider_id", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("rider_id", "started_at"),
    )
    op.create_table(
        "trip_stops",
        sa.Column("trip_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("planned_arrival_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("otp_attempts", sa.Integer(), nullable=False),
        sa.Column("otp_locked", sa.Boolean(), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.PrimaryKeyConstraint("trip_id", "order_id"),
    )
    op.create_index(op.f("ix_trip_stops_order_id"), "trip_stops", ["order_id"], unique=False)
    op.create_table(
        "trips",
        sa.Column("trip_id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("rider_id", sa.Uuid(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("planned_depart_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("trip_id"),
    )
    op.create_index(op.f("ix_trips_rider_id"), "trips", ["rider_id"], unique=False)
    op.create_index(op.f("ix_trips_store_id"), "trips", ["store_id"], unique=False)
    op.add_column(
        "orders",
        sa.Column("delivery_otp", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("orders", "delivery_otp")
    op.drop_index(op.f("ix_trips_store_id"), table_name="trips")
    op.drop_index(op.f("ix_trips_rider_id"), table_name="trips")
    op.drop_table("trips")
    op.drop_index(op.f("ix_trip_stops_order_id"), table_name="trip_stops")
    op.drop_table("trip_stops")
    op.drop_table("rider_shifts")
