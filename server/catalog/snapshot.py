"""The catalogue as each replica holds it in memory: reads that never touch PostgreSQL.

``Catalog`` (one per app, in ``Resources``) keeps, per store, every product sold there with
its price, the flash offers of the store (filtered by the clock at read time), a search
index and the rendered JSON of its pages, in a ``VersionedCache`` on ``catalog:version``:
a change (a flash sale created or stopped, a price or product edit, a re-seed) calls
``catalog_changed`` after its commit, this replica drops its copy at once and the others
within ``check_every_s`` (1 s). A store is loaded by one query (plus its offers) on a
miss; a read that nothing changed opens no session and no transaction.

Availability is never cached: ``Catalog.stock`` (``server.catalog.stock``) reads it from
Redis for a page's SKUs, one Lua call shared by the pages asked for at the same moment, so
it is as fresh as Redis is. Each item carries its Redis key, built once.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from server.catalog.search_index import SearchIndex
from server.catalog.stock import StockReads
from server.kit import keys
from server.kit.cache import VersionedCache, bump
from shared.schemas.flash import FlashOffer

RENDERED_PAGES = 2_000  # memo of rendered static pages per store (cleared when full)


async def catalog_changed(redis: aioredis.Redis) -> None:
    """Call after committing a change a customer sees in the catalogue."""
    await bump(redis, keys.CATALOG_VERSION)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class Item:
    sku_id: str
    category_id: str
    stocked: bool  # in the store's assortment (listed, searchable); else detail only
    card: dict[str, Any]  # ProductCard without its live parts
    detail: dict[str, Any]  # ProductDetail without its flash offer
    card_head: bytes  # the card's JSON up to ``"available_qty":``
    stock_key: str  # its availability in Redis (``keys.inventory``)


@dataclass(frozen=True)
class Offer:
    sale_id: str
    starts_at: datetime
    ends_at: datetime
    body: dict[str, Any]  # FlashOffer as JSON


@dataclass
class StoreCatalog:
    store_id: str
    items: dict[str, Item]
    listed: list[str]  # stocked SKUs in id order (the list's order and cursor)
    by_category: dict[str, list[str]]
    offers: dict[str, list[Offer]]
    index: SearchIndex
    rendered: dict[tuple[Any, ...], tuple[bytes, str]] = field(default_factory=dict)
    searches: dict[tuple[str, int], list[Item]] = field(default_factory=dict)

    def searched(self, query: str, limit: int) -> list[Item]:
        """The index's answer, kept until the catalogue changes (queries repeat a lot)."""
        key = (" ".join(query.lower().split()), limit)
        hit = self.searches.get(key)
        if hit is None:
            if len(self.searches) >= RENDERED_PAGES:
                self.searches.clear()
            hit = self.searches[key] = [
                self.items[s] for s in self.index.search(query, limit=limit)
            ]
        return hit

    def offer(self, sku_id: str, now: datetime) -> Offer | None:
        for offer in self.offers.get(sku_id, ()):
            if offer.starts_at <= now < offer.ends_at:
                return offer
        return None

    def page(
        self, category: str | None, after: str | None, limit: int
    ) -> tuple[list[Item], str | None]:
        """A cursor page of the listed SKUs (of one category); the next cursor or None."""
        skus = self.listed if category is None else self.by_category.get(category, [])
        start = 0
        if after:
            from bisect import bisect_right

            start = bisect_right(skus, after)
        chosen = skus[start : start + limit + 1]
        page = [self.items[s] for s in chosen[:limit]]
        return page, (page[-1].sku_id if len(chosen) > limit else None)

    def memo(self, key: tuple[Any, ...], render: Any) -> tuple[bytes, str]:
        """A rendered static body and its ETag, kept until the catalogue changes."""
        hit = self.rendered.get(key)
        if hit is None:
            if len(self.rendered) >= RENDERED_PAGES:
                self.rendered.clear()
            body = render()
            hit = self.rendered[key] = (body, etag_of(body))
        return hit


@dataclass(frozen=True)
class Directory:
    stores: frozenset[str]
    categories: list[dict[str, Any]]
    categories_body: bytes


_ITEMS = text("""
    SELECT p.sku_id, p.name, p.brand, p.category_id, p.pack_size, p.weight_grams,
           p.barcode, p.mrp_paise, sp.selling_price_paise, p.image_urls,
           EXISTS (SELECT 1 FROM store_inventory i
                   WHERE i.store_id = sp.store_id AND i.sku_id = p.sku_id) AS stocked
    FROM store_prices sp JOIN products p ON p.sku_id = sp.sku_id
    WHERE sp.store_id = :store AND p.is_active
    ORDER BY p.sku_id""")

_OFFERS = text("""
    SELECT s.sku_id, s.sale_id, s.sale_price_paise, s.starts_at, s.ends_at,
           s.per_customer_limit
    FROM flash_sales s JOIN flash_sale_stores fs ON fs.sale_id = s.sale_id
    WHERE fs.store_id = :store AND s.status = 'ACTIVE'
    ORDER BY s.starts_at""")


