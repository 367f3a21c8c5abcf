"""The in-process catalogue: warm reads open no database connection, a change is seen after
its invalidation (at once here, within the check interval on another replica), stock is
live, category pages are edge-cacheable without stock, and a flash sale's offer comes and
goes with the sale."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import psycopg
from sqlalchemy import event

from server.catalog.snapshot import Catalog, catalog_changed
from server.inventory import service
from server.kit import keys
from server.kit.db import transaction
from server.kit.resources import resources_of
from tests.server.flash.flash_helpers import create_sale, flash_sku, manager_headers, stock_up

STORE = "BLR-KOR"
READS = [
    "/v1/categories",
    f"/v1/stores/{STORE}/products?limit=40",
    f"/v1/stores/{STORE}/products?category=snacks-munchies",
    f"/v1/stores/{STORE}/products/SKU00001",
    f"/v1/stores/{STORE}/categories/snacks-munchies",
    f"/v1/stores/{STORE}/availability?skus=SKU00001,SKU00002",
    f"/v1/stores/{STORE}/search?q=milk",
]


def _set_price(url: str, sku: str, paise: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE store_prices SET selling_price_paise = %s WHERE store_id = %s AND sku_id = %s",
            (paise, STORE, sku),
        )


async def test_warm_reads_check_out_no_database_connection(city, app, client) -> None:
    for path in READS:  # the first round loads the catalogue
        assert (await client.get(path)).status_code == 200, path
    checkouts: list[object] = []
    engine = resources_of(app).engine.sync_engine
    listener = lambda *_: checkouts.append(1)  # noqa: E731
    event.listen(engine, "checkout", listener)
    try:
        for _ in range(3):
            for path in READS:
                assert (await client.get(path)).status_code == 200, path
    finally:
        event.remove(engine, "checkout", listener)
    assert checkouts == []
    assert resources_of(app).catalog.cache.loads == 2  # the directory and the one store


async def test_a_price_change_shows_after_invalidation(city, app, client) -> None:
    path = f"/v1/stores/{STORE}/products/SKU00002"
    old = (await client.get(path)).json()["price_paise"]
    _set_price(city.database_url, "SKU00002", old + 100)
    assert (await client.get(path)).json()["price_paise"] == old  # cached: nobody said
    await catalog_changed(resources_of(app).redis)
    assert (await client.get(path)).json()["price_paise"] == old + 100  # this replica: at once
    page = (await client.get(f"/v1/stores/{STORE}/products?limit=5")).json()["items"]
    assert {i["sku_id"]: i["price_paise"] for i in page}["SKU00002"] == old + 100


async def test_another_replica_sees_the_change_within_its_check_interval(city, app) -> None:
    resources = resources_of(app)
    other = Catalog(resources.engine, resources.redis, check_every_s=0.2)

    async def price() -> int:
        store = await other.store(STORE)
        assert store is not None
        return int(store.items["SKU00003"].card["price_paise"])

    old = await price()
    _set_price(city.database_url, "SKU00003", old + 7)
    await resources.redis.incr(keys.CATALOG_VERSION)  # as another process's bump reaches us
    deadline = time.monotonic() + 30
    while await price() != old + 7:  # polled: the check runs at most every 0.2 s
        assert time.monotonic() < deadline, "the other replica never saw the change"
        await asyncio.sleep(0.02)


async def test_stock_on_every_page_is_live(city, app, client) -> None:
    resources = resources_of(app)
    listed = (await client.get(f"/v1/stores/{STORE}/search?q=milk")).json()
    sku = next(i for i in listed if i["available_qty"] > 1)
    async with transaction(resources.sessions) as s:
        await service.reserve_lines(
            s,
            resources.redis,
            store_id=STORE,
            holder="cart-live",
            lines={sku["sku_id"]: 1},
            now=resources.clock.now(),
            hold_s=600,
        )
    again = (await client.get(f"/v1/stores/{STORE}/search?q=milk")).json()
    assert {i["sku_id"]: i["available_qty"] for i in again}[sku["sku_id"]] == (
        sku["available_qty"] - 1
    )
    live = await client.get(f"/v1/stores/{STORE}/availability?skus={sku['sku_id']}")
    assert live.json()["available"] == {sku["sku_id"]: sku["available_qty"] - 1}


async def test_category_page_is_edge_cacheable_and_carries_no_stock(city, client) -> None:
    path = f"/v1/stores/{STORE}/categories/snacks-munchies"
    r = await client.get(path, params={"limit": 3})
    assert r.status_code == 200 and "s-maxage=3600" in r.headers["cache-control"]
    page = r.json()
    assert len(page["items"]) == 3 and page["next_cursor"] == page["items"][-1]["sku_id"]
    assert all(
        "available_qty" not in i and i["category_id"] == "snacks-munchies" for i in page["items"]
    )
    listed = (
        await client.get(
            f"/v1/stores/{STORE}/products", params={"category": "snacks-munchies", "limit": 3}
        )
    ).json()
    assert [i["sku_id"] for i in listed["items"]] == [i["sku_id"] for i in page["items"]]
    nxt = (await client.get(path, params={"limit": 3, "cursor": page["next_cursor"]})).json()
    assert nxt["items"][0]["sku_id"] > page["items"][-1]["sku_id"]
    again = await client.get(
        path, params={"limit": 3}, headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    missing = await client.get(f"/v1/stores/{STORE}/categories/no-such-aisle")
    assert missing.status_code == 404 and missing.json()["code"] == "category_not_found"
    assert (await client.get("/v1/stores/NOPE/categories/snacks-munchies")).status_code == 404


async def test_a_flash_offer_comes_and_goes_with_the_sale(city, app, client, clock) -> None:
    sku = flash_sku(city.database_url)
    path = f"/v1/stores/{STORE}/products/{sku}"
    assert (await client.get(path)).json()["flash"] is None  # cached before the sale
    await stock_up(app, STORE, sku, 20)
    manager = manager_headers(clock, city.database_url)
    sale = await create_sale(client, manager, clock, sku=sku, units=5, price=100)
    assert (await client.get(path)).json()["flash"]["sale_id"] == sale["sale_id"]
    live = (await client.get(f"/v1/stores/{STORE}/availability?skus={sku}")).json()
    assert live["flash"][sku]["price_paise"] == 100
    stop = await client.post(
        f"/v1/flash-sales/{sale['sale_id']}/stop", json={"reason": "over"}, headers=manager
    )
    assert stop.status_code == 200, stop.text
    assert (await client.get(path)).json()["flash"] is None


async def test_a_frozen_process_sets_a_loaded_catalogue_aside(city, app) -> None:
    """Under qc serve (its start-up frozen) a loaded catalogue is frozen too, after the
    young garbage is collected; nothing frozen is thawed for it (a full collection of
    everything stalled the worker as a sale's crowd arrived), and the catalogue it
    replaced is freed without the collector. Elsewhere the collector is left as Python
    sets it."""
    resources = resources_of(app)
    other = Catalog(resources.engine, resources.redis)
    assert gc.get_freeze_count() == 0
    first = await other.store(STORE)
    assert first is not None
    assert gc.get_freeze_count() == 0  # not a frozen process: nothing set aside
    old = weakref.ref(first)
    del first
    aside = weakref.ref(_Cyclic())
    gc.freeze()  # as qc.serving does after start-up (the garbage frozen with the rest)
    try:
        young = weakref.ref(_Cyclic())  # garbage only the collector frees
        gc.disable()  # no automatic collection: what is freed, settle or refcounts freed
        try:
            await resources.redis.incr(keys.CATALOG_VERSION)
            other.cache.invalidate()
            store = await other.store(STORE)
        finally:
            gc.enable()
        assert store is not None and young() is None  # collected, not frozen
        assert old() is None  # the replaced catalogue: no cycle kept it
        assert aside() is not None  # the frozen are not scanned again (a full collection's cost)
        assert not any(o is store.items for o in gc.get_objects())  # out of the collector's sight
    finally:
        gc.unfreeze()


class _Cyclic:
    def __init__(self) -> None:
        self.me = self
