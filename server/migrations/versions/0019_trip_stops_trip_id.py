"""trip stops by trip: a trip's stops are read by its id alone (every trip action, the
geofence, the dispatcher's offer), which the (store_id, trip_id, order_id) key cannot serve

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_trip_stops_trip_id"), "trip_stops", ["trip_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_trip_stops_trip_id"), table_name="trip_stops")
