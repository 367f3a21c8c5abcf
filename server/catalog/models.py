"""The master catalogue and per-store prices."""

from __future__ import annotations

from sqlalchemy import ARRAY, Computed, Index, Text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlmodel import Column, Field, SQLModel

from server.kit.columns import Timestamp, tz_field

# Name weighs most, then brand, then the category's words (its id is a readable slug).
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('simple', coalesce(name, '')), 'A') || "
    "setweight(to_tsvector('simple', coalesce(brand, '')), 'B') || "
    "setweight(to_tsvector('simple', replace(coalesce(category_id, ''), '-', ' ')), 'C')"
)


class Category(SQLModel, table=True):
    __tablename__ = "categories"

    category_id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=80)
    parent_id: str | None = Field(default=None, max_length=40)
    sort_order: int = 0


class ProductBase(SQLModel):
    name: str = Field(max_length=200)
    category_id: str = Field(foreign_key="categories.category_id", max_length=40, index=True)
    brand: str = Field(max_length=100)
    mrp_paise: int = Field(ge=0)
    weight_grams: int = Field(ge=0)
    pack_size: str = Field(max_length=40)  # as printed: "500 g", "1 L", "6 pcs"
    barcode: str = Field(max_length=13, unique=True, index=True)  # EAN-13
    case_pack: int = Field(default=12, ge=1)  # units per supplier case


class Product(ProductBase, table=True):
    __tablename__ = "products"
    __table_args__ = (
        Index("ix_products_search_vector", "search_vector", postgresql_using="gin"),
        Index(
            "ix_products_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    sku_id: str = Field(primary_key=True, max_length=50)
    image_urls: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text)))
    is_active: bool = True
    search_vector: str | None = Field(
        default=None, sa_column=Column(TSVECTOR, Computed(SEARCH_VECTOR_SQL, persisted=True))
    )
    created_at: Timestamp = tz_field(server_now=True)


class StorePrice(SQLModel, table=True):
    __tablename__ = "store_prices"

    store_id: str = Field(foreign_key="dark_stores.store_id", primary_key=True, max_length=20)
    sku_id: str = Field(foreign_key="products.sku_id", primary_key=True, max_length=50)
    selling_price_paise: int = Field(ge=0)
    updated_at: Timestamp = tz_field(server_now=True)
