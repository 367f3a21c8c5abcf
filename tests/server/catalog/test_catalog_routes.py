"""Browsing: live availability, cacheable detail with ETag/304, search."""

from __future__ import annotations

import psycopg

from server.inventory import service
from server.kit.db import transaction
from server.kit.resources import resources_of


async def test_product_list_pages_and_carries_live_availability(city, app, client) -> None:
    r = await client.get("/v1/stores/BLR-KOR/products", params={"limit": 5})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    page = r.json()
    assert len(page["items"]) == 5 and page["next_cursor"] == page["items"][-1]["sku_id"]
    first = page["items"][0]
    assert first["price_paise"] <= first["mrp_paise"]
    resources = resources_of(app)
    async with transaction(resources.sessions) as s:
        await service.reserve_lines(
            s,
            resources.redis,
            store_id="BLR-KOR",
            holder="cart-x",
            lines={first["sku_id"]: 1},
            now=resources.clock.now(),
            hold_s=600,
        )
    again = (await client.get("/v1/stores/BLR-KOR/products", params={"limit": 5})).json()
    assert again["items"][0]["available_qty"] == first["available_qty"] - 1


async def test_category_filter(city, client) -> None:
    items = (
        await client.get(
            "/v1/stores/BLR-KOR/products", params={"category": "snacks-munchies", "limit": 100}
        )
    ).json()
    assert items["items"] and {i["category_id"] for i in items["items"]} == {"snacks-munchies"}
    cats = (await client.get("/v1/categories")).json()
    assert "snacks-munchies" in [c["category_id"] for c in cats]


async def test_product_detail_is_cacheable_with_etag_and_304(city, client) -> None:
    r = await client.get("/v1/stores/BLR-KOR/products/SKU00001")
    assert r.status_code == 200
    assert "max-age=60" in r.headers["cache-control"]
    assert "stale-while-revalidate" in r.headers["cache-control"]
    again = await client.get(
        "/v1/stores/BLR-KOR/products/SKU00001", headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    assert (await client.get("/v1/stores/BLR-KOR/products/NOPE1")).json()[
        "code"
    ] == "product_not_found"
    assert (await client.get("/v1/stores/NOPE/products")).json()["code"] == "store_not_found"


async def test_availability_is_never_cached(city, client) -> None:
    r = await client.get("/v1/stores/BLR-KOR/availability", params={"skus": "SKU00001,SKU00002"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert set(r.json()["available"]) == {"SKU00001", "SKU00002"}


def _brand_with_stock(url: str) -> tuple[str, str]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT p.brand, p.name FROM products p JOIN store_inventory i "
            "ON i.sku_id = p.sku_id AND i.store_id = 'BLR-KOR' "
            "WHERE i.available_qty > 0 AND length(p.brand) >= 5 "
            "ORDER BY p.sku_id LIMIT 1"
        ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


async def test_search_by_prefix_and_with_a_typo(city, client) -> None:
    brand, _ = _brand_with_stock(city.database_url)
    prefix = brand[:3].lower()
    hits = (await client.get("/v1/stores/BLR-KOR/search", params={"q": prefix})).json()
    assert hits and any(h["brand"] == brand for h in hits)
    typo = brand[:2] + brand[2] + brand[2:]  # a doubled letter, as people type it
    fuzzy = (await client.get("/v1/stores/BLR-KOR/search", params={"q": typo})).json()
    assert any(h["brand"] == brand for h in fuzzy)


async def test_search_puts_in_stock_items_first(city, client) -> None:
    brand, _ = _brand_with_stock(city.database_url)
    with psycopg.connect(city.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE store_inventory SET available_qty = 0 WHERE store_id = 'BLR-KOR' "
            "AND sku_id = (SELECT min(sku_id) FROM products WHERE brand = %s)",
            (brand,),
        )
    hits = (await client.get("/v1/stores/BLR-KOR/search", params={"q": brand})).json()
    stock = [h["in_stock"] for h in hits]
    assert stock == sorted(stock, reverse=True)


async def test_search_rejects_empty_and_survives_odd_input(city, client) -> None:
    assert (await client.get("/v1/stores/BLR-KOR/search", params={"q": ""})).status_code == 422
    for q in ["&|!", "'", "a:*", "(((", "ñandú"]:
        r = await client.get("/v1/stores/BLR-KOR/search", params={"q": q})
        assert r.status_code == 200, (q, r.text)
