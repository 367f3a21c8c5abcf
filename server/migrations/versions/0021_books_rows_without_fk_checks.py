"""the books' high-volume rows without foreign-key checks: a reservation's store and SKU
and a ledger row's store (the ledger's SKU never had one)

Each check is a per-row trigger query: ~9 us of PostgreSQL's ~30 a movement in the soft-hold
journal writer's batches (a reservation row and a ledger row per movement). The rows are
written only by the inventory paths, for SKUs the Lua gate admitted from a loaded store,
i.e. ``store_inventory`` rows, which keep their keys to the store and the product; no
path deletes a store or a product.

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = [
    ("inventory_reservations", "inventory_reservations_store_id_fkey", "store_id", "dark_stores"),
    ("inventory_reservations", "inventory_reservations_sku_id_fkey", "sku_id", "products"),
    ("stock_ledger", "stock_ledger_store_id_fkey", "store_id", "dark_stores"),
]


def upgrade() -> None:
    for table, name, _, _ in _KEYS:
        op.drop_constraint(name, table, type_="foreignkey")


def downgrade() -> None:
    for table, name, column, referred in _KEYS:
        op.create_foreign_key(name, table, referred, [column], [column])
