"""The process's one subscriber cuts off a listener that falls too far behind, and only it.

Real Redis/Valkey pub/sub and a real socket: a tracking client that stops reading is cut
off (close 1013, try again) once its inbox overflows, without holding up a listener of the
same channel that keeps up; it reconnects to a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from server.kit import keys
from server.kit.fanout import Fanout
from server.kit.redis import publish
from server.kit.sockets import CLOSE_TRY_AGAIN
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


async def test_a_tracking_socket_that_stops_reading_is_closed_with_try_again(
    city: Services, live_server: LiveServer, stack
) -> None:
    order_id = await place_order(live_server.url, {in_stock_skus(city.database_url, 1)[0]: 1})
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
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
