"""What the running app holds, typed: built once in the lifespan (``server.app``), read by
the dependencies (``server.kit.deps``), the websockets and the background loops.

Everything a request may need lives here from startup on, so no handler adds a
singleton on first use: connections, settings and clock, and the per-process guards and
fan-outs (payment gateways, rate limiter, flash bulkheads and hub, the sockets' listener
for ended sessions, the ops feed cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from limits.aio.strategies import MovingWindowRateLimiter
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
    from sqlmodel.ext.asyncio.session import AsyncSession

    from server.catalog.snapshot import Catalog
    from server.flash.bulkheads import Bulkhead
    from server.flash.hub import FlashHub
    from server.kit.clock import Clock
    from server.kit.config import Settings
    from server.kit.fanout import Fanout
    from server.kit.sockets import SessionEnds
    from server.ops.feed import FeedCache
    from server.payments.gateway import PaymentGateway


@dataclass(frozen=True)
class Resources:
    settings: Settings
    clock: Clock
    database_url: str
    redis_url: str
    head_revision: str | None
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    fanout: Fanout  # the process's one pub/sub subscriber, shared by every socket
    session_ends: SessionEnds  # the sockets' one listener for ended sessions
    payments: PaymentGateway
    flash_payments: PaymentGateway  # the same provider and breaker, its own slots
    rate_limiter: MovingWindowRateLimiter
    flash_queue_bulkhead: Bulkhead
    flash_checkout_bulkhead: Bulkhead
    flash_hub: FlashHub
    ops_feed: FeedCache
    catalog: Catalog  # the in-process catalogue (reads without PostgreSQL)


def install(app: Starlette, resources: Resources) -> None:
    """Make ``resources`` the app's (the lifespan does this once; a test may swap them)."""
    app.state.resources = resources


def resources_of(app: Starlette) -> Resources:
    """The running app's resources (set by its lifespan)."""
    resources: Resources = app.state.resources
    return resources
