"""inventory reservations keyed by their line (store, order, sku): the random-uuid primary
key and the active-expiry index go

The soft-hold journal writer upserts ~1,000 reservation rows a batch; each row cost an
entry in three indexes (measured: ~17-23 us of PostgreSQL CPU a row, ~11 with the one
index left). The unique (store_id, order_id, sku_id) becomes the primary key: it is what
every lookup and the upsert name; ``reservation_id`` stays as a column (filled by default)
but nothing reads by it. No query orders holds by expiry (the sweeper finds due holds in
Redis); the reconciler's read of a store's active holds walks the store's rows by the key,
as its read of the last day's ended holds in the same look already did.

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_T = "inventory_reservations"


def upgrade() -> None:
    op.drop_index("ix_reservations_active_expiry", table_name=_T)
    op.drop_constraint("inventory_reservations_pkey", _T, type_="primary")
    op.drop_constraint("uq_reservation_order_sku", _T, type_="unique")
    op.create_primary_key("inventory_reservations_pkey", _T, ["store_id", "order_id", "sku_id"])
    op.alter_column(_T, "reservation_id", server_default=sa.text("gen_random_uuid()"))


def downgrade() -> None:
    op.alter_column(_T, "reservation_id", server_default=None)
    op.drop_constraint("inventory_reservations_pkey", _T, type_="primary")
    op.create_primary_key("inventory_reservations_pkey", _T, ["store_id", "reservation_id"])
    op.create_unique_constraint("uq_reservation_order_sku", _T, ["store_id", "order_id", "sku_id"])
    op.create_index(
        "ix_reservations_active_expiry",
        _T,
        ["store_id", "expires_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('SOFT', 'HARD')"),
    )
