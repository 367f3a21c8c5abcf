"""One Redis subscriber per process, fanning its messages out to every socket that listens.

A subscription per websocket used to take a Redis connection per socket: one customer
opening 100 tracking sockets emptied the pool and cut every other socket. Here a process
holds one pub/sub connection (on a cluster, one per shard it listens to); the first
listener of a channel subscribes it (SSUBSCRIBE), the last one to leave unsubscribes it.

``subscribe`` returns only once Redis has confirmed the channel, so a snapshot read after
it misses nothing. Each listener has a bounded inbox: a listener that falls behind by
``inbox_size`` messages is cut off (its iterator ends) instead of growing memory; its
socket closes and the client reconnects to a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 5.0
_CUT_OFF = object()  # put in an inbox that overflowed: its iterator ends


class _Channel:
    def __init__(self) -> None:
        self.inboxes: set[asyncio.Queue[object]] = set()
        self.confirmed = asyncio.Event()


class Fanout:
    def __init__(self, client: aioredis.Redis, *, inbox_size: int = 256) -> None:
        self._client = client
        self._inbox_size = inbox_size
        self._pubsub: Any = None
        self._channels: dict[str, _Channel] = {}
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    @property
    def channels(self) -> int:
        """Channels this process listens to now."""
        return len(self._channels)

    @property
    def listeners(self) -> int:
        return sum(len(c.inboxes) for c in self._channels.values())

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        """The messages of shard channel ``channel`` (their data) while the block runs."""
        inbox: asyncio.Queue[object] = asyncio.Queue(self._inbox_size)
        async with self._lock:
            entry = self._channels.get(channel)
            if entry is None:
                entry = self._channels[channel] = _Channel()
                if self._pubsub is None:
                    self._pubsub = self._client.pubsub()
                entry.inboxes.add(inbox)  # before the first await: _leave always finds it
                try:
                    await self._pubsub.ssubscribe(channel)
                except BaseException:
                    await self._leave_locked(channel, entry, inbox)
                    raise
                if self._reader is None or self._reader.done():
                    self._reader = asyncio.create_task(self._read(), name="fanout-reader")
            else:
                entry.inboxes.add(inbox)
        try:  # a listener cancelled while waiting for the confirmation leaves too
            try:
                async with asyncio.timeout(CONFIRM_TIMEOUT_S):
                    await entry.confirmed.wait()
            except TimeoutError:
                log.warning(
                    "no subscribe confirmation for %s within %.0f s", channel, CONFIRM_TIMEOUT_S
                )
            yield _drain(inbox)
        finally:
            entry.inboxes.discard(inbox)  # at once: a second cancellation may hit the lock
            async with self._lock:
                await self._leave_locked(channel, entry, inbox)

    async def _leave_locked(
        self, channel: str, entry: _Channel, inbox: asyncio.Queue[object]
    ) -> None:
        """Drop a listener (the lock held); the channel's last one unsubscribes it."""
        entry.inboxes.discard(inbox)
        if entry.inboxes or self._channels.get(channel) is not entry:
            return
        del self._channels[channel]
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._pubsub.sunsubscribe(channel)

    async def _read(self) -> None:
        """The process's one reader: each message to every inbox of its channel."""
        reader = asyncio.current_task()
        while True:
            if reader is not None and reader.cancelling():
                # the client can swallow a cancellation inside its read: stop anyway
                raise asyncio.CancelledError
            try:
                message = await self._next()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: the client reconnects and resubscribes
                log.warning("pub/sub read failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if not message:
                continue
            kind, channel = message.get("type"), message.get("channel")
            entry = self._channels.get(str(channel))
            if entry is None:
                continue
            if kind == "ssubscribe":
                entry.confirmed.set()
            elif kind in ("smessage", "message"):
                data = str(message["data"])
                for inbox in list(entry.inboxes):
                    try:
                        inbox.put_nowait(data)
                    except asyncio.QueueFull:  # a listener this far behind is cut off
                        entry.inboxes.discard(inbox)
                        _cut_off(inbox)

    async def _next(self) -> dict[str, Any] | None:
        pubsub = self._pubsub
        if isinstance(pubsub, aioredis.cluster.ClusterPubSub):
            message = await pubsub.get_sharded_message(timeout=1.0)
        else:
            message = await pubsub.get_message(timeout=1.0)
        return message if isinstance(message, dict) else None

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()


def _cut_off(inbox: asyncio.Queue[object]) -> None:
    while True:  # make room for the marker: what is left unread is lost anyway
        try:
            inbox.get_nowait()
        except asyncio.QueueEmpty:
            break
    inbox.put_nowait(_CUT_OFF)


async def _drain(inbox: asyncio.Queue[object]) -> AsyncIterator[str]:
    while True:
        item = await inbox.get()
        if item is _CUT_OFF:
            return
        yield str(item)
