"""Calls of one event-loop turn sent as one: group commit for Redis scripts.

Under load, many coroutines ask for the same script in one turn of the event loop (each
request runs until its next await). ``TurnBatcher.submit`` gathers them per key and, once
the turn ends (``loop.call_soon``), sends each key's batch by one ``send(key, items)``
whose answer holds one entry per item, in order: each caller gets its own entry, a call's
cost (a round trip, redis-py's per-command work) is paid once per batch. The batch is sent
after all of its callers arrived, so each entry is as fresh as a call of its own.

``in_flight`` bounds the batches of a key on their way at once: a batch due while that
many are out waits for one to come back, still open, and takes in the calls of the turns
meanwhile (group commit: a busy process's batches grow with the round trip instead of
going out a few calls each). A batch out longer than ``stall_s`` stops holding the next
back (one stalled connection must not stall every caller of the key behind it).
Unbounded (None), each turn's batch goes at once: what a caller that wants Python and
Valkey working side by side on small batches asks for.

A caller cancelled before its batch is sent is left out of it (as its own call would not
have run); one cancelled later loses only its own answer. An error of the whole call
(Redis away) is every caller's.
"""

from __future__ import annotations

import asyncio
from collections import deque
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
    """``send(key, items)`` once per key per event-loop turn (at most ``max_items`` each),
    at most ``in_flight`` of a key at once (None: no bound)."""

    def __init__(
        self,
        send: Callable[[K, list[I]], Awaitable[Sequence[A]]],
        *,
        max_items: int,
        in_flight: int | None = None,
        stall_s: float = 1.0,
    ) -> None:
        self.send = send
        self.max_items = max_items
        self.in_flight = in_flight
        self.stall_s = stall_s
        self.open: dict[K, _Batch[I, A]] = {}  # the batch the current turn joins, per key
        self.sending: set[asyncio.Task[None]] = set()
        self.out: dict[K, int] = {}  # batches on their way, per key (with ``in_flight``)
        self.due: dict[K, deque[_Batch[I, A]]] = {}  # batches waiting for one to return

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
        if self.in_flight is not None:
            if self.out.get(key, 0) >= self.in_flight:
                self.due.setdefault(key, deque()).append(batch)  # still open meanwhile
                return
            self.out[key] = self.out.get(key, 0) + 1
        if self.open.get(key) is batch:
            del self.open[key]
        task = batch.loop.create_task(self._run(key, batch))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)
        if self.in_flight is not None:
            counted = True

            def returned(_: object = None) -> None:  # back, or out too long: once
                nonlocal counted
                if counted:
                    counted = False
                    stalled.cancel()
                    self._returned(key)

            stalled = batch.loop.call_later(self.stall_s, returned)
            task.add_done_callback(returned)

    def _returned(self, key: K) -> None:
        """A batch of ``key`` is back (or stalled): the next one due goes."""
        self.out[key] -= 1
        if not self.out[key]:
            del self.out[key]
        due = self.due.get(key)
        if due:
            batch = due.popleft()
            if not due:
                del self.due[key]
            self._flush(key, batch)

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
