"""Push the rider's latest fix to the server every few seconds, buffering on disk while offline.

Order is kept end to end: while anything is buffered, new fixes queue behind it and go out
through the batch endpoint; live sends resume only once the backlog is drained. That keeps
the server's "last fix" from jumping back and forth while a backlog is replayed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from rider_app.gps.base import GpsSource, Sleep
from rider_app.gps.buffer import DEFAULT_BATCH_SIZE, OfflineBuffer, SendBatch
from rider_app.gps.fix import Fix

log = logging.getLogger(__name__)

Send = Callable[[Fix], Awaitable[None]]


class FixPusher:
    """Samples the latest fix every ``interval_s`` and delivers it with ``send``.

    ``send`` (the websocket) and ``send_batch`` (the HTTP batch endpoint) must raise one of
    ``offline_errors`` when the server cannot be reached; the default covers ConnectionError,
    TimeoutError and other OSErrors. A websocket layer whose "connection closed" error is not
    an OSError should translate it, or pass its class in ``offline_errors``.
    """

    def __init__(
        self,
        send: Send,
        send_batch: SendBatch,
        buffer: OfflineBuffer,
        *,
        interval_s: float = 5.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        offline_errors: tuple[type[Exception], ...] = (OSError,),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self.buffer = buffer
        self.interval_s = interval_s
        self.batch_size = batch_size
        self.offline_errors = offline_errors
        self.online: bool | None = None  # outcome of the last delivery attempt; None before any
        self.lost = 0  # fixes neither sent nor stored (the disk failed too)
        self._send = send
        self._send_batch = send_batch
        self._monotonic = monotonic
        self._sleep = sleep
        self._latest: Fix | None = None
        self._pushed: Fix | None = None
        self._lock = asyncio.Lock()  # tick() and flush() must not replay concurrently

    @property
    def latest(self) -> Fix | None:
        return self._latest

    def offer(self, fix: Fix) -> None:
        """Record a new fix; only the newest one at each tick is pushed."""
        self._latest = fix

    async def tick(self) -> None:
        """One sampling step: deliver the latest fix if it is new, then drain any backlog."""
        async with self._lock:
            fix = self._latest if self._latest is not self._pushed else None
            self._pushed = self._latest
            if fix is not None and not self.buffer:
                try:
                    await self._send(fix)
                except self.offline_errors as exc:
                    log.info("offline (%s): buffering fixes", exc)
                    self.online = False
                    self._keep(fix)
                else:
                    self.online = True
                return  # a failed send is not retried through the batch endpoint this tick
            if fix is not None:
                self._keep(fix)
            await self._replay()

    async def flush(self) -> None:
        """Replay the backlog now, e.g. as soon as the websocket has reconnected."""
        async with self._lock:
            await self._replay()

    async def run(self, source: GpsSource) -> None:
        """Follow ``source`` and tick every ``interval_s`` until cancelled. When the source
        ends, one more tick pushes its last fix and run returns (re-raising a source error).
        Closing ``source`` stays with the caller."""
        follower = asyncio.create_task(self._follow(source))
        try:
            next_at = self._monotonic() + self.interval_s
            while True:
                await self._sleep(max(0.0, next_at - self._monotonic()))
                source_ended = follower.done()  # checked first, so the tick sees its last fix
                await self.tick()
                if source_ended:
                    break
                next_at += self.interval_s
                now = self._monotonic()
                if next_at <= now:  # a slow send or replay: skip missed samples, don't burst
                    next_at = now + self.interval_s
            follower.result()
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

    async def _follow(self, source: GpsSource) -> None:
        async for fix in source.fixes():
            self.offer(fix)

    def _keep(self, fix: Fix) -> None:
        try:
            self.buffer.append(fix)
        except OSError:
            self.lost += 1
            log.exception("could not store a fix in the offline buffer %s", self.buffer.path)

    async def _replay(self) -> None:
        if not self.buffer:
            return
        try:
            sent = await self.buffer.replay(self._send_batch, batch_size=self.batch_size)
        except self.offline_errors as exc:
            log.debug("still offline (%s): %d fixes buffered", exc, len(self.buffer))
            self.online = False
        else:
            log.info("replayed %d buffered fixes", sent)
            self.online = True
