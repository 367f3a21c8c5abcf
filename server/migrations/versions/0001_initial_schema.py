"""initial schema

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # trigram search (typo tolerance) and GiST over scalars; in Debian's PostgreSQL 15 too
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "categories",
        sa.Column("category_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("parent_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("category_id"),
    )
    op.create_table(
        "cities",
        sa.Column("city_id", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.PrimaryKeyConstraint("city_id"),
    )
    op.create_table(
        "order_events",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("event_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("from_status", sa.String(length=30), nullable=True),
        sa.Column("to_status", sa.String(length=30), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.PrimaryKeyConstraint("store_id", "event_id"),
    )
    op.create_index("ix_order_events_order", "order_events", ["order_id", "at"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("event_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("aggregate_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["event_id"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "rider_locations",
        sa.Column("rider_id", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lng", sa.Float(), nullable=False),
        sa.Column("speed_mps", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("rider_id", "recorded_at"),
    )
    op.create_table(
        "dark_stores",
        sa.Column("store_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("city_id", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lng", sa.Float(), nullable=False),
        sa.Column("service_radius_m", sa.Integer(), nullable=False),
        sa.Column("is_operational", sa.Boolean(), nullable=False),
        sa.Column(
            "substitution_policy", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False
        ),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("service_zone", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("operating_hours", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("paused_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["city_id"],
            ["cities.city_id"],
        ),
        sa.PrimaryKeyConstraint("store_id"),
    )
    op.create_index(op.f("ix_dark_stores_city_id"), "dark_stores", ["city_id"], unique=False)
    op.create_table(
        "products",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("category_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("brand", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("mrp_paise", sa.Integer(), nullable=False),
        sa.Column("weight_grams", sa.Integer(), nullable=False),
        sa.Column("pack_size", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("barcode", sqlmodel.sql.sqltypes.AutoString(length=13), nullable=False),
        sa.Column("case_pack", sa.Integer(), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("image_urls", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(
                "setweight(to_tsvector('simple', coalesce(name, '')), 'A') || setweight(to_tsvector('simple', coalesce(brand, '')), 'B') || setweight(to_tsvector('simple', replace(coalesce(category_id, ''), '-', ' ')), 'C')",
                persisted=True,
            ),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["categories.category_id"],
        ),
        sa.PrimaryKeyConstraint("sku_id"),
    )
    op.create_index(op.f("ix_products_barcode"), "products", ["barcode"], unique=True)
    op.create_index(op.f("ix_products_category_id"), "products", ["category_id"], unique=False)
    op.create_index(
        "ix_products_name_trgm",
        "products",
        ["name"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_products_search_vector",
        "products",
        ["search_vector"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_table(
        "inventory_reservations",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("reservation_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["sku_id"],
            ["products.sku_id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["dark_stores.store_id"],
        ),
        sa.PrimaryKeyConstraint("store_id", "reservation_id"),
        sa.UniqueConstraint("store_id", "order_id", "sku_id", name="uq_reservation_order_sku"),
    )
    op.create_index(
        op.f("ix_inventory_reservations_order_id"),
        "inventory_reservations",
        ["order_id"],
        unique=False,
    )
    op.create_index(
        "ix_reservations_active_expiry",
        "inventory_reservations",
        ["store_id", "expires_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('SOFT', 'HARD')"),
    )
    op.create_table(
        "stock_ledger",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("movement", sa.String(length=20), nullable=False),
        sa.Column("d_available", sa.Integer(), nullable=False),
        sa.Column("d_reserved", sa.Integer(), nullable=False),
        sa.Column("d_damaged", sa.Integer(), nullable=False),
        sa.Column("d_in_transit", sa.Integer(), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["dark_stores.store_id"],
        ),
        sa.PrimaryKeyConstraint("store_id", "entry_id"),
    )
    op.create_index(
        "ix_stock_ledger_sku_time",
        "stock_ledger",
        ["store_id", "sku_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "store_bins",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("bin_code", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("aisle", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
        sa.Column("shelf", sa.Integer(), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("walk_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["dark_stores.store_id"],
        ),
        sa.PrimaryKeyConstraint("store_id", "bin_code"),
    )
    op.create_table(
        "store_inventory",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("available_qty", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reserved_qty", sa.Integer(), server_default="0", nullable=False),
        sa.Column("damaged_qty", sa.Integer(), server_default="0", nullable=False),
        sa.Column("in_transit_qty", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reorder_level", sa.Integer(), server_default="10", nullable=False),
        sa.Column("max_capacity", sa.Integer(), server_default="100", nullable=False),
        sa.Column("bin_code", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column(
            "last_updated",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "available_qty >= 0 AND reserved_qty >= 0 AND damaged_qty >= 0 AND in_transit_qty >= 0",
            name="ck_store_inventory_non_negative",
        ),
        sa.ForeignKeyConstraint(
            ["sku_id"],
            ["products.sku_id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["dark_stores.store_id"],
        ),
        sa.PrimaryKeyConstraint("store_id", "sku_id"),
    )
    op.create_index(
        "idx_low_stock",
        "store_inventory",
        ["store_id", "sku_id"],
        unique=False,
        postgresql_where=sa.text("available_qty <= reorder_level"),
    )
    op.create_table(
        "store_prices",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("selling_price_paise", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["sku_id"],
            ["products.sku_id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["dark_stores.store_id"],
        ),
        sa.PrimaryKeyConstraint("store_id", "sku_id"),
    )
    op.create_table(
        "users",
        sa.Column("login", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("city_id", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["city_id"],
            ["cities.city_id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["dark_stores.store_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_users_login"), "users", ["login"], unique=True)
    op.create_table(
        "carts",
        sa.Column("cart_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["dark_stores.store_id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("cart_id"),
    )
    op.create_index(op.f("ix_carts_user_id"), "carts", ["user_id"], unique=False)
    op.create_table(
        "orders",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("city_id", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("cart_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("subtotal_paise", sa.Integer(), nullable=False),
        sa.Column("delivery_fee_paise", sa.Integer(), nullable=False),
        sa.Column("handling_fee_paise", sa.Integer(), nullable=False),
        sa.Column("discount_paise", sa.Integer(), nullable=False),
        sa.Column("total_amount_paise", sa.Integer(), nullable=False),
        sa.Column("delivery_address", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("delivery_lat", sa.Float(), nullable=False),
        sa.Column("delivery_lng", sa.Float(), nullable=False),
        sa.Column("cancel_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("rider_id", sa.Uuid(), nullable=True),
        sa.Column("sla_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("picking_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("partially_fulfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("packed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("out_for_delivery_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["city_id"],
            ["cities.city_id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["dark_stores.store_id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("store_id", "order_id"),
    )
    op.create_index("ix_orders_order_id", "orders", ["order_id"], unique=False)
    op.create_index(op.f("ix_orders_placed_at"), "orders", ["placed_at"], unique=False)
    op.create_index(op.f("ix_orders_rider_id"), "orders", ["rider_id"], unique=False)
    op.create_index("ix_orders_store_status", "orders", ["store_id", "status"], unique=False)
    op.create_index(op.f("ix_orders_user_id"), "orders", ["user_id"], unique=False)
    op.create_table(
        "riders",
        sa.Column("rider_id", sa.Uuid(), nullable=False),
        sa.Column("city_id", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("home_store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("vehicle", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("rating", sa.Float(), nullable=False),
        sa.Column("battery_pct", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("on_duty", sa.Boolean(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lng", sa.Float(), nullable=True),
        sa.Column("last_fix_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["city_id"],
            ["cities.city_id"],
        ),
        sa.ForeignKeyConstraint(
            ["home_store_id"],
            ["dark_stores.store_id"],
        ),
        sa.ForeignKeyConstraint(
            ["rider_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("rider_id"),
    )
    op.create_index(op.f("ix_riders_city_id"), "riders", ["city_id"], unique=False)
    op.create_table(
        "order_items",
        sa.Column("store_id", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("sku_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_paise", sa.Integer(), nullable=False),
        sa.Column("mrp_paise", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("picked_qty", sa.Integer(), nullable=False),
        sa.Column("substitute_sku", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
        sa.ForeignKeyConstraint(
            ["sku_id"],
            ["products.sku_id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id", "order_id"],
            ["orders.store_id", "orders.order_id"],
        ),
        sa.PrimaryKeyConstraint("store_id", "order_id", "sku_id"),
    )


def downgrade() -> None:
    op.drop_table("order_items")
    op.drop_index(op.f("ix_riders_city_id"), table_name="riders")
    op.drop_table("riders")
    op.drop_index(op.f("ix_orders_user_id"), table_name="orders")
    op.drop_index("ix_orders_store_status", table_name="orders")
    op.drop_index(op.f("ix_orders_rider_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_placed_at"), table_name="orders")
    op.drop_index("ix_orders_order_id", table_name="orders")
    op.drop_table("orders")
    op.drop_index(op.f("ix_carts_user_id"), table_name="carts")
    op.drop_table("carts")
    op.drop_index(op.f("ix_users_login"), table_name="users")
    op.drop_table("users")
    op.drop_table("store_prices")
    op.drop_index(
        "idx_low_stock",
        table_name="store_inventory",
        postgresql_where=sa.text("available_qty <= reorder_level"),
    )
    op.drop_table("store_inventory")
    op.drop_table("store_bins")
    op.drop_index("ix_stock_ledger_sku_time", table_name="stock_ledger")
    op.drop_table("stock_ledger")
    op.drop_index(
        "ix_reservations_active_expiry",
        table_name="inventory_reservations",
        postgresql_where=sa.text("status IN ('SOFT', 'HARD')"),
    )
    op.drop_index(op.f("ix_inventory_reservations_order_id"), table_name="inventory_reservations")
    op.drop_table("inventory_reservations")
    op.drop_index("ix_products_search_vector", table_name="products", postgresql_using="gin")
    op.drop_index(
        "ix_products_name_trgm",
        table_name="products",
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.drop_index(op.f("ix_products_category_id"), table_name="products")
    op.drop_index(op.f("ix_products_barcode"), table_name="products")
    op.drop_table("products")
    op.drop_index(op.f("ix_dark_stores_city_id"), table_name="dark_stores")
    op.drop_table("dark_stores")
    op.drop_table("rider_locations")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox")
    op.drop_index("ix_order_events_order", table_name="order_events")
    op.drop_table("order_events")
    op.drop_table("cities")
    op.drop_table("categories")
