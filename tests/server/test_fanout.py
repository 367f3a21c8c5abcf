"""The process's one subscriber cuts off a listener that falls too far behind, and only it.

Real Redis/Valkey pub/sub and a real socket: a tracking client that stops reading is cut
off (close 1013, try again) once its inbox overflows, without holding up a listener of the
same channel that keeps up; it reconnects to a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from server.kit import keys
from server.kit import redis as qredis
from server.kit.fanout import Fanout
from server.kit.redis import publish
from server.kit.sockets import CLOSE_TRY_AGAIN, SessionEnds
from tests.conftest import LiveServer, Services
from tests.helpers import login
from tests.picker_app.picker_live import CUSTOMER, in_stock_skus, place_order


async def test_a_listener_that_falls_behind_is_cut_off_and_the_others_keep_everything(
    stack,
) -> None:
    fanout = Fanout(stack.redis, inbox_size=8)
    channel = keys.order_channel(str(uuid.uuid4()))
    try:
        async with (
            fanout.subscribe(channel) as slow,
            fanout.subscribe(channel) as fast,
        ):
            got: list[str] = []
            for n in range(20):  # the slow one reads nothing meanwhile
                await publish(stack.redis, channel, str(n))
                async with asyncio.timeout(10):
                    got.append(await anext(fast))
            assert got == [str(n) for n in range(20)]
            assert [m async for m in slow] == []  # cut off: what it had not read is dropped
            assert fanout.listeners == 1  # the slow one no longer gets messages
            await publish(stack.redis, channel, "after")
            async with asyncio.timeout(10):
                assert await anext(fast) == "after"
    finally:
        await fanout.aclose()
    assert fanout.channels == 0


class _Relay:
    """A TCP relay to Redis whose client-to-server direction can be held: what the client
    sends meanwhile waits in the socket buffers, so Redis confirms nothing until released."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gated: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if gated:
                    await self.open.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @asynccontextmanager
    async def to(self, host: str, port: int) -> AsyncIterator[int]:
        tasks: set[asyncio.Task[None]] = set()

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(host, port)
            for pipe in (self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False)):
                task = asyncio.create_task(pipe)
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        server = await asyncio.start_server(client, "127.0.0.1", 0)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_listener_cancelled_before_redis_confirms_leaves_nothing_behind(stack) -> None:
    """A socket closed while its subscription waits for Redis's confirmation must not stay
    registered: its inbox would be filled (and kept) for as long as the process runs."""
    url = urlsplit(stack.redis_url)
    relay = _Relay()
    async with relay.to(url.hostname or "127.0.0.1", url.port or 6379) as port:
        netloc = url.netloc.replace(f"{url.hostname}:{url.port}", f"127.0.0.1:{port}")
        client = qredis.create_redis(urlunsplit(url._replace(netloc=netloc)))
        fanout = Fanout(client)
        try:
            async with fanout.subscribe(keys.order_channel(str(uuid.uuid4()))):
                pass  # connected and confirmed once: the pub/sub connection is up
            relay.open.clear()  # from here Redis hears nothing until released
            entered = asyncio.Event()

            async def listen() -> None:
                async with fanout.subscribe(keys.order_channel(str(uuid.uuid4()))):
                    entered.set()

            listener = asyncio.create_task(listen())
            async with asyncio.timeout(10):
                while fanout.listeners == 0:  # registered, waiting for the confirmation
                    await asyncio.sleep(0.01)
            assert not entered.is_set()
            listener.cancel()
            relay.open.set()
            with pytest.raises(asyncio.CancelledError):
                await listener
            assert (fanout.listeners, fanout.channels) == (0, 0)
        finally:
            await fanout.aclose()
            await client.aclose()


async def test_a_tracking_socket_that_stops_reading_is_closed_with_try_again(
    city: Services, live_server: LiveServer, stack
) -> None:
    order_id = await place_order(live_server.url, {in_stock_skus(city.database_url, 1)[0]: 1})
    async with live_server.client() as client:
        headers = await login(client, *CUSTOMER)
    url = (
        live_server.url.replace("http", "ws", 1)
        + f"/ws/orders/{order_id}?token={headers['Authorization'][7:]}"
    )
    channel = keys.order_channel(order_id)
    # a small receive buffer and max_queue=1: the client stops reading at once, so the
    # server's sends block after a few kilobytes and the socket's inbox (256) overflows
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: no autotuning
    sock.connect(("127.0.0.1", int(live_server.url.rsplit(":", 1)[1])))
    # (no compression: the padding would shrink to nothing)
    async with websockets.connect(
        url, sock=sock, max_queue=1, max_size=None, compression=None
    ) as ws:
        snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot"
        pad = "x" * 16_384
        published = 1_000
        for n in range(1, published + 1):
            event = {"topic": "order.status", "payload": {"sequence": 10**6 + n, "pad": pad}}
            await publish(stack.redis, channel, json.dumps(event))
        received = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                async with asyncio.timeout(30):  # not cut off: every message comes, then none
                    await ws.recv()
                received += 1
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TRY_AGAIN
        assert received < published  # what it fell behind on was dropped, not buffered
    # the client's reconnect starts again from a snapshot
    async with websockets.connect(url) as again:
        assert json.loads(await again.recv())["type"] == "snapshot"


async def test_a_sessions_listener_cut_off_ends_every_socket_it_watched(stack) -> None:
    """``kit.sockets.SessionEnds`` fails closed: once its listener stops hearing (here its
    inbox overflows), every socket it watched is told to end (it may have missed its
    user's logout), and the next socket starts a listener again."""
    fanout = Fanout(stack.redis, inbox_size=1)
    ends = SessionEnds(fanout)
    ended = asyncio.Event()
    try:
        async with ends.watching(uuid.uuid4(), ended.set):
            deadline = time.monotonic() + 10
            while not ended.is_set():  # others' logouts, faster than the listener reads
                assert time.monotonic() < deadline, "the watcher was never told"
                pipe = stack.redis.pipeline(transaction=False)
                for _ in range(50):
                    pipe.spublish(keys.sessions_ended(), str(uuid.uuid4()))
                await pipe.execute()
                await asyncio.sleep(0)  # a turn for the reader and the listener
            assert ends.listening is None
        told = asyncio.Event()
        async with ends.watching(user := uuid.uuid4(), told.set):
            assert ends.listening is not None and ends.listening.done()
            await publish(stack.redis, keys.sessions_ended(), str(user))
            async with asyncio.timeout(10):
                await told.wait()  # the new listener hears this user's end
    finally:
        await fanout.aclose()


async def test_closing_the_sessions_listener_ends_its_task_and_tells_its_watchers(stack) -> None:
    """The app's shutdown stops ``SessionEnds``' listener (else it stays pending inside its
    subscription and is destroyed with the event loop); the sockets it watched are told."""
    fanout = Fanout(stack.redis)
    ends = SessionEnds(fanout)
    told = asyncio.Event()
    try:
        async with ends.watching(uuid.uuid4(), told.set):
            assert ends.task is not None and not ends.task.done()
            await ends.aclose()
            assert ends.task.done() and told.is_set()
            assert ends.listening is None  # the next socket would start a listener again
    finally:
        await fanout.aclose()
    await ends.aclose()  # again, or with no listener: nothing to do