def _item(store_id: str, row: Any) -> Item:
    image_urls = list(row.image_urls or [])
    card = {
        "sku_id": row.sku_id,
        "name": row.name,
        "brand": row.brand,
        "category_id": row.category_id,
        "pack_size": row.pack_size,
        "mrp_paise": row.mrp_paise,
        "price_paise": row.selling_price_paise,
        "currency": "INR",
        "image_url": image_urls[0] if image_urls else None,
    }
    detail = {
        "sku_id": row.sku_id,
        "name": row.name,
        "brand": row.brand,
        "category_id": row.category_id,
        "pack_size": row.pack_size,
        "weight_grams": row.weight_grams,
        "barcode": row.barcode,
        "mrp_paise": row.mrp_paise,
        "price_paise": row.selling_price_paise,
        "currency": "INR",
        "image_urls": image_urls,
    }
    head = orjson.dumps(card)[:-1] + b',"available_qty":'
    return Item(
        row.sku_id,
        row.category_id,
        bool(row.stocked),
        card,
        detail,
        head,
        keys.inventory(store_id, row.sku_id),
    )


class Catalog:
    def __init__(
        self, engine: AsyncEngine, redis: aioredis.Redis, *, check_every_s: float = 1.0
    ) -> None:
        self.engine = engine
        self.redis = redis
        self.cache: VersionedCache[Any] = VersionedCache(
            redis, keys.CATALOG_VERSION, check_every_s=check_every_s
        )
        self.stock = StockReads(redis)

    async def directory(self, *, on: AsyncSession | None = None) -> Directory:
        return await self.cache.get("directory", lambda: self._load_directory(on))

    async def store(self, store_id: str, *, on: AsyncSession | None = None) -> StoreCatalog | None:
        """The store's catalogue, or None for a store that does not exist. ``on``: the
        caller's session when its transaction holds a pooled connection (a load then
        reads on it; see ``_reading``)."""
        if store_id not in (await self.directory(on=on)).stores:
            return None
        return await self.cache.get(("store", store_id), lambda: self._load_store(store_id, on))

    @asynccontextmanager
    async def _reading(self, on: AsyncSession | None) -> AsyncIterator[AsyncConnection]:
        """A connection to load on: the caller's transaction's when it has one. A request
        holding a pooled connection must not wait for another: a burst of them holds the
        whole pool and waits for a connection none of them gives back (until the pool's
        timeout answers them all 503)."""
        if on is not None:
            yield await on.connection()
            return
        async with self.engine.connect() as conn:
            yield conn

    async def _load_directory(self, on: AsyncSession | None = None) -> Directory:
        async with self._reading(on) as conn:
            stores = (await conn.execute(text("SELECT store_id FROM dark_stores"))).all()
            cats = (
                await conn.execute(
                    text(
                        "SELECT category_id, name, sort_order FROM categories "
                        "ORDER BY sort_order, category_id"
                    )
                )
            ).all()
        categories = [
            {"category_id": c.category_id, "name": c.name, "sort_order": c.sort_order} for c in cats
        ]
        return Directory(frozenset(s[0] for s in stores), categories, orjson.dumps(categories))

    async def _load_store(self, store_id: str, on: AsyncSession | None = None) -> StoreCatalog:
        async with self._reading(on) as conn:
            rows = (await conn.execute(_ITEMS, {"store": store_id})).all()
            offer_rows = (await conn.execute(_OFFERS, {"store": store_id})).all()
        items = {r.sku_id: _item(store_id, r) for r in rows}
        listed = [r.sku_id for r in rows if r.stocked]
        by_category: dict[str, list[str]] = {}
        for sku in listed:
            by_category.setdefault(items[sku].category_id, []).append(sku)
        offers: dict[str, list[Offer]] = {}
        for o in offer_rows:
            body = FlashOffer(
                sale_id=o.sale_id,
                price_paise=o.sale_price_paise,
                starts_at=o.starts_at,
                ends_at=o.ends_at,
                per_customer_limit=o.per_customer_limit,
            ).model_dump(mode="json")
            offers.setdefault(o.sku_id, []).append(
                Offer(str(o.sale_id), o.starts_at, o.ends_at, body)
            )
        index = SearchIndex(
            (r.sku_id, r.name, r.brand, r.category_id.replace("-", " ")) for r in rows if r.stocked
        )
        store = StoreCatalog(store_id, items, listed, by_category, offers, index)
        settle()
        return store


def settle() -> None:
    """In a process that set its start-up objects aside from the garbage collector
    (``qc serve``'s workers: ``qc.serving``), set a catalogue it just loaded aside too
    (~50,000 objects a store): the collector's full collections then scan only what came
    after, not all of it every few seconds (120-160 ms of CPU each under the search bench,
    its p99). Only the young generations are collected first, so the young garbage is not
    frozen with it: unfreezing and collecting everything took a worker 115-148 ms with
    every request waiting, and a flash sale's creation reloads the catalogue just as its
    crowd arrives. A replaced catalogue holds no reference cycle, so it is freed as the
    cache drops it, frozen or not."""
    if gc.get_freeze_count() == 0:
        return  # tests and scripts: the collector as Python sets it
    gc.collect(1)
    gc.freeze()
