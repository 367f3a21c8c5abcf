"""Live availability for the catalogue's pages, read from Redis in shared batches.

Every page that shows stock asks ``StockReads.read`` for its SKUs. The requests that ask
in the same turn of the event loop (under load: every request the server read from its
sockets in one wake-up) join one batch per store, and the batch is read by one Lua call,
each SKU once, when the turn ends. A batch is sent after every request in it arrived, so
each answer is as fresh as a call of its own; the cost of a Redis call (connection,
timeout, syscalls, parsing) is paid once per batch instead of once per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio as aioredis

from server.kit import scripts

MAX_BATCH_KEYS = 2_000  # a fuller batch is sent as it is and a new one opened


class _Batch:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.keys: list[str] = []
        self.slots: dict[str, int] = {}
        self.answer: asyncio.Future[list[int]] = loop.create_future()
        # read by a waiter unless every waiter was cancelled: never logged as unread then
        self.answer.add_done_callback(lambda f: f.cancelled() or f.exception())

    def slot(self, key: str) -> int:
        at = self.slots.get(key)
        if at is None:
            at = self.slots[key] = len(self.keys)
            self.keys.append(key)
        return at


class StockReads:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.open: dict[str, _Batch] = {}  # by store: the batch the current turn joins
        self.sending: set[asyncio.Task[None]] = set()

    async def read(self, store_id: str, stock_keys: Sequence[str]) -> list[int]:
        """Available units at ``stock_keys`` (``keys.inventory`` of one store's SKUs), 0 for
        a key Redis does not hold, in the order given."""
        if not stock_keys:
            return []
        batch = self.open.get(store_id)
        if batch is None or len(batch.keys) >= MAX_BATCH_KEYS:
            loop = asyncio.get_running_loop()
            batch = self.open[store_id] = _Batch(loop)
            loop.call_soon(self._send, store_id, batch)
        at = [batch.slot(k) for k in stock_keys]
        answer = await asyncio.shield(batch.answer)  # one waiter cancelled: not the batch
        return [answer[i] for i in at]

    def _send(self, store_id: str, batch: _Batch) -> None:
        if self.open.get(store_id) is batch:
            del self.open[store_id]
        task = asyncio.get_running_loop().create_task(self._read(batch))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def _read(self, batch: _Batch) -> None:
        try:
            raw = await scripts.run(self.redis, "catalog/available", keys=batch.keys)
        except asyncio.CancelledError:  # the server stopping
            batch.answer.cancel()
            raise
        except Exception as exc:  # every waiter gets it (a 503 when Redis is away)
            batch.answer.set_exception(exc)
            return
        batch.answer.set_result([int(v) if v is not None else 0 for v in raw])
