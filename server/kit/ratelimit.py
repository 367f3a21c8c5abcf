"""Rate limits per client address and per customer, shared by every replica.

They use the ``limits`` library with its moving-window strategy on Redis, so every
replica counts the same window; an exceeded limit is a 429 problem with ``Retry-After``.
On one Redis the hits asked for in one turn of the event loop go to Redis in one Lua call
(``BatchedMovingWindow``): the same windows and rule, a call's cost paid once per turn.
The window is wall-clock time by nature (it is about request rates, not simulated
business time), so it does not read the server clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

import redis.asyncio as aioredis
from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from server.kit import keys, scripts
from server.kit.coalesce import TurnBatcher
from server.kit.config import Settings
from server.kit.errors import DomainError
from server.kit.redis import is_cluster_url
from server.kit.resources import resources_of


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: int, **extra: Any) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **extra)
        self.headers = {"Retry-After": str(retry_after_s)}


@lru_cache(maxsize=32)
def _item(spec: str) -> RateLimitItem:
    try:
        return parse(spec)
    except ValueError:
        raise ValueError(f"not a rate limit: {spec!r} (write e.g. '100/minute')") from None


MAX_BATCH_HITS = 1_000  # a fuller batch is sent as it is and a new one opened


class BatchedMovingWindow(MovingWindowRateLimiter):
    """``limits``' moving window on one Redis (its keys and rule: ``test`` and
    ``get_window_stats`` read the windows these hits fill) whose hits of one event-loop
    turn are counted by one Lua call (``kit.coalesce``), in the order they came, each as
    fresh as a call of its own. A per-address limit's own call was ~35 % of a search's CPU."""

    def __init__(self, storage: RedisStorage, redis: aioredis.Redis) -> None:
        super().__init__(storage)
        self.redis = redis
        self.window_key = storage.bridge.prefixed_key  # limits' name of a window in Redis
        # one batch out at a time, the next gathering meanwhile (``coalesce``)
        self.hits: TurnBatcher[None, tuple[str, int, int], int] = TurnBatcher(
            self._count, max_items=MAX_BATCH_HITS, in_flight=1
        )

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        if cost != 1:
            return await super().hit(item, *identifiers, cost=cost)
        window = self.window_key(item.key_for(*identifiers))
        return bool(await self.hits.submit(None, (window, item.amount, item.get_expiry())))

    async def _count(self, _: None, hits: list[tuple[str, int, int]]) -> list[int]:
        args: list[float] = [time.time()]
        for _window, amount, expiry in hits:
            args += (amount, expiry)
        answer = await scripts.run(
            self.redis, "kit/moving_window_hits", keys=[h[0] for h in hits], args=args
        )
        return [int(a) for a in answer]


def rate_limiter(redis: aioredis.Redis, url: str) -> MovingWindowRateLimiter:
    """The app's limiter (one per app): on a single Redis, on the app's own connection
    pool, its hits batched (``BatchedMovingWindow``); on a cluster (``redis+cluster://`` URL), ``limits``' cluster storage (its own
    ``RedisCluster`` client; each window is one key, so its scripts touch one slot)."""
    if is_cluster_url(url):
        scheme, rest = url.split("://", 1)
        return MovingWindowRateLimiter(
            RedisClusterStorage(f"async+{scheme}://{rest}", implementation="redispy")
        )
    # limits documents ``connection_pool`` but types its **options as scalars
    pool: Any = redis.connection_pool
    storage = RedisStorage("async+redis://", implementation="redispy", connection_pool=pool)
    return BatchedMovingWindow(storage, redis)


async def warm(limiter: MovingWindowRateLimiter) -> None:
    """One read through the limiter at start-up: on a cluster its own client discovers the
    nodes and loads its script here (seconds on a busy machine), not in a first request."""
    await limiter.test(_item("1/second"), keys.rate_limit_scope("warm-up"), "start")


def per_address(scope: str, spec_of: Callable[[Settings], str]) -> Callable[..., Awaitable[None]]:
    """A route dependency: count the request against the caller's address (the real one
    behind QC_TRUSTED_PROXIES) under ``spec_of(settings)``; past it, 429 with Retry-After."""

    async def limited(request: Request) -> None:
        resources = resources_of(request.app)
        await hit(
            resources.rate_limiter,
            scope=scope,
            who=client_ip(request),
            spec=spec_of(resources.settings),
        )

    return limited


async def hit(limiter: MovingWindowRateLimiter, *, scope: str, who: str, spec: str) -> None:
    """Count one request of ``who`` against ``spec`` (e.g. "100/minute") or raise 429."""
    item = _item(spec)
    namespace = keys.rate_limit_scope(scope)
    if await limiter.hit(item, namespace, who):
        return
    stats = await limiter.get_window_stats(item, namespace, who)
    retry = max(1, math.ceil(stats.reset_time - time.time()))
    raise RateLimited(
        f"more than {spec} {scope.replace('-', ' ')} requests; try again in {retry} s",
        retry_after_s=retry,
        limit=spec,
    )


def client_ip(request: Request) -> str:
    """The caller's address as the ASGI server reports it (uvicorn takes it from
    ``X-Forwarded-For`` when the connection comes from a trusted proxy, the edge)."""
    return request.client.host if request.client else "unknown"
