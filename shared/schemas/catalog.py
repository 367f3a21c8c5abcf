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
