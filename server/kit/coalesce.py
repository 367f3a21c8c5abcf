"""Calls of one event-loop turn sent as one: group commit for Redis scripts.

Under load, many coroutines ask for the same script in one turn of the event loop (each
request runs until its next await). ``TurnBatcher.submit`` gathers them per key and, once
the turn ends (``loop.call_soon``), sends each key's batch by one ``send(key, items)``
whose answer holds one entry per item, in order: each caller gets its own entry, a call's
cost (a round trip, redis-py's per-command work) is paid once per batch. The batch is sent
after all of its callers arrived, so each entry is as fresh as a call of its own.

A caller cancelled before its batch is sent is left out of it (as its own call would not
have run); one cancelled later loses only its own answer. An error of the whole call
(Redis away) is every caller's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - an item
A = TypeVar("A")


class _Batch(Generic[I, A]):
    __slots__ = ("items", "loop", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: list[I] = []
        self.waiters: list[asyncio.Future[A]] = []


class TurnBatcher(Generic[K, I, A]):
    """``send(key, items)`` once per key per event-loop turn (at most ``max_items`` each)."""

    def __init__(
        self, send: Callable[[K, list[I]], Awaitable[Sequence[A]]], *, max_items: int
    ) -> None:
        self.send = send
        self.max_items = max_items
        self.open: dict[K, _Batch[I, A]] = {}  # the batch the current turn joins, per key
        self.sending: set[asyncio.Task[None]] = set()

    async def submit(self, key: K, item: I) -> A:
        batch = self.open.get(key)
        if batch is None or len(batch.items) >= self.max_items:
            loop = asyncio.get_running_loop()
            batch = self.open[key] = _Batch(loop)
            loop.call_soon(self._flush, key, batch)
        waiter: asyncio.Future[A] = batch.loop.create_future()
        batch.items.append(item)
        batch.waiters.append(waiter)
        return await waiter

    def _flush(self, key: K, batch: _Batch[I, A]) -> None:
        if self.open.get(key) is batch:
            del self.open[key]
        task = batch.loop.create_task(self._run(key, batch))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def _run(self, key: K, batch: _Batch[I, A]) -> None:
        live = [i for i, w in enumerate(batch.waiters) if not w.cancelled()]
        if len(live) < len(batch.waiters):
            batch.items = [batch.items[i] for i in live]
            batch.waiters = [batch.waiters[i] for i in live]
        if not live:
            return
        try:
            answers = await self.send(key, batch.items)
            if len(answers) != len(batch.waiters):
                raise RuntimeError(f"{len(answers)} answers to {len(batch.waiters)} calls")
        except asyncio.CancelledError:  # the server stopping
            for waiter in batch.waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter, answer in zip(batch.waiters, answers, strict=True):
            if not waiter.done():
                waiter.set_result(answer)
