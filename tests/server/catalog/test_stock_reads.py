"""Availability reads shared by the pages asked for at the same moment: one Lua call for
the batch, each page its own SKUs in its own order, and a page given up on (cancelled)
does not take the others' answers with it."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from server.catalog.stock import StockReads
from server.kit import keys
from server.kit.redis import create_redis, is_cluster_url

STORE = "BLR-KOR"


def _key(sku: str) -> str:
    return keys.inventory(STORE, sku)


async def test_pages_asked_together_share_one_call_and_get_their_own_stock(clean) -> None:
    if is_cluster_url(clean.redis_url) or not clean.embedded:
        pytest.skip("commandstats counted on the suite's own single-node Valkey")
    redis = create_redis(clean.redis_url)
    try:
        for sku, qty in (("A", 5), ("B", 0), ("C", 7)):
            await redis.hset(_key(sku), mapping={"available": qty})
        reads = StockReads(redis)
        await reads.read(STORE, [_key("A")])  # the script loaded: not counted below
        before = await redis.info("commandstats")
        pages = await asyncio.gather(
            reads.read(STORE, [_key("A"), _key("B")]),
            reads.read(STORE, [_key("C"), _key("A"), _key("missing")]),
            reads.read(STORE, []),
        )
        after = await redis.info("commandstats")
        calls = Counter(
            {k: after[k]["calls"] - before.get(k, {}).get("calls", 0) for k in after}
        ) - Counter({"cmdstat_info": 1})
        assert pages == [[5, 0], [7, 5, 0], []]
        # one script call; inside it each SKU read once (A is on two pages)
        assert calls == Counter({"cmdstat_evalsha": 1, "cmdstat_hget": 4})
        assert reads.pages.open == {}
    finally:
        await redis.aclose()


async def test_a_cancelled_page_leaves_the_batch_to_the_others(clean) -> None:
    redis = create_redis(clean.redis_url)
    try:
        await redis.hset(_key("A"), mapping={"available": 3})
        reads = StockReads(redis)
        given_up = asyncio.ensure_future(reads.read(STORE, [_key("A")]))
        kept = asyncio.ensure_future(reads.read(STORE, [_key("A")]))
        await asyncio.sleep(0)  # both joined the turn's batch
        given_up.cancel()
        assert await kept == [3]
        assert given_up.cancelled()
    finally:
        await redis.aclose()
