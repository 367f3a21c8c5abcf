"""Citus-ready keys: per-store keys for carts, trips, trip stops and the outbox; no
foreign keys from the store's books to users; the order directory; the Citus layout
(reference and distributed tables) when the citus extension is installed

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.kit import citus

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _drop_foreign_keys(table: str, referred: str) -> None:
    """Drop ``table``'s foreign keys to ``referred`` whatever they were named."""
    names = op.get_bind().execute(
        sa.text(
            "SELECT conname FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid = CAST(:t AS regclass) AND confrelid = CAST(:r AS regclass)"
        ),
        {"t": table, "r": referred},
    )
    for (name,) in list(names):
        op.drop_constraint(name, table, type_="foreignkey")


def _rekey(table: str, columns: list[str]) -> None:
    op.drop_constraint(f"{table}_pkey", table, type_="primary")
    op.create_primary_key(f"{table}_pkey", table, columns)


def upgrade() -> None:
    _drop_foreign_keys("carts", "users")
    _rekey("carts", ["store_id", "cart_id"])
    op.create_index(op.f("ix_carts_cart_id"), "carts", ["cart_id"])

    _drop_foreign_keys("orders", "users")

    op.drop_index(op.f("ix_trips_store_id"), table_name="trips")
    _rekey("trips", ["store_id", "trip_id"])
    op.create_index(op.f("ix_trips_trip_id"), "trips", ["trip_id"])

    op.add_column("trip_stops", sa.Column("store_id", sa.String(length=20)))
    op.execute(
        "UPDATE trip_stops s SET store_id = t.store_id FROM trips t WHERE t.trip_id = s.trip_id"
    )
    op.alter_column("trip_stops", "store_id", nullable=False)
    _rekey("trip_stops", ["store_id", "trip_id", "order_id"])

    # every emitter names its store; older rows without one were published long ago
    op.execute("UPDATE outbox SET store_id = '' WHERE store_id IS NULL")
    op.alter_column("outbox", "store_id", existing_type=sa.String(length=20), nullable=False)
    _rekey("outbox", ["store_id", "event_id"])

    op.drop_index("uq_inventory_tokens_one_claim", table_name="inventory_tokens")
    op.create_index(
        "uq_inventory_tokens_one_claim",
        "inventory_tokens",
        ["store_id", "sale_id", "claimed_by"],
        unique=True,
        postgresql_where=sa.text("status = 'CLAIMED'"),
    )

    op.create_table(
        "order_directory",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.execute(
        "INSERT INTO order_directory (order_id, store_id) SELECT order_id, store_id FROM orders"
    )

    citus.lay_out(op.get_bind())


def downgrade() -> None:
    op.drop_table("order_directory")
    op.drop_index("uq_inventory_tokens_one_claim", table_name="inventory_tokens")
    op.create_index(
        "uq_inventory_tokens_one_claim",
        "inventory_tokens",
        ["sale_id", "claimed_by"],
        unique=True,
        postgresql_where=sa.text("status = 'CLAIMED'"),
    )
    _rekey("outbox", ["event_id"])
    op.alter_column("outbox", "store_id", existing_type=sa.String(length=20), nullable=True)
    _rekey("trip_stops", ["trip_id", "order_id"])
    op.drop_column("trip_stops", "store_id")
    op.drop_index(op.f("ix_trips_trip_id"), table_name="trips")
    _rekey("trips", ["trip_id"])
    op.create_index(op.f("ix_trips_store_id"), "trips", ["store_id"])
    op.create_foreign_key(None, "orders", "users", ["user_id"], ["id"])
    op.drop_index(op.f("ix_carts_cart_id"), table_name="carts")
    _rekey("carts", ["cart_id"])
    op.create_foreign_key(None, "carts", "users", ["user_id"], ["id"])
