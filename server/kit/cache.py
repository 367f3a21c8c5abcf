"""In-process caches for hot, slowly changing data (products, prices, stores).

``TTLCache``: values live ``ttl_s`` seconds; replicas may disagree for that long.

``VersionedCache``: values live until a version in Redis changes. A writer calls
``bump(redis, key)`` after its commit (``uow.after_commit``): it increments the version and
tells every cache of this process at once; other replicas notice at their next check,
which each cache makes at most every ``check_every_s`` (one GET, not per request). So a
read that nothing changed costs no PostgreSQL and, most of the time, no Redis either; a
change is seen at once on the replica that made it and within ``check_every_s`` elsewhere.
Loads of both are single-flight (``SingleFlight``): a crowd missing the same key runs one
load.

Inventory is never cached here.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import redis.asyncio as aioredis

V = TypeVar("V")


class LoadAbandoned(Exception):
    """The load this caller waited for was cancelled with its caller: look again."""


class SingleFlight(Generic[V]):
    """Loads in flight by key: a crowd missing the same key waits for the first caller's
    load. If that caller is cancelled (its client left), its waiters get ``LoadAbandoned``
    and look again (the cache, then a load of their own)."""

    def __init__(self) -> None:
        self._pending: dict[Hashable, asyncio.Future[V]] = {}

    async def run(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        pending = self._pending.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if pending.cancelled():
                    raise LoadAbandoned() from None
                raise  # this caller was cancelled, not the load
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._pending[key]
        future.set_result(value)
        return value


class TTLCache(Generic[V]):
    def __init__(self, ttl_s: float, max_items: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._items: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._loading: SingleFlight[V] = SingleFlight()
        # what "now" is read from; the deterministic simulation points it at its clock
        self.timer: Callable[[], float] = time.monotonic

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        while True:
            try:
                return await self._get_or_load(key, load)
            except LoadAbandoned:
                continue

    async def _get_or_load(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        now = self.timer()
        hit = self._items.get(key)
        if hit is not None and hit[0] > now:
            self._items.move_to_end(key)
            return hit[1]

        async def fill() -> V:
            value = await load()
            self._keep(key, now + self.ttl_s, value)
            return value

        return await self._loading.run(key, fill)

    def put(self, key: Hashable, value: V) -> None:
        """Keep ``value`` as the key's copy from now (a writer's own row, say)."""
        self._keep(key, self.timer() + self.ttl_s, value)

    def _keep(self, key: Hashable, until: float, value: V) -> None:
        self._items[key] = (until, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def drop(self, key: Hashable) -> None:
        """Forget the key's copy: the next read loads it."""
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()


_live: weakref.WeakSet[VersionedCache[object]] = weakref.WeakSet()


class VersionedCache(Generic[V]):
    """Whole values by key, dropped when the Redis string ``version_key`` changes."""

    def __init__(
        self, redis: aioredis.Redis, version_key: str, *, check_every_s: float = 1.0
    ) -> None:
        self.redis = redis
        self.version_key = version_key
        self.check_every_s = check_every_s
        self.loads = 0  # how many loads ran (a figure for tests and benchmarks)
        self._version: object = object()  # never equal to what Redis answers
        self._checked_at = -float("inf")
        self._generation = 0
        self._items: dict[Hashable, V] = {}
        self._loading: SingleFlight[V] = SingleFlight()
        _live.add(self)  # type: ignore[arg-type]

    def invalidate(self) -> None:
        """Check the version at the next read (this process made a change)."""
        self._checked_at = -float("inf")

    async def _check(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self.check_every_s:
            return
        self._checked_at = now  # one check at a time: the others read what is there
        try:
            version = await self.redis.get(self.version_key)
        except BaseException:
            self._checked_at = -float("inf")
            raise
        if version != self._version:
            self._version = version
            self._generation += 1
            self._items.clear()

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        while True:
            try:
                return await self._get(key, load)
            except LoadAbandoned:
                continue

    async def _get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        await self._check()
        try:
            return self._items[key]
        except KeyError:
            pass

        async def fill() -> V:
            generation = self._generation
            value = await load()
            self.loads += 1
            if generation == self._generation:  # else it may predate the change: serve only
                self._items[key] = value
            return value

        return await self._loading.run(key, fill)

    def peek(self, key: Hashable) -> V | None:
        """The cached value, if any, without a check or a load."""
        return self._items.get(key)


async def bump(redis: aioredis.Redis, version_key: str) -> int:
    """Record a change: every ``VersionedCache`` on ``version_key`` drops its values (this
    process's at once, other replicas' within their ``check_every_s``)."""
    version = int(await redis.incr(version_key))
    for cache in list(_live):
        if cache.version_key == version_key:
            cache.invalidate()
    return version
