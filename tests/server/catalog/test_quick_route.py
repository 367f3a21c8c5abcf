"""QuickRoute answers exactly as FastAPI's own handler: the same values, the same 422s."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.routing import APIRoute

from server.catalog.routes import router as catalog_router
from server.kit.quick import QuickRoute

Store = Annotated[str, Path(min_length=1, max_length=20, pattern=r"^[A-Z0-9-]+$")]
guarded: list[str] = []


async def guard(request: Request) -> None:
    guarded.append(request.url.path)


def _app(route_class: type[APIRoute]) -> FastAPI:
    router = APIRouter(prefix="/v1", route_class=route_class)

    @router.get("/stores/{store_id}/products", response_class=Response)
    async def products(
        store_id: Store,
        request: Request,
        category: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 40,
        cursor: Annotated[str | None, Query(max_length=50)] = None,
    ) -> Response:
        seen = repr((store_id, category, limit, cursor, request.url.path))
        return Response(seen, media_type="text/plain")

    @router.get("/stores/{store_id}/search", response_class=Response, dependencies=[Depends(guard)])
    async def search(
        store_id: Store,
        q: Annotated[str, Query(min_length=1, max_length=10)],
        limit: Annotated[int, Query(ge=1, le=50)] = 20,
    ) -> Response:
        return Response(repr((store_id, q, limit)), media_type="text/plain")

    app = FastAPI()
    app.include_router(router)
    return app


URLS = [
    "/v1/stores/BLR-KOR/products",
    "/v1/stores/BLR-KOR/products?limit=5&category=snacks-munchies&cursor=SKU001",
    "/v1/stores/BLR-KOR/products?limit=007",
    "/v1/stores/BLR-KOR/products?limit=0",
    "/v1/stores/BLR-KOR/products?limit=101",
    "/v1/stores/BLR-KOR/products?limit=-1",
    "/v1/stores/BLR-KOR/products?limit=+5",
    "/v1/stores/BLR-KOR/products?limit=%205",
    "/v1/stores/BLR-KOR/products?limit=5.0",
    "/v1/stores/BLR-KOR/products?limit=%D9%A4",  # an Arabic-Indic four
    "/v1/stores/BLR-KOR/products?limit=99999999999999999999",
    "/v1/stores/BLR-KOR/products?limit=",
    "/v1/stores/BLR-KOR/products?limit=5&limit=6",
    "/v1/stores/BLR-KOR/products?category=",
    "/v1/stores/BLR-KOR/products?category=" + "x" * 41,
    "/v1/stores/BLR-KOR/products?category=a+b%20c&unknown=1",
    "/v1/stores/BLR-KOR/products?category=%FF%FE",
    "/v1/stores/blr-kor/products",
    "/v1/stores/BLR%0AKOR/products",
    "/v1/stores/" + "A" * 21 + "/products",
    "/v1/stores/BLR-KOR/search",
    "/v1/stores/BLR-KOR/search?q=",
    "/v1/stores/BLR-KOR/search?q=amul+milk",
    "/v1/stores/BLR-KOR/search?q=amul&limit=51",
    "/v1/stores/BLR-KOR/search?q=" + "m" * 11,
    "/v1/stores/BLR KOR/search?q=milk",
]


@pytest.mark.parametrize("url", URLS)
async def test_quick_route_answers_as_fastapi_does(url: str) -> None:
    answers = []
    for route_class in (APIRoute, QuickRoute):
        guarded.clear()
        transport = httpx.ASGITransport(app=_app(route_class))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get(url)
        answers.append((r.status_code, r.text, list(guarded)))
    assert answers[0] == answers[1]


async def test_dependency_overrides_are_fastapis_to_apply() -> None:
    app = _app(QuickRoute)

    async def no_guard() -> None:
        return None

    app.dependency_overrides[guard] = no_guard
    guarded.clear()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/v1/stores/BLR-KOR/search?q=milk")
    assert r.status_code == 200 and guarded == []


def test_catalogue_reads_take_the_quick_handler_and_keep_their_openapi() -> None:
    plain = APIRouter(prefix="/v1", tags=["catalog"])
    routes = [r for r in catalog_router.routes if isinstance(r, QuickRoute)]
    assert len(routes) == len(catalog_router.routes)
    for route in routes:
        plain.add_api_route(
            route.path.removeprefix("/v1"),
            route.endpoint,
            methods=list(route.methods or ()),
            summary=route.summary,
            response_class=route.response_class,
            responses=route.responses,
            dependencies=route.dependencies,
            name=route.name,
        )
    documents = []
    for router in (catalog_router, plain):
        app = FastAPI()
        app.include_router(router)
        documents.append(app.openapi())
    assert documents[0] == documents[1]
    quick = {r.path for r in routes if "QuickRoute" in r.get_route_handler().__qualname__}
    assert quick == {r.path for r in routes} - {"/v1/products/{sku_id}/image"}
