"""rider location offsets: how far PostgreSQL holds each city's stream of sampled fixes

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rider_location_offsets",
        sa.Column("city_id", sa.String(length=10), nullable=False),
        sa.Column("applied_id", sa.String(length=40), nullable=False),
        sa.Column(
            "applied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["city_id"], ["cities.city_id"]),
        sa.PrimaryKeyConstraint("city_id"),
    )


def downgrade() -> None:
    op.drop_table("rider_location_offsets")
