"""Anonymous reads that cost work are limited per client address (search, store
selection), and a search takes a bounded number of words: 429 / 422 problems."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from server.kit import ratelimit
from server.kit.config import Settings
from server.kit.redis import is_cluster_url
from server.kit.resources import resources_of
from tests.conftest import Services, settings_for

STORE = "BLR-KOR"
HOME = {"lat": 12.9352, "lng": 77.6245}


@pytest.fixture
def settings(services: Services) -> Settings:
    return settings_for(
        services, search_limit_per_address="3/minute", serviceable_limit_per_address="2/minute"
    )


async def test_search_is_limited_per_address(city: Services, client: httpx.AsyncClient) -> None:
    answers = [
        await client.get(f"/v1/stores/{STORE}/search", params={"q": "milk"}) for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["code"] == "rate_limited"
    assert int(answers[3].headers["Retry-After"]) >= 1


async def test_store_selection_is_limited_per_address(
    city: Services, client: httpx.AsyncClient
) -> None:
    answers = [await client.get("/v1/stores/serviceable", params=HOME) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]


async def test_a_search_takes_a_bounded_number_of_words(
    city: Services, client: httpx.AsyncClient
) -> None:
    r = await client.get(f"/v1/stores/{STORE}/search", params={"q": " ".join(["milk"] * 9)})
    assert r.status_code == 422 and r.json()["code"] == "too_many_terms"


async def test_hits_of_one_turn_share_a_call_and_count_as_limits_does(
    city: Services, app: FastAPI
) -> None:
    limiter = resources_of(app).rate_limiter
    assert isinstance(limiter, ratelimit.BatchedMovingWindow)
    item = parse("3/minute")
    redis = resources_of(app).redis
    # commandstats are the server's: counted only on the suite's own single-node Valkey,
    # where no other worker's commands (a replica's background loops) count too
    counted = city.embedded and not is_cluster_url(city.redis_url)
    before = await _evalsha_calls(redis)
    answers = await asyncio.gather(*(limiter.hit(item, "batch", who) for who in "aaaaab"))
    assert answers == [True, True, True, False, False, True]  # in the order they came
    if counted:
        assert await _evalsha_calls(redis) == before + 1  # one Lua call for the turn
    stats = await limiter.get_window_stats(item, "batch", "a")  # limits reads the window
    assert stats.remaining == 0 and stats.reset_time > time.time()
    assert await MovingWindowRateLimiter.hit(limiter, item, "batch", "b")  # limits' own hit
    assert [await limiter.hit(item, "batch", "b") for _ in range(2)] == [True, False]


async def _evalsha_calls(redis: Redis) -> int:
    stats = (await redis.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0))
