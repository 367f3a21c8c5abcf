"""Background loops that must run once per cluster, not once per replica.

Each loop holds a Redis lease (SET NX PX, renewed every run: ``lua/lease.lua``); replicas
without the lease stand by and take over within one lease period if the holder dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from server.kit import keys, scripts

log = logging.getLogger(__name__)


class LeasedLoop:
    def __init__(
        self,
        redis: aioredis.Redis,
        name: str,
        interval_s: float,
        run: Callable[[], Awaitable[object]],
        lease_ms: int | None = None,
    ) -> None:
        self.redis = redis
        self.name = name
        self.interval_s = interval_s
        self.run = run
        self.lease_ms = lease_ms or max(3000, int(interval_s * 3000))
        self.owner = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None

    async def holds_lease(self) -> bool:
        return bool(
            await scripts.run(
                self.redis,
                "kit/lease",
                keys=[keys.lease(self.name)],
                args=[self.owner, self.lease_ms],
            )
        )

    async def _loop(self) -> None:
        while True:
            try:
                if await self.holds_lease():
                    await self.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background loop failed", extra={"loop": self.name})
            # rescheduled after each run finishes, so a slow run never overlaps itself
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"loop:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # a run stuck on a dead connection must not hold up the shutdown
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, timeout=5)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                if await self.redis.get(keys.lease(self.name)) == self.owner:
                    await self.redis.delete(keys.lease(self.name))
