"""riders.next_trip_id: the trip a rider goes to the store for next, set only while empty
(one next trip per rider, decided on the rider's row); orders.promised_at: the door time
promised at checkout

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("riders", sa.Column("next_trip_id", sa.Uuid(), nullable=True))
    op.add_column("orders", sa.Column("promised_at", sa.DateTime(timezone=True), nullable=True))
    # trips already waiting for their rider keep them (the newest, should there be two)
    op.execute(
        """
        UPDATE riders r SET next_trip_id = t.trip_id
        FROM (SELECT DISTINCT ON (rider_id) rider_id, trip_id FROM trips
              WHERE status IN ('OFFERED', 'ACCEPTED', 'AT_STORE')
              ORDER BY rider_id, created_at DESC) t
        WHERE t.rider_id = r.rider_id"""
    )


def downgrade() -> None:
    op.drop_column("orders", "promised_at")
    op.drop_column("riders", "next_trip_id")
