"""order_items.ordered_qty: what the customer ordered, kept through short picks

Revision ID: 0009
Revises: 0008

Backfill: until now a short pick overwrote ``quantity`` with the units found and wrote one
SHORT_PICK ledger entry per report (reference = the order id, reason
"short pick: <units short> <missing|damaged>", unchanged since picking was written). The
ledger is never updated, so each row's ordered quantity is its ``quantity`` plus the units
its SHORT_PICK entries name; rows never shorted (and substitutes) get their ``quantity``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("order_items", sa.Column("ordered_qty", sa.Integer(), nullable=True))
    op.execute("""
        WITH shorts AS (
            SELECT store_id, reference, sku_id,
                   sum(substring(reason FROM '^short pick: (\\d+)')::int) AS units
            FROM stock_ledger
            WHERE movement = 'SHORT_PICK' AND reason ~ '^short pick: \\d+'
            GROUP BY store_id, reference, sku_id)
        UPDATE order_items i
        SET ordered_qty = i.quantity + coalesce((
            SELECT s.units FROM shorts s
            WHERE s.store_id = i.store_id AND s.reference = i.order_id::text
              AND s.sku_id = i.sku_id), 0)""")
    op.alter_column("order_items", "ordered_qty", nullable=False)
    op.create_check_constraint(
        "ck_order_items_quantity_ordered", "order_items", "quantity <= ordered_qty"
    )


def downgrade() -> None:
    op.drop_constraint("ck_order_items_quantity_ordered", "order_items", type_="check")
    op.drop_column("order_items", "ordered_qty")
