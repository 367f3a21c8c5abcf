"""The reconnecting socket the picker and rider apps share: token in the URL, every JSON
object to the callback, up/down to the banner, back again after a drop; pauses never longer
than the schedule says."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from qc_tui.push import PushSocket, socket_url
from tests.helpers import wait_until


def test_the_socket_url_carries_the_token() -> None:
    url = socket_url("https://qc.example/api", "/ws/picker", "a b")
    assert url == "wss://qc.example/api/ws/picker?token=a%20b"


def test_pauses_follow_the_schedule_shortened_by_at_most_the_jitter() -> None:
    link = PushSocket("http://x", "/ws/x", lambda: None, on_event=print, retry_delays=(1.0, 4.0))
    for attempt, top in ((0, 1.0), (1, 4.0), (7, 4.0)):
        delays = [link.retry_delay(attempt) for _ in range(200)]
        assert all(top * (1 - link.jitter) <= d <= top for d in delays)
        assert len(set(delays)) > 1  # spread: terminals do not knock in step
    steady = PushSocket("http://x", "/ws/x", lambda: None, on_event=print, jitter=0)
    assert steady.retry_delay(9) == steady.retry_delays[-1]


async def test_reconnects_after_a_drop_and_reports_up_and_down() -> None:
    paths: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        paths.append(ws.request.path if ws.request else "")
        await ws.send("not json")  # skipped
        await ws.send(json.dumps(["not", "an", "object"]))  # skipped
        await ws.send(json.dumps({"type": "hello", "n": len(paths)}))
        if len(paths) == 1:
            await ws.close()  # the first connection drops; the link comes back
        else:
            await ws.wait_closed()

    events: list[dict[str, Any]] = []
    states: list[bool] = []
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        link = PushSocket(
            f"http://127.0.0.1:{port}",
            "/ws/test",
            lambda: "t0k",
            on_event=events.append,
            on_state=states.append,
            retry_delays=(0.01,),
        )
        task = asyncio.create_task(link.run())
        try:
            await wait_until(lambda: len(events) == 2 and link.up, what="second connection up")
            assert states == [True, False, True]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert paths == ["/ws/test?token=t0k"] * 2
    assert events == [{"type": "hello", "n": 1}, {"type": "hello", "n": 2}]
    assert link.received == 2


async def test_waits_without_a_token_and_connects_once_there_is_one() -> None:
    token: list[str] = []
    asked: list[int] = []
    connected = asyncio.Event()

    def current() -> str | None:
        asked.append(1)
        return token[0] if token else None

    async def handler(ws: ServerConnection) -> None:
        connected.set()
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        link = PushSocket(
            f"http://127.0.0.1:{port}",
            "/ws/test",
            current,
            on_event=print,
            retry_delays=(60.0,),
        )
        task = asyncio.create_task(link.run())
        try:
            # asked once, found none: it is in its pause (nothing awaits between the two)
            await wait_until(lambda: asked, what="token asked")
            assert not connected.is_set()
            token.append("t0k")
            link.reconnect_now()  # the pause ends at once
            await wait_until(lambda: link.up, what="connected")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
