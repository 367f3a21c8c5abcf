"""The Lua script registry and the leader lease it runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server.kit import keys, scripts
from server.kit.background import LeasedLoop

SERVER = Path(scripts.__file__).resolve().parents[1]


@pytest.fixture
async def redis(clean) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(clean.redis_url, decode_responses=True)
    yield client
    await client.aclose()


def test_every_lua_file_is_registered_once_by_domain_and_name() -> None:
    files = {
        f"{path.parent.parent.name}/{path.stem}"
        for path in SERVER.glob("*/lua/*.lua")
        if not path.name.startswith("_")
    }
    assert set(scripts.SCRIPTS) == files
    assert {"inventory/reserve", "payments/breaker", "flash/join", "kit/lease"} <= files


def test_a_prelude_goes_only_in_front_of_the_scripts_that_call_it() -> None:
    prelude = (SERVER / "flash" / "lua" / "_common.lua").read_text()
    assert scripts.SCRIPTS["flash/close"].source.startswith(prelude)
    assert prelude not in scripts.SCRIPTS["flash/positions"].source


async def test_a_script_runs_again_after_redis_forgot_it(redis: aioredis.Redis) -> None:
    loop = LeasedLoop(redis, "scripts-test", 1.0, lambda: redis.ping())
    assert await loop.holds_lease()
    await redis.script_flush()
    assert await loop.holds_lease()  # NOSCRIPT: loaded and run again


async def test_one_replica_holds_a_lease_until_it_lapses(redis: aioredis.Redis) -> None:
    first = LeasedLoop(redis, "scripts-test", 1.0, lambda: redis.ping())
    second = LeasedLoop(redis, "scripts-test", 1.0, lambda: redis.ping())
    assert await first.holds_lease() and await first.holds_lease()  # renewed
    assert not await second.holds_lease()
    await redis.delete(keys.lease("scripts-test"))
    assert await second.holds_lease() and not await first.holds_lease()


async def test_a_pipeline_of_calls_runs_again_after_redis_forgot_the_script(
    redis: aioredis.Redis,
) -> None:
    stock = [keys.inventory("SCRIPTS-TEST", sku) for sku in ("A", "B")]
    await redis.hset(stock[0], "available", 3)
    await redis.hset(stock[1], "available", 0)
    await redis.script_flush()
    calls: list[tuple[list[str], list[str]]] = [
        ([stock[0]], []),
        ([stock[1], stock[0]], []),
        ([keys.inventory("SCRIPTS-TEST", "C")], []),
    ]
    # NOSCRIPT: loaded and the whole pipeline run again, each call its own answer in order
    answers = await scripts.run_each(redis, "catalog/available", calls)
    assert [[int(v) if v is not None else None for v in a] for a in answers] == [
        [3],
        [0, 3],
        [None],
    ]
    assert await redis.script_exists(scripts.SCRIPTS["catalog/available"].sha) == [True]
