"""Queue positions for the websockets: one pub/sub subscription per line per process.

A line's changes are published by ``sales.publish``: "admitted" (naming the customers
whose claims just committed), "moved" (slots ended, so positions went down) and
"closed". Each process keeps one subscription per line it has sockets for and pushes to
each of its sockets what changed for it:

* an admission at once (the message names who; one script call reads their slots);
* the line closing at once, to every socket (sold out, stopped, ended);
* a new position at most once a second near the front, every change among the first
  ``NEAR_FRONT``, and far back every ``position / FAR_BACK_PER_S`` seconds (at most 10 s):
  only sockets due an update are looked up, so the cost follows the messages sent, not
  the number of sockets.

Positions only ever go down for a socket (a customer behind never overtakes); an increase
(an admission undone) is not sent, so a client never sees its number rise. A socket
whose customer left the line without being admitted hears ``left``; one whose slot
ended hears ``slot_ended``.

This is a local fan-out of what Redis holds, not state another replica needs: every
process subscribes for its own sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from server.flash import queue
from server.kit import keys
from server.kit.clock import Clock
from server.kit.config import Settings
from server.kit.fanout import Fanout

log = logging.getLogger(__name__)

MIN_REFRESH_S = 0.2  # a line's sockets are looked at most this often
IDLE_REFRESH_S = 1.0  # and at least this often (updates fall due with time)
POSITION_EVERY_S = 1.0  # a socket hears its new position at most once a second...
NEAR_FRONT = 20  # ...every change this close to the front, and far back less often:
FAR_BACK_PER_S = 200  # position / this many seconds between updates (at most 10 s)
BATCH = 1000
FINAL = frozenset({"closed", "slot_ended", "left", "not_in_queue"})


@dataclass(eq=False)
class Watcher:
    customer: str
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    position: int | None = None
    told_at: float = 0.0
    admitted: bool = False
    early: bool = False  # told it waits in the waiting room (before the start)
    done: bool = False

    def push(self, message: dict[str, Any]) -> None:
        if not self.done:
            self.done = message["type"] in FINAL
            self.inbox.put_nowait(message)

    def due(self, now: float) -> bool:
        """Time to look this socket's customer up again."""
        if self.done:
            return False
        if self.position is None or self.admitted:
            return True  # new, or admitted (the slot's end is news)
        every = min(10.0, max(POSITION_EVERY_S, self.position / FAR_BACK_PER_S))
        return self.position <= NEAR_FRONT or now - self.told_at >= every


class _Line:
    def __init__(self, hub: FlashHub, sale_id: str, store_id: str) -> None:
        self.hub, self.sale_id, self.store_id = hub, sale_id, store_id
        self.watchers: set[Watcher] = set()
        self.dirty = asyncio.Event()
        self.admitted: set[str] = set()  # named by "admitted" messages, not yet looked up
        self.closed: str | None = None
        self.subscribed = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"flash-hub:{sale_id}:{store_id}")

    async def _run(self) -> None:
        channel = keys.flash_channel(self.sale_id, self.store_id)
        try:
            async with self.hub.fanout.subscribe(channel) as messages:
                self.subscribed.set()
                listener = asyncio.create_task(self._listen(messages))
                try:
                    while True:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(IDLE_REFRESH_S):
                                await self.dirty.wait()
                        self.dirty.clear()
                        try:
                            await self.refresh()
                        except Exception:
                            log.exception("flash hub refresh failed")
                        await asyncio.sleep(MIN_REFRESH_S)
                finally:
                    listener.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await listener
        finally:
            self.subscribed.set()

    async def _listen(self, messages: AsyncIterator[str]) -> None:
        async for data in messages:
            try:
                event = json.loads(data)
            except (TypeError, ValueError):
                continue
            if event.get("type") == "closed":
                self.closed = str(event.get("reason") or "closed")
                for w in self.watchers:  # everyone still watching, at once
                    w.push({"type": "closed", "reason": self.closed})
            elif event.get("type") == "admitted":
                self.admitted.update(str(c) for c in event.get("customers", []))
            self.dirty.set()

    async def refresh(self) -> None:
        now = time.monotonic()
        admitted, self.admitted = self.admitted, set()
        watchers = [
            w for w in self.watchers if not w.done and (w.due(now) or w.customer in admitted)
        ]
        if not watchers:
            return
        customers = sorted({w.customer for w in watchers})
        standing: dict[str, queue.Standing] = {}
        view = None
        for i in range(0, len(customers), BATCH):
            view = await queue.positions(
                self.hub.redis,
                sale_id=self.sale_id,
                store_id=self.store_id,
                customers=customers[i : i + BATCH],
            )
            standing |= view.customers
        assert view is not None
        settings = self.hub.settings
        clock = self.hub.clock.timestamp()
        for w in watchers:
            me = standing[w.customer]
            if me.rank is not None:
                position = me.rank + 1
                if w.position is None or position < w.position:
                    w.position, w.told_at = position, now
                    w.push(
                        {
                            "type": "position",
                            "position": position,
                            "estimated_wait_s": queue.wait_estimate(
                                position,
                                avg_slot_s=view.avg_slot_s,
                                max_slots=settings.flash_max_concurrent_checkouts,
                                slot_s=settings.flash_slot_seconds,
                            ),
                            "waiting": view.waiting,
                            "units_left": view.free + view.in_slots if view.open else 0,
                        }
                    )
                else:
                    w.told_at = now  # looked at; not due again before its interval
            elif me.slot_expires is not None:
                if not w.admitted and me.admit_no is not None:  # announced: claim committed
                    w.admitted = True
                    w.push(
                        {
                            "type": "admitted",
                            "admitted_no": me.admit_no,
                            "slot_expires_at": datetime.fromtimestamp(
                                me.slot_expires, tz=UTC
                            ).isoformat(),
                            "slot_seconds_left": max(0, round(me.slot_expires - clock)),
                        }
                    )
            elif me.early and view.open:
                if not w.early:  # a place comes with the start's shuffle
                    w.early = True
                    w.push({"type": "waiting_room", "waiting": view.early})
            elif not view.open:
                w.push({"type": "closed", "reason": view.reason or "closed"})
            elif w.admitted:
                w.push({"type": "slot_ended"})  # bought, expired, failed or given up
            elif w.position is not None:
                w.push({"type": "left"})
            else:
                w.push({"type": "not_in_queue"})

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


class FlashHub:
    """This process's queue watchers, one line (subscription) per sale and store."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        fanout: Fanout,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self.redis, self.fanout = redis, fanout
        self.settings, self.clock = settings, clock
        self.lines: dict[tuple[str, str], _Line] = {}

    @asynccontextmanager
    async def watch(
        self, sale_id: str, store_id: str, customer: str
    ) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """Messages for one customer's socket while the block runs: the first one says
        where they stand now, then each change."""
        line = self.lines.get((sale_id, store_id))
        if line is None:
            line = self.lines[(sale_id, store_id)] = _Line(self, sale_id, store_id)
        watcher = Watcher(customer)
        line.watchers.add(watcher)
        await line.subscribed.wait()  # subscribed first, so no change falls in between
        line.dirty.set()
        try:
            yield watcher.inbox
        finally:
            line.watchers.discard(watcher)
            if not line.watchers and self.lines.get((sale_id, store_id)) is line:
                del self.lines[(sale_id, store_id)]
                await line.close()
