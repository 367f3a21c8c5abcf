"""flash sales and inventory tokens

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flash_sales",
        sa.Column("sale_id", sa.Uuid(), nullable=False),
        sa.Column("city_id", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("sale_price_paise", sa.Integer(), nullable=False),
        sa.Column("per_customer_limit", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_by", sa.Uuid(), nullable=True),
        sa.Column("stop_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.CheckConstraint("ends_at > starts_at", name="ck_flash_sales_window"),
        sa.ForeignKeyConstraint(["city_id"], ["cities.city_id"]),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["sku_id"], ["products.sku_id"]),
        sa.PrimaryKeyConstraint("sale_id"),
    )
    op.create_index(
        "ix_flash_sales_city_status", "flash_sales", ["city_id", "status"], unique=False
    )
    op.create_table(
        "flash_sale_stores",
        sa.Column("sale_id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["sale_id"], ["flash_sales.sale_id"]),
        sa.ForeignKeyConstraint(["store_id"], ["dark_stores.store_id"]),
        sa.PrimaryKeyConstraint("sale_id", "store_id"),
    )
    op.create_index(
        "ix_flash_sale_stores_store", "flash_sale_stores", ["store_id"], unique=False
    )
    # one row per unit of a sale (the seed's inventory_tokens), keyed by store like every
    # per-store table; claimed with FOR UPDATE SKIP LOCKED
    op.create_table(
        "inventory_tokens",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("token_id", sa.Uuid(), nullable=False),
        sa.Column("sale_id", sa.Uuid(), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("claimed_by", sa.Uuid(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("slot_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ticket", sa.BigInteger(), nullable=True),
        sa.Column("admit_no", sa.BigInteger(), nullable=True),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("sold_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["sale_id"], ["flash_sales.sale_id"]),
        sa.ForeignKeyConstraint(["store_id"], ["dark_stores.store_id"]),
        sa.PrimaryKeyConstraint("store_id", "token_id"),
    )
    op.create_index(
        "ix_inventory_tokens_claim",
        "inventory_tokens",
        ["sale_id", "store_id", "status"],
        unique=False,
    )
    op.create_index(
        "ix_inventory_tokens_customer",
        "inventory_tokens",
        ["sale_id", "claimed_by"],
        unique=False,
    )
    # a customer holds at most one checkout slot (one CLAIMED token) per sale
    op.create_index(
        "uq_inventory_tokens_one_claim",
        "inventory_tokens",
        ["sale_id", "claimed_by"],
        unique=True,
        postgresql_where=sa.text("status = 'CLAIMED'"),
    )


def downgrade() -> None:
    op.drop_index("uq_inventory_tokens_one_claim", table_name="inventory_tokens")
    op.drop_index("ix_inventory_tokens_customer", table_name="inventory_tokens")
    op.drop_index("ix_inventory_tokens_claim", table_name="inventory_tokens")
    op.drop_table("inventory_tokens")
    op.drop_index("ix_flash_sale_stores_store", table_name="flash_sale_stores")
    op.drop_table("flash_sale_stores")
    op.drop_index("ix_flash_sales_city_status", table_name="flash_sales")
    op.drop_table("flash_sales")
