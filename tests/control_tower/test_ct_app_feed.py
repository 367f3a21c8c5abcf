"""OpsFeed on a real socket: snapshot then changes, down and back up across a server
restart (with a fresh snapshot), final refusals, back-off."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from control_tower.feed import FeedRefused, OpsFeed, backoff_delay
from control_tower.state import FeedPayload
from shared.schemas.ops import OpsChanges, OpsSnapshot
from tests.control_tower.ct_app_fakes import AT, FakeFeedServer, changes, snapshot, store
from tests.helpers import wait_until as until


@dataclass
class Recorder:
    messages: list[FeedPayload] = field(default_factory=list)
    states: list[tuple[bool, str]] = field(default_factory=list)

    def feed(self, url: str) -> OpsFeed:
        return OpsFeed(
            lambda: url,
            on_message=self.messages.append,
            on_state=lambda up, detail: self.states.append((up, detail)),
            base_delay=0.02,
            max_delay=0.1,
        )

    @property
    def snapshots(self) -> list[OpsSnapshot]:
        return [m for m in self.messages if isinstance(m, OpsSnapshot)]


@pytest.fixture
def server() -> Iterator[FakeFeedServer]:
    with FakeFeedServer() as fake:
        yield fake


@contextlib.asynccontextmanager
async def running(feed: OpsFeed) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(feed.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, FeedRefused):
            await task


async def test_snapshot_then_changes(server: FakeFeedServer) -> None:
    rec = Recorder()
    feed = rec.feed(server.url + "?city=BLR&token=t")
    async with running(feed):
        await until(lambda: rec.snapshots, what="snapshot")
        assert rec.states == [(True, "")] and feed.up
        assert server.queries == [{"city": "BLR", "token": "t"}]
        server.send({"type": "ping"})
        server.send(changes(stores=[store("BLR-KOR", risk=0.5)]))
        await until(lambda: len(rec.messages) == 2, what="changes")
        last = rec.messages[-1]
        assert isinstance(last, OpsChanges) and last.stores[0].risk == 0.5


async def test_restart_reports_down_then_up_with_a_fresh_snapshot() -> None:
    current = {"snapshot": snapshot()}
    server = FakeFeedServer(lambda: current["snapshot"])
    server.start()
    rec = Recorder()
    feed = rec.feed(server.url)
    try:
        async with running(feed):
            await until(lambda: feed.up, what="up")
            await asyncio.to_thread(server.stop)
            await until(lambda: not feed.up, what="down")
            assert rec.states[-1][0] is False and rec.states[-1][1]
            # while it is gone, attempts fail and are reported (with why), then paused
            failures = len(rec.states)
            await until(lambda: len(rec.states) >= failures + 2, what="retries")
            later = AT + timedelta(minutes=3)
            current["snapshot"] = snapshot(at=later, alerts=[])
            await asyncio.to_thread(server.start)
            await until(lambda: feed.up, what="up again")
            assert [s.at for s in rec.snapshots] == [AT, later]
            assert feed.connections == 2
    finally:
        await asyncio.to_thread(server.stop)


async def test_changes_after_a_restart_follow_the_new_snapshot() -> None:
    server = FakeFeedServer()
    server.start()
    rec = Recorder()
    feed = rec.feed(server.url)
    try:
        async with running(feed):
            await until(lambda: feed.up)
            server.close_all(1012)  # the server going away for a restart
            await until(lambda: not feed.up, what="down")
            assert "1012" in rec.states[-1][1]
            await until(lambda: feed.up and feed.connections == 2, what="reconnected")
            server.send(changes(stores=[store("BLR-HSR", risk=0.9)]))
            await until(lambda: isinstance(rec.messages[-1], OpsChanges), what="changes")
            kinds = [type(m).__name__ for m in rec.messages]
            assert kinds == ["OpsSnapshot", "OpsSnapshot", "OpsChanges"]
    finally:
        await asyncio.to_thread(server.stop)


@pytest.mark.parametrize("code", [4403, 4401])
async def test_a_refusal_is_final(server: FakeFeedServer, code: int) -> None:
    server.refuse_with = code
    rec = Recorder()
    feed = rec.feed(server.url)
    with pytest.raises(FeedRefused) as refused:
        await asyncio.wait_for(feed.run(), 10)
    assert refused.value.code == code
    assert refused.value.reason == "city DEL is not yours"  # from the error frame
    assert server.connections == 1  # no retry
    assert rec.messages == [] and rec.states == [(False, "refused")]


async def test_an_unreadable_message_reconnects(server: FakeFeedServer) -> None:
    rec = Recorder()
    feed = rec.feed(server.url)
    async with running(feed):
        await until(lambda: feed.up)
        server.send({"type": "changes", "at": "not a time"})
        await until(lambda: feed.connections == 2 and feed.up, what="reconnected")
        assert (False, "unreadable message from the server") in rec.states


async def test_nothing_to_connect_to_is_down_not_fatal() -> None:
    rec = Recorder()
    url = FakeFeedServer().url  # a free port nobody listens on
    feed = rec.feed(url)
    async with running(feed) as task:
        await until(lambda: len(rec.states) >= 3, what="attempts")
        assert not task.done()
        assert all(not up and detail for up, detail in rec.states)


async def test_no_url_waits_without_connecting(server: FakeFeedServer) -> None:
    token: list[str] = []
    asked: list[int] = []

    def url() -> str | None:
        asked.append(1)
        return f"{server.url}?token={token[0]}" if token else None

    feed = OpsFeed(url, on_message=lambda _m: None, base_delay=0.02, max_delay=0.05)
    async with running(feed):
        await until(lambda: len(asked) >= 3, what="asked for the URL again")
        assert server.connections == 0
        token.append("t")
        feed.reconnect_now()
        await until(lambda: feed.up, what="connected once there is a token")


def test_backoff_grows_and_is_capped() -> None:
    delays = [backoff_delay(n, base=0.5, cap=15) for n in range(8)]
    assert delays == [0.5, 1, 2, 4, 8, 15, 15, 15]
    assert backoff_delay(10_000, base=1, cap=30) == 30
