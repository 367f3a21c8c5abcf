"""Queue positions for the websockets: one pub/sub subscription per line per process.

A line's changes are published by ``sales.publish``: "admitted" (naming the customers
whose claims just committed), "moved" (slots ended, so positions went down) and
"closed". Each process keeps one subscription per line it has sockets for and pushes to
each of its sockets what changed for it:

* an admission at once (the message names who; one script call reads their slots);
* the line closing at once, to every socket (sold out, stopped, ended);
* a new position at most once a second near the front, every change among the first
  ``NEAR_FRONT``, far back every ``position / FAR_BACK_PER_S`` seconds (at most 10 s),
  and behind every unit left (``queue.within_reach``: where a poller is told to come
  back in 2 minutes) every ``BEYOND_REACH_EVERY_S``: most of a big crowd's sockets, whose
  pushes were most of its socket messages;
  only sockets due an update are looked up, and only they are visited (``_Due``: a heap
  by the time each falls due), so the cost follows the messages sent, not the number of
  sockets (a scan of every socket on every refresh was ~5 % of a worker's CPU at 20,000
  customers).

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
import heapq
import itertools
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
BEYOND_REACH_EVERY_S = 30.0  # behind every unit left (only failed payments bring a turn)
BATCH = 1000
# sockets told per event-loop turn: each message woken is a send of its socket's task in
# the next turn (~0.1-0.2 ms each), and a refresh or a close telling thousands at once held
# the loop ~100-400 ms, every join and poll of the process waiting behind it
PUSHES_PER_TURN = 50
FINAL = frozenset({"closed", "slot_ended", "left", "not_in_queue"})


@dataclass(eq=False)
class Watcher:
    customer: str
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    position: int | None = None
    told_at: float = 0.0
    admitted: bool = False
    early: bool = False  # told it waits in the waiting room (before the start)
    beyond_reach: bool = False  # at the last look, behind every unit left
    done: bool = False

    def push(self, message: dict[str, Any]) -> None:
        if not self.done:
            self.done = message["type"] in FINAL
            self.inbox.put_nowait(message)

    def due_at(self) -> float | None:
        """When to look this socket's customer up again; None: at every refresh."""
        if self.position is None or self.admitted or self.position <= NEAR_FRONT:
            return None  # new, admitted (the slot's end is news) or near the front
        if self.beyond_reach:
            return self.told_at + BEYOND_REACH_EVERY_S
        return self.told_at + min(10.0, max(POSITION_EVERY_S, self.position / FAR_BACK_PER_S))


class _Due:
    """A line's sockets by when they fall due: those looked up at every refresh, and a
    heap of the others by their time. A socket is filed again after each look (its
    position and ``told_at`` change only then); a heap entry that no longer matches its
    socket's filing is stale and skipped."""

    def __init__(self) -> None:
        self.every: set[Watcher] = set()
        self.later: list[tuple[float, int, Watcher]] = []
        self.filed: dict[Watcher, float] = {}
        self.by_customer: dict[str, set[Watcher]] = {}
        self._order = itertools.count()

    def add(self, w: Watcher) -> None:
        self.every.add(w)
        self.by_customer.setdefault(w.customer, set()).add(w)

    def remove(self, w: Watcher) -> None:
        self.every.discard(w)
        self.filed.pop(w, None)  # its heap entry is now stale
        mine = self.by_customer.get(w.customer)
        if mine is not None:
            mine.discard(w)
            if not mine:
                del self.by_customer[w.customer]

    def take(self, now: float, named: set[str]) -> list[Watcher]:
        """The sockets to look up now: every refresh's, those due by ``now`` and those of
        the ``named`` customers."""
        out = {w for w in self.every if not w.done}
        while self.later and self.later[0][0] <= now:
            at, _, w = heapq.heappop(self.later)
            if self.filed.get(w) == at:
                del self.filed[w]
                if not w.done:
                    out.add(w)
        for customer in named:
            out.update(w for w in self.by_customer.get(customer, ()) if not w.done)
        return list(out)

    def file(self, w: Watcher) -> None:
        """File a socket again after a look (a finished one is dropped)."""
        if w.done:
            self.every.discard(w)
            self.filed.pop(w, None)
            return
        at = w.due_at()
        if at is None:
            self.every.add(w)
            self.filed.pop(w, None)
            return
        self.every.discard(w)
        if self.filed.get(w) != at:
            self.filed[w] = at
            heapq.heappush(self.later, (at, next(self._order), w))


async def _turn_taken(told: int) -> None:
    """Every ``PUSHES_PER_TURN`` sockets told, let the loop turn: the sends just woken
    run, and so do the requests that arrived meanwhile."""
    if told and told % PUSHES_PER_TURN == 0:
        await asyncio.sleep(0)


class _Line:
    def __init__(self, hub: FlashHub, sale_id: str, store_id: str) -> None:
        self.hub, self.sale_id, self.store_id = hub, sale_id, store_id
        self.watchers: set[Watcher] = set()
        self.due = _Due()
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
                # everyone still watching, a turn's share at a time
                for n, w in enumerate(list(self.watchers)):
                    await _turn_taken(n)
                    w.push({"type": "closed", "reason": self.closed})
            elif event.get("type") == "admitted":
                self.admitted.update(str(c) for c in event.get("customers", []))
            self.dirty.set()

    async def refresh(self) -> None:
        now = time.monotonic()
        admitted, self.admitted = self.admitted, set()
        watchers = self.due.take(now, admitted)
        if not watchers:
            return
        try:
            await self._look_up(watchers, now)
        finally:
            for w in watchers:
                if w in self.watchers:
                    self.due.file(w)

    async def _look_up(self, watchers: list[Watcher], now: float) -> None:
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
        slots = settings.flash_max_concurrent_checkouts
        clock = self.hub.clock.timestamp()
        units_left = view.free + view.in_slots if view.open else 0
        for n, w in enumerate(watchers):
            await _turn_taken(n)
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
                                max_slots=slots,
                                slot_s=settings.flash_slot_seconds,
                            ),
                            "waiting": view.waiting,
                            "units_left": units_left,
                        }
                    )
                else:
                    w.told_at = now  # looked at; not due again before its interval
                w.beyond_reach = not queue.within_reach(
                    w.position, units_left=units_left, max_slots=slots
                )
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
        line.due.add(watcher)
        await line.subscribed.wait()  # subscribed first, so no change falls in between
        line.dirty.set()
        try:
            yield watcher.inbox
        finally:
            line.watchers.discard(watcher)
            line.due.remove(watcher)
            if not line.watchers and self.lines.get((sale_id, store_id)) is line:
                del self.lines[(sale_id, store_id)]
                await line.close()
