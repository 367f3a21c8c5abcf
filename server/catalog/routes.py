"""Browsing and search (public): categories, a store's products, detail, availability."""

from __future__ import annotations

import hashlib
from html import escape
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from server.catalog import service
from server.catalog.models import Product
from server.flash.offers import live_offers
from server.kit.deps import ClockDep, RedisDep, SessionDep
from server.kit.errors import NotFound
from server.kit.openapi import problem_responses
from server.stores.models import DarkStore
from shared.schemas.catalog import Availability, CategoryPublic, ProductCard, ProductDetail
from shared.schemas.common import Page

router = APIRouter(prefix="/v1", tags=["catalog"])

StoreId = Annotated[
    str, Path(min_length=1, max_length=20, pattern=r"^[A-Z0-9-]+$", examples=["BLR-KOR"])
]
SkuId = Annotated[
    str, Path(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_-]+$", examples=["SKU00042"])
]
# The seed's edge rules, as the Cache-Control an edge cache (Cloudflare, Akamai) obeys:
NO_STORE = "no-store"  # inventory (and anything carrying it) is never cached: always fresh
PRODUCT_CACHE = "public, max-age=60, stale-while-revalidate=60"  # product detail: 60 s
IMAGE_CACHE = "public, max-age=86400, immutable"  # product images: 24 h


async def _known_store(session: SessionDep, store_id: str) -> None:
    if await session.get(DarkStore, store_id) is None:
        raise NotFound(f"no store {store_id}", code="store_not_found")


async def _cards(
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    store_id: str,
    rows: list[service.ProductRow],
) -> list[ProductCard]:
    skus = [r.sku_id for r in rows]
    live = await service.live_availability(redis, store_id=store_id, sku_ids=skus)
    offers = await live_offers(session, store_id=store_id, now=clock.now(), sku_ids=skus)
    return [
        ProductCard(
            sku_id=r.sku_id,
            name=r.name,
            brand=r.brand,
            category_id=r.category_id,
            pack_size=r.pack_size,
            mrp_paise=r.mrp_paise,
            price_paise=r.price_paise,
            image_url=r.image_url,
            available_qty=live[r.sku_id],
            in_stock=live[r.sku_id] > 0,
            flash=offers.get(r.sku_id),
        )
        for r in rows
    ]


@router.get("/categories", summary="Product categories")
async def categories(session: SessionDep, response: Response) -> list[CategoryPublic]:
    response.headers["Cache-Control"] = "public, max-age=300"
    return [CategoryPublic.model_validate(c) for c in await service.list_categories(session)]


@router.get(
    "/stores/{store_id}/products",
    summary="A store's products with live availability",
    responses=problem_responses(404, 422),
)
async def products(
    store_id: StoreId,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    response: Response,
    category: Annotated[str | None, Query(max_length=40, examples=["dairy-bread-eggs"])] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 40,
    cursor: Annotated[str | None, Query(max_length=50)] = None,
) -> Page[ProductCard]:
    await _known_store(session, store_id)
    rows = await service.list_products(
        session, store_id=store_id, category=category, after=cursor, limit=limit + 1
    )
    page = rows[:limit]
    response.headers["Cache-Control"] = NO_STORE
    return Page[ProductCard](
        items=await _cards(session, redis, clock, store_id, page),
        next_cursor=page[-1].sku_id if len(rows) > limit else None,
    )


@router.get(
    "/stores/{store_id}/products/{sku_id}",
    summary="Product detail (cacheable 60 s)",
    responses={**problem_responses(404, 422), 304: {"description": "Not modified"}},
)
async def product(
    store_id: StoreId, sku_id: SkuId, session: SessionDep, clock: ClockDep, request: Request
) -> Response:
    offers = await live_offers(session, store_id=store_id, now=clock.now(), sku_ids=[sku_id])
    detail = ProductDetail(
        **await service.product_detail(session, store_id=store_id, sku_id=sku_id),
        flash=offers.get(sku_id),
    )
    body = detail.model_dump_json().encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": PRODUCT_CACHE}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.get(
    "/stores/{store_id}/availability",
    summary="Live availability of some SKUs",
    responses=problem_responses(404, 422),
)
async def availability(
    store_id: StoreId,
    session: SessionDep,
    redis: RedisDep,
    response: Response,
    skus: Annotated[
        str,
        Query(
            max_length=2000,
            pattern=r"^[A-Za-z0-9_,-]+$",
            description="comma-separated SKU ids (at most 100)",
            examples=["SKU00001,SKU00002"],
        ),
    ],
) -> Availability:
    await _known_store(session, store_id)
    wanted = sorted({s for s in skus.split(",") if s})[:100]
    response.headers["Cache-Control"] = NO_STORE
    return Availability(
        store_id=store_id,
        available=await service.live_availability(redis, store_id=store_id, sku_ids=wanted),
    )


@router.get(
    "/stores/{store_id}/search",
    summary="Search a store's catalogue",
    responses=problem_responses(404, 422),
)
async def search(
    store_id: StoreId,
    session: SessionDep,
    redis: RedisDep,
    clock: ClockDep,
    response: Response,
    q: Annotated[str, Query(min_length=1, max_length=100, examples=["amul milk"])],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> list[ProductCard]:
    await _known_store(session, store_id)
    response.headers["Cache-Control"] = NO_STORE
    return await _cards(
        session,
        redis,
        clock,
        store_id,
        await service.search(session, store_id=store_id, query=q, limit=limit),
    )


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
