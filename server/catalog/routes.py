"""Browsing and search (public): categories, a store's products, detail, availability.

Every read here comes from the replica's in-process catalogue (``server.catalog.snapshot``)
plus, where a page shows stock, one Redis call for its SKUs: no database session, no
transaction, JSON written by orjson (static parts rendered once per catalogue version).
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from server.catalog import service
from server.catalog.models import Product
from server.catalog.snapshot import Item, StoreCatalog
from server.kit import keys, ratelimit
from server.kit.deps import SessionDep
from server.kit.errors import NotFound, Unprocessable
from server.kit.openapi import problem_responses
from server.kit.quick import QuickRoute
from server.kit.resources import Resources, resources_of
from shared.schemas.catalog import (
    Availability,
    CategoryPage,
    CategoryPublic,
    ProductCard,
    ProductDetail,
)
from shared.schemas.common import Page

# the reads check their declared parameters themselves (the same answers, less CPU)
router = APIRouter(prefix="/v1", tags=["catalog"], route_class=QuickRoute)

StoreId = Annotated[
    str, Path(min_length=1, max_length=20, pattern=r"^[A-Z0-9-]+$", examples=["BLR-KOR"])
]
SkuId = Annotated[
    str, Path(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_-]+$", examples=["SKU00042"])
]
CategoryId = Annotated[
    str, Path(min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$", examples=["snacks-munchies"])
]
Cursor = Annotated[str | None, Query(max_length=50)]
# The seed's edge rules, as the Cache-Control an edge cache (Cloudflare, Akamai) obeys:
NO_STORE = "no-store"  # inventory (and anything carrying it) is never cached: always fresh
PRODUCT_CACHE = "public, max-age=60, stale-while-revalidate=60"  # product detail: 60 s
CATEGORY_CACHE = "public, max-age=60, s-maxage=3600"  # category pages: 1 h at the CDN
IMAGE_CACHE = "public, max-age=86400, immutable"  # product images: 24 h
JSON = "application/json"
# a card's JSON after its available units (the head is the item's, rendered once)
_IN_STOCK = b',"in_stock":true,"flash":'
_OUT_OF_STOCK = b',"in_stock":false,"flash":'
_NO_OFFER_IN_STOCK = _IN_STOCK + b"null},"
_NO_OFFER_OUT_OF_STOCK = _OUT_OF_STOCK + b"null},"


def _json(body: bytes, cache_control: str, etag: str | None = None) -> Response:
    headers = {"Cache-Control": cache_control}
    if etag:
        headers["ETag"] = etag
    return Response(body, media_type=JSON, headers=headers)


def _not_modified(request: Request, etag: str, cache_control: str) -> Response | None:
    wanted = request.headers.get("if-none-match")
    if wanted and etag in [t.strip() for t in wanted.split(",")]:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": cache_control})
    return None


async def _store(resources: Resources, store_id: str) -> StoreCatalog:
    store = await resources.catalog.store(store_id)
    if store is None:
        raise NotFound(f"no store {store_id}", code="store_not_found")
    return store


def _offers(store: StoreCatalog, skus: list[str], now: datetime) -> dict[str, Any]:
    if not store.offers:
        return {}
    found = {s: store.offer(s, now) for s in skus}
    return {s: o.body for s, o in found.items() if o is not None}


async def _cards(
    resources: Resources, store: StoreCatalog, page: list[Item], qty: list[int] | None = None
) -> bytes:
    """A JSON array of product cards with live stock (read now unless given) and offers."""
    if qty is None:
        qty = await resources.catalog.stock.read(store.store_id, [i.stock_key for i in page])
    offers = _offers(store, [i.sku_id for i in page], resources.clock.now())
    parts = []
    for item, q in zip(page, qty, strict=True):
        offer = offers.get(item.sku_id) if offers else None
        parts.append(item.card_head)
        parts.append(b"%d" % q)
        if offer is None:
            parts.append(_NO_OFFER_IN_STOCK if q > 0 else _NO_OFFER_OUT_OF_STOCK)
        else:
            parts.append(_IN_STOCK if q > 0 else _OUT_OF_STOCK)
            parts.append(orjson.dumps(offer) + b"},")
    if parts:
        parts[-1] = parts[-1][:-1]  # no comma after the last card
    return b"[" + b"".join(parts) + b"]"


@router.get(
    "/categories",
    summary="Product categories",
    response_class=Response,
    responses={200: {"model": list[CategoryPublic], "description": "every category"}},
)
async def categories(request: Request) -> Response:
    directory = await resources_of(request.app).catalog.directory()
    return _json(directory.categories_body, "public, max-age=300")


@router.get(
    "/stores/{store_id}/products",
    summary="A store's products with live availability",
    response_class=Response,
    responses={
        200: {"model": Page[ProductCard], "description": "a page of products"},
        **problem_responses(404, 422),
    },
)
async def products(
    store_id: StoreId,
    request: Request,
    category: Annotated[str | None, Query(max_length=40, examples=["dairy-bread-eggs"])] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 40,
    cursor: Cursor = None,
) -> Response:
    resources = resources_of(request.app)
    store = await _store(resources, store_id)
    page, next_cursor = store.page(category, cursor, limit)
    body = (
        b'{"items":'
        + await _cards(resources, store, page)
        + b',"next_cursor":'
        + orjson.dumps(next_cursor)
        + b"}"
    )
    return _json(body, NO_STORE)


@router.get(
    "/stores/{store_id}/categories/{category_id}",
    summary="A category page (cacheable 1 h at the edge; stock from availability)",
    response_class=Response,
    responses={
        200: {"model": CategoryPage, "description": "a page of the category's products"},
        304: {"description": "Not modified"},
        **problem_responses(404, 422),
    },
)
async def category_page(
    store_id: StoreId,
    category_id: CategoryId,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 40,
    cursor: Cursor = None,
) -> Response:
    """The category's products and prices at this store, without stock or flash prices,
    so an edge cache may keep it for an hour; ``/availability`` answers those, live."""
    resources = resources_of(request.app)
    store = await _store(resources, store_id)
    if category_id not in store.by_category:
        directory = await resources.catalog.directory()
        if category_id not in {c["category_id"] for c in directory.categories}:
            raise NotFound(f"no category {category_id}", code="category_not_found")

    def render() -> bytes:
        page, next_cursor = store.page(category_id, cursor, limit)
        return orjson.dumps(
            {
                "store_id": store_id,
                "category_id": category_id,
                "items": [i.card for i in page],
                "next_cursor": next_cursor,
            }
        )

    body, etag = store.memo(("category", category_id, cursor, limit), render)
    return _not_modified(request, etag, CATEGORY_CACHE) or _json(body, CATEGORY_CACHE, etag)


@router.get(
    "/stores/{store_id}/products/{sku_id}",
    summary="Product detail (cacheable 60 s)",
    response_class=Response,
    responses={
        200: {"model": ProductDetail, "description": "the product at this store"},
        304: {"description": "Not modified"},
        **problem_responses(404, 422),
    },
)
async def product(store_id: StoreId, sku_id: SkuId, request: Request) -> Response:
    resources = resources_of(request.app)
    store = await _store(resources, store_id)
    item = store.items.get(sku_id)
    if item is None:
        raise NotFound(f"{sku_id} is not sold at {store_id}", code="product_not_found")
    offer = store.offer(sku_id, resources.clock.now()) if store.offers else None
    body, etag = store.memo(
        ("detail", sku_id, offer.sale_id if offer else None),
        lambda: orjson.dumps(item.detail | {"flash": offer.body if offer else None}),
    )
    return _not_modified(request, etag, PRODUCT_CACHE) or _json(body, PRODUCT_CACHE, etag)


@router.get(
    "/stores/{store_id}/availability",
    summary="Live availability (and flash prices) of some SKUs",
    response_class=Response,
    responses={
        200: {"model": Availability, "description": "units available now, by SKU"},
        **problem_responses(404, 422),
    },
)
async def availability(
    store_id: StoreId,
    request: Request,
    skus: Annotated[
        str,
        Query(
            max_length=2000,
            pattern=r"^[A-Za-z0-9_,-]+$",
            description="comma-separated SKU ids (at most 100)",
            examples=["SKU00001,SKU00002"],
        ),
    ],
) -> Response:
    resources = resources_of(request.app)
    store = await _store(resources, store_id)
    wanted = sorted({s for s in skus.split(",") if s})[:100]
    qty = await resources.catalog.stock.read(
        store_id, [keys.inventory(store_id, s) for s in wanted]
    )
    body = {
        "store_id": store_id,
        "available": dict(zip(wanted, qty, strict=True)),
        "flash": _offers(store, wanted, resources.clock.now()),
    }
    return _json(orjson.dumps(body), NO_STORE)


@router.get(
    "/stores/{store_id}/search",
    summary="Search a store's catalogue",
    response_class=Response,
    responses={
        200: {"model": list[ProductCard], "description": "in-stock items first, then by rank"},
        **problem_responses(404, 422, 429),
    },
    dependencies=[
        Depends(ratelimit.per_address("search-ip", lambda s: s.search_limit_per_address))
    ],
)
async def search(
    store_id: StoreId,
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=100, examples=["amul milk"])],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> Response:
    resources = resources_of(request.app)
    if len(q.split()) > resources.settings.search_max_terms:
        raise Unprocessable(
            f"at most {resources.settings.search_max_terms} words in a search",
            code="too_many_terms",
        )
    store = await _store(resources, store_id)
    hits, qty = await service.search(resources.catalog.stock, store, query=q, limit=limit)
    return _json(await _cards(resources, store, hits, qty), NO_STORE)


@router.get(
    "/products/{sku_id}/image",
    summary="A product's picture (cacheable 24 h at the edge)",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "the picture"},
        **problem_responses(404, 422),
    },
)
async def image(sku_id: SkuId, session: SessionDep) -> Response:
    """A placeholder drawn from the product's name (the seed's pictures live on a CDN);
    an image never changes under its URL, so it is cached for a day."""
    product = await session.get(Product, sku_id)
    if product is None or not product.is_active:
        raise NotFound(f"no product {sku_id}", code="product_not_found")
    label = escape(product.name[:40])
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="240" viewBox="0 0 240 240">'
        '<rect width="240" height="240" fill="#f3efe6"/>'
        f'<text x="120" y="124" font-family="sans-serif" font-size="14" text-anchor="middle">'
        f"{label}</text></svg>"
    )
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": IMAGE_CACHE})
