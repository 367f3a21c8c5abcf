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
