"""The payments tests' Redis: the suite's own, emptied, answers decoded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.conftest import Services


@pytest.fixture
async def redis(services: Services) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(services.redis_url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()
