"""inventory reservations: an index on (store_id, created_at) for the retention purge

The per-store loop ``inventory-retention`` (``server/inventory/retention.py``) deletes the
rows of holds that ended longer ago than ``QC_RESERVATION_RETENTION_S``, a bounded batch
oldest first; without this index each batch walked the store's whole primary key. It is
on ``created_at``, which no update of a row changes, so ending or extending a hold stays
eligible for a HOT update (an index on ``updated_at`` or ``status`` would take that away);
the cost is one more index entry per new row (the journal writer's upserts of new lines).

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # built beside the table's writes, not in front of them: a live city's table holds
    # millions of rows and its stores keep reserving while it builds
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_inventory_reservations_created",
            "inventory_reservations",
            ["store_id", "created_at"],
            unique=False,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    op.drop_index("ix_inventory_reservations_created", table_name="inventory_reservations")
