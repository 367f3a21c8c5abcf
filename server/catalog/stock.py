"""Live availability for the catalogue's pages, read from Redis in shared batches.

Every page that shows stock asks ``StockReads.read`` for its SKUs. The requests that ask
in the same turn of the event loop (under load: every request the server read from its
sockets in one wake-up) join one batch per store (``kit.coalesce.TurnBatcher``), and the
batch is read by one Lua call, each SKU once. A batch is sent after every request in it
arrived, so each answer is as fresh as a call of its own; the cost of a Redis call
(connection, timeout, syscalls, parsing) is paid once per batch instead of once per request.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from server.kit import scripts
from server.kit.coalesce import TurnBatcher

MAX_BATCH_PAGES = 50  # ~2,000 keys of 40-item pages; a fuller batch is sent as it is


class StockReads:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.pages: TurnBatcher[str, Sequence[str], list[int]] = TurnBatcher(
            self._read, max_items=MAX_BATCH_PAGES
        )

    async def read(self, store_id: str, stock_keys: Sequence[str]) -> list[int]:
        """Available units at ``stock_keys`` (``keys.inventory`` of one store's SKUs), 0 for
        a key Redis does not hold, in the order given."""
        if not stock_keys:
            return []
        return await self.pages.submit(store_id, stock_keys)

    async def _read(self, store_id: str, pages: list[Sequence[str]]) -> list[list[int]]:
        slots: dict[str, int] = {}  # each key read once, however many pages show it
        at = [[slots.setdefault(k, len(slots)) for k in page] for page in pages]
        raw = await scripts.run(self.redis, "catalog/available", keys=list(slots))
        units = [int(v) if v is not None else 0 for v in raw]
        return [[units[i] for i in page] for page in at]
