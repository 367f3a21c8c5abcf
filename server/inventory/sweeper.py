"""Expiry: due holds are found through the expiry zset and released atomically in Lua.

A key's TTL never returns stock; this sweep does, by the server clock, and it works the
same after a restart because the zset lives in Redis (and is rebuilt from PostgreSQL).
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.inventory.service import settle_hold
from server.kit import keys
from server.kit.clock import Clock
from server.kit.db import transaction
from server.kit.errors import DomainError

log = logging.getLogger(__name__)

EXPIRED = Counter("qc_inventory_holds_expired_total", "Holds released by expiry", ["store_id"])


async def sweep_store(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    clock: Clock,
    store_id: str,
    *,
    batch: int = 200,
) -> int:
    """Release every hold of ``store_id`` that is due now; returns how many."""
    now = clock.now()
    due = await redis.zrangebyscore(
        keys.hold_expiry(store_id), "-inf", now.timestamp(), start=0, num=batch
    )
    released = 0
    for member in due:
        holder = member.decode() if isinstance(member, bytes) else str(member)
        try:
            async with transaction(sessions) as session:
                result = await settle_hold(
                    session, redis, store_id=store_id, holder=holder, outcome="EXPIRED", now=now
                )
        except DomainError as exc:
            # refused (the books short of this hold, the store being reloaded): the next
            # sweep tries it again, and the holds due after it are not held up meanwhile
            log.warning(
                "could not expire a hold",
                extra={
                    "store_id": store_id,
                    "holder": holder,
                    "code": exc.code,
                    "detail": exc.detail,
                },
            )
            continue
        if result.status == "OK":
            released += 1
        elif result.status == "NOOP":
            # an ended hold left in the index (e.g. after a crash): drop it
            await redis.zrem(keys.hold_expiry(store_id), holder)
    if released:
        EXPIRED.labels(store_id).inc(released)
        log.info("holds expired", extra={"store_id": store_id, "count": released})
    return released
