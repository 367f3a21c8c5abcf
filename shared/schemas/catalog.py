"""Categories and products with live availability, as a customer browses them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.flash import FlashOffer


class CategoryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    category_id: str
    name: str
    sort_order: int


class ProductCard(BaseModel):
    sku_id: str
    name: str
    brand: str
    category_id: str
    pack_size: str
    mrp_paise: int
    price_paise: int
    currency: str = "INR"
    image_url: str | None = None
    available_qty: int = Field(description="live from the reservation engine")
    in_stock: bool
    flash: FlashOffer | None = Field(default=None, description="a live flash sale of it here")


class ProductListing(BaseModel):
    """A product on a category page: what an edge cache may keep (no stock, no flash
    price; those come from the store's availability, never cached)."""

    sku_id: str
    name: str
    brand: str
    category_id: str
    pack_size: str
    mrp_paise: int
    price_paise: int
    currency: str = "INR"
    image_url: str | None = None


class CategoryPage(BaseModel):
    store_id: str
    category_id: str
    items: list[ProductListing]
    next_cursor: str | None = None


class ProductDetail(BaseModel):
    sku_id: str
    name: str
    brand: str
    category_id: str
    pack_size: str
    weight_grams: int
    barcode: str
    mrp_paise: int
    price_paise: int
    currency: str = "INR"
    image_urls: list[str]
    flash: FlashOffer | None = Field(default=None, description="a live flash sale of it here")


class Availability(BaseModel):
    store_id: str
    available: dict[str, int]
    flash: dict[str, FlashOffer] = Field(
        default_factory=dict, description="flash sales of these SKUs running now here"
    )
