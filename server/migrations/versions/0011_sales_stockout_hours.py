"""sales_stockout_hours: the censored hours of the sales history

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sales_stockout_hours",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("hour_start", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "sku_id", "hour_start"),
    )


def downgrade() -> None:
    op.drop_table("sales_stockout_hours")
