"""refunds are paid out: attempts, next attempt, provider reference, failure, update time

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "refunds", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("refunds", sa.Column("next_attempt_at", sa.DateTime(timezone=True)))
    op.add_column("refunds", sa.Column("provider_ref", sa.String(length=80)))
    op.add_column("refunds", sa.Column("failure_reason", sa.String(length=200)))
    op.add_column("refunds", sa.Column("updated_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_refunds_pending",
        "refunds",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )


def downgrade() -> None:
    op.drop_index("ix_refunds_pending", table_name="refunds")
    for column in ("updated_at", "failure_reason", "provider_ref", "next_attempt_at", "attempts"):
        op.drop_column("refunds", column)
