"""In-process caches load single-flight: a crowd missing one key runs one load, a load
whose caller was cancelled is taken over by a waiter, a failed load fails its waiters; a
writer keeps its own copy and drops one it knows is behind."""

from __future__ import annotations

import asyncio

import pytest

from server.kit.cache import TTLCache


class Loader:
    """A load that waits for ``release`` and counts its runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self) -> int:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return self.runs


async def test_a_crowd_missing_one_key_runs_one_load() -> None:
    cache: TTLCache[int] = TTLCache(60)
    load = Loader()
    crowd = [asyncio.create_task(cache.get_or_load("sale", load)) for _ in range(50)]
    await load.started.wait()
    load.release.set()
    assert await asyncio.gather(*crowd) == [1] * 50
    assert load.runs == 1
    assert await cache.get_or_load("sale", load) == 1  # kept: no second load


async def test_a_cancelled_first_caller_hands_the_load_to_a_waiter() -> None:
    cache: TTLCache[int] = TTLCache(60)
    load = Loader()
    first = asyncio.create_task(cache.get_or_load("sale", load))
    await load.started.wait()
    waiters = [asyncio.create_task(cache.get_or_load("sale", load)) for _ in range(5)]
    await asyncio.sleep(0)  # the waiters reach the pending load (a turn, not a delay)
    first.cancel()  # its client left
    load.release.set()
    assert await asyncio.gather(*waiters) == [2] * 5  # one waiter loaded, once
    assert load.runs == 2
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failed_load_fails_its_waiters_and_the_next_miss_loads_again() -> None:
    cache: TTLCache[int] = TTLCache(60)
    load = Loader()
    load.fail = RuntimeError("database away")
    crowd = [asyncio.create_task(cache.get_or_load("sale", load)) for _ in range(3)]
    await load.started.wait()
    load.release.set()
    results = await asyncio.gather(*crowd, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and load.runs == 1
    load.fail = None
    assert await cache.get_or_load("sale", load) == 2


async def test_a_put_value_is_read_until_its_age_and_a_dropped_key_loads_again() -> None:
    """A writer's own row is kept as the copy (``put``), for ``ttl_s`` from then; a key
    known to be behind is forgotten (``drop``) and the next read loads it."""
    now = [100.0]
    cache: TTLCache[int] = TTLCache(30)
    cache.timer = lambda: now[0]
    load = Loader()
    load.release.set()
    cache.put("cart", 7)
    now[0] += 29
    assert await cache.get_or_load("cart", load) == 7 and load.runs == 0
    now[0] += 2  # 31 s after the put
    assert await cache.get_or_load("cart", load) == 1
    cache.put("cart", 9)
    cache.drop("cart")
    cache.drop("never-kept")
    assert await cache.get_or_load("cart", load) == 2 and load.runs == 2
