"""substitution offers (store policy "ask") and the store's fallback when no answer comes

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "dark_stores",
        sa.Column(
            "substitution_fallback",
            sa.String(length=20),
            server_default="substitute",
            nullable=False,
        ),
    )
    op.create_table(
        "substitution_offers",
        sa.Column("store_id", sa.String(length=20), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("sku_id", sa.String(length=50), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("proposed_sku", sa.String(length=50), nullable=False),
        sa.Column("candidates", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("chosen_sku", sa.String(length=50), nullable=True),
        sa.Column("decided_by", sa.String(length=20), nullable=True),
        sa.Column("picker_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("store_id", "order_id", "sku_id"),
    )
    op.create_index(
        "ix_substitution_offers_due",
        "substitution_offers",
        ["store_id", "expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'PENDING'"),
    )


def downgrade() -> None:
    op.drop_index("ix_substitution_offers_due", table_name="substitution_offers")
    op.drop_table("substitution_offers")
    op.drop_column("dark_stores", "substitution_fallback")
