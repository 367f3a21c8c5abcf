"""Rate limits (per client IP, per customer) and the flash-sale bulkheads.

Rate limits use the ``limits`` library with its moving-window strategy on Redis, so
every replica counts the same window; an exceeded limit is a 429 problem with
``Retry-After``. The window is wall-clock time by nature (it is about request rates,
not simulated business time), so it does not read the server clock.

The bulkheads keep a flash-sale crowd from taking what regular carts and checkouts
need in this process: at most ``flash_bulkhead_queue`` queue requests and
``flash_bulkhead_checkout`` flash checkouts run at once (each holds database
connections from the shared pool), a request that cannot get in within
``flash_bulkhead_wait_s`` is answered 503 at once, and flash payments go through their
own provider slots (``flash_payment_bulkhead``) beside the regular ones. The semaphores
are per process (per uvicorn worker) like the payment bulkhead: they guard local
resources, so they need no coordination.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import redis.asyncio as aioredis
from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from server.kit import keys
from server.kit.config import Settings
from server.kit.errors import DomainError, ServiceUnavailable
from server.kit.redis import is_cluster_url
from server.kit.resources import resources_of
from server.payments.gateway import PaymentGateway


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: int, **extra: Any) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **extra)
        self.headers = {"Retry-After": str(retry_after_s)}


class FlashBusy(ServiceUnavailable):
    code, title = "flash_busy", "The flash sale is busy"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retry_after_s=1)
        self.headers = {"Retry-After": "1"}


@lru_cache(maxsize=32)
def _item(spec: str) -> RateLimitItem:
    try:
        return parse(spec)
    except ValueError:
        raise ValueError(f"not a rate limit: {spec!r} (write e.g. '100/minute')") from None


def rate_limiter(redis: aioredis.Redis, url: str) -> MovingWindowRateLimiter:
    """The app's limiter (one per app): on a single Redis, on the app's own connection
    pool; on a cluster (``redis+cluster://`` URL), ``limits``' cluster storage (its own
    ``RedisCluster`` client; each window is one key, so its scripts touch one slot)."""
    if is_cluster_url(url):
        scheme, rest = url.split("://", 1)
        return MovingWindowRateLimiter(
            RedisClusterStorage(f"async+{scheme}://{rest}", implementation="redispy")
        )
    # limits documents ``connection_pool`` but types its **options as scalars
    pool: Any = redis.connection_pool
    storage = RedisStorage("async+redis://", implementation="redispy", connection_pool=pool)
    return MovingWindowRateLimiter(storage)


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


class Bulkhead:
    """At most ``limit`` holders at once; others wait up to ``wait_s``, then 503."""

    def __init__(self, name: str, limit: int, wait_s: float) -> None:
        if limit < 1 or wait_s < 0:
            raise ValueError("a bulkhead needs limit >= 1 and wait_s >= 0")
        self.name, self.limit, self.wait_s = name, limit, wait_s
        self._slots = asyncio.Semaphore(limit)
        self.in_use = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise FlashBusy(
                f"too many flash-sale {self.name} requests in progress; try again shortly"
            ) from None
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._slots.release()


def flash_gateway(regular: PaymentGateway, *, slots: int) -> PaymentGateway:
    """The regular provider and its shared breaker, behind the flash sale's own slots."""
    return PaymentGateway(
        regular.provider,
        regular.breaker,
        bulkhead_limit=slots,
        timeout_s=regular.timeout_s,
        bulkhead_wait_s=regular.bulkhead_wait_s,
    )
