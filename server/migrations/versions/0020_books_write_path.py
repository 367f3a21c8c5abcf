"""the books' write path (the soft-hold journal writer, ~1,000 movements a batch): stock
rows updated in place (HOT) and one unused reservation index gone

- ``store_inventory`` leaves 20 % of each page free and loses ``idx_low_stock``: an index
  whose predicate names ``available_qty`` made every stock update a new row version with
  new index entries; the low-stock listing walks the store's primary key instead (a few
  thousand rows a store);
- ``ix_inventory_reservations_order_id`` goes: every query of the table names the store,
  which ``uq_reservation_order_sku`` (store_id, order_id, sku_id) serves.

The fill factor applies to pages written from now on (a fresh database, a seed, a
rewrite); existing rows move to free space as they are updated.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("idx_low_stock", table_name="store_inventory")
    op.execute("ALTER TABLE store_inventory SET (fillfactor = 80)")
    op.drop_index(op.f("ix_inventory_reservations_order_id"), table_name="inventory_reservations")


def downgrade() -> None:
    op.create_index(
        op.f("ix_inventory_reservations_order_id"),
        "inventory_reservations",
        ["order_id"],
        unique=False,
    )
    op.execute("ALTER TABLE store_inventory RESET (fillfactor)")
    op.create_index(
        "idx_low_stock",
        "store_inventory",
        ["store_id", "sku_id"],
        unique=False,
        postgresql_where=sa.text("available_qty <= reorder_level"),
    )
