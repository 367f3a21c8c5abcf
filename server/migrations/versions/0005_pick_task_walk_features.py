"""pick task walk features

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "pick_tasks", sa.Column("bin_steps", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "pick_tasks", sa.Column("aisle_changes", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "pick_tasks", sa.Column("units", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("pick_tasks", "units")
    op.drop_column("pick_tasks", "aisle_changes")
    op.drop_column("pick_tasks", "bin_steps")
