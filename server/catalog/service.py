"""Catalogue reads: categories, a store's products with live availability, search.

Product, price and category rows come through a 30 s in-process cache; availability is
read from Redis on every request (never cached).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.catalog.models import Category
from server.inventory import engine
from server.kit.cache import TTLCache
from server.kit.errors import NotFound

_categories: TTLCache[list[Category]] = TTLCache(30)
_details: TTLCache[dict | None] = TTLCache(30)


@dataclass(frozen=True)
class ProductRow:
    sku_id: str
    name: str
    brand: str
    category_id: str
    pack_size: str
    mrp_paise: int
    price_paise: int
    image_url: str | None


async def list_categories(session: AsyncSession) -> list[Category]:
    async def load() -> list[Category]:
        rows = await session.exec(select(Category).order_by(col(Category.sort_order)))
        return list(rows.all())

    return await _categories.get_or_load("all", load)


_PRODUCTS = """
    SELECT p.sku_id, p.name, p.brand, p.category_id, p.pack_size, p.mrp_paise,
           sp.selling_price_paise, p.image_urls[1]
    FROM store_inventory i
    JOIN products p ON p.sku_id = i.sku_id
    JOIN store_prices sp ON sp.store_id = i.store_id AND sp.sku_id = i.sku_id
    WHERE i.store_id = :store AND p.is_active {filters}
    ORDER BY p.sku_id LIMIT :limit"""


async def list_products(
    session: AsyncSession, *, store_id: str, category: str | None, after: str | None, limit: int
) -> list[ProductRow]:
    filters, params = "", {"store": store_id, "limit": limit}
    if category:
        filters += " AND p.category_id = :category"
        params["category"] = category
    if after:
        filters += " AND p.sku_id > :after"
        params["after"] = after
    rows = await session.execute(text(_PRODUCTS.format(filters=filters)), params)
    return [ProductRow(*r) for r in rows]


async def product_detail(session: AsyncSession, *, store_id: str, sku_id: str) -> dict:
    async def load() -> dict | None:
        row = (
            await session.execute(
                text("""
            SELECT p.sku_id, p.name, p.brand, p.category_id, p.pack_size, p.weight_grams,
                   p.barcode, p.mrp_paise, sp.selling_price_paise, p.image_urls
            FROM products p JOIN store_prices sp ON sp.sku_id = p.sku_id
            WHERE sp.store_id = :store AND p.sku_id = :sku AND p.is_active"""),
                {"store": store_id, "sku": sku_id},
            )
        ).first()
        if row is None:
            return None
        keys = (
            "sku_id",
            "name",
            "brand",
            "category_id",
            "pack_size",
            "weight_grams",
            "barcode",
            "mrp_paise",
            "price_paise",
            "image_urls",
        )
        return dict(zip(keys, row, strict=True))

    detail = await _details.get_or_load((store_id, sku_id), load)
    if detail is None:
        raise NotFound(f"{sku_id} is not sold at {store_id}", code="product_not_found")
    return detail


async def live_availability(
    redis: aioredis.Redis, *, store_id: str, sku_ids: list[str]
) -> dict[str, int]:
    buckets = await engine.read_buckets(redis, store_id=store_id, sku_ids=sku_ids)
    return {sku: (b.available if b else 0) for sku, b in buckets.items()}


_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # letters and digits only: safe in a tsquery

_SEARCH = text("""
    WITH q AS (SELECT to_tsquery('simple', :tsq) AS tsq)
    SELECT p.sku_id, p.name, p.brand, p.category_id, p.pack_size, p.mrp_paise,
           sp.selling_price_paise, p.image_urls[1]
    FROM q, store_inventory i
    JOIN products p ON p.sku_id = i.sku_id
    JOIN store_prices sp ON sp.store_id = i.store_id AND sp.sku_id = i.sku_id
    WHERE i.store_id = :store AND p.is_active
      AND (p.search_vector @@ q.tsq OR :raw <% p.name OR :raw <% p.brand)
    ORDER BY (i.available_qty > 0) DESC,
             ts_rank(p.search_vector, q.tsq) DESC,
             greatest(word_similarity(:raw, p.name), word_similarity(:raw, p.brand)) DESC,
             p.sku_id
    LIMIT :limit""")


async def search(
    session: AsyncSession, *, store_id: str, query: str, limit: int
) -> list[ProductRow]:
    """Full-text search with prefix matching ("amu" finds Amul) and trigram typo
    tolerance ("amool" finds Amul); in-stock items first, then by rank."""
    words = [w.lower() for w in _WORD.findall(query)][:8]
    if not words:
        return []
    tsq = " & ".join(f"{w}:*" for w in words)
    rows = await session.execute(
        _SEARCH, {"tsq": tsq, "raw": " ".join(words), "store": store_id, "limit": limit}
    )
    return [ProductRow(*r) for r in rows]
