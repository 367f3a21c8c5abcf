"""The pusher, driven tick by tick or by a manual clock: no test waits for a real interval."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from rider_app.gps.buffer import OfflineBuffer
from rider_app.gps.fix import Fix
from rider_app.gps.pusher import FixPusher
from tests.helpers import wait_until
from tests.rider_app.gps_helpers import track
from tests.rider_app.rider_fakes import QueueSource


class Backend:
    """The server as the rider app sees it: a websocket for live fixes, an HTTP batch
    endpoint for backlogs. ``online`` flips both, ``websocket_up`` only the websocket;
    ``fail_batch_after`` cuts a replay short; ``on_send`` runs before each live send."""

    def __init__(self) -> None:
        self.online = True
        self.websocket_up = True
        self.live: list[Fix] = []
        self.batches: list[list[Fix]] = []
        self.fail_batch_after: int | None = None
        self.on_send: Callable[[], None] = lambda: None

    @property
    def received(self) -> list[Fix]:
        return [f for b in self.batches for f in b] + self.live

    async def send(self, fix: Fix) -> None:
        self.on_send()
        if not (self.online and self.websocket_up):
            raise ConnectionRefusedError("websocket down")
        self.live.append(fix)

    async def send_batch(self, fixes: Sequence[Fix]) -> None:
        if not self.online or (
            self.fail_batch_after is not None and len(self.batches) >= self.fail_batch_after
        ):
            raise TimeoutError("batch upload timed out")
        self.batches.append(list(fixes))


def pusher_for(backend: Backend, path: Path, **kwargs: object) -> FixPusher:
    return FixPusher(backend.send, backend.send_batch, OfflineBuffer(path), **kwargs)  # type: ignore[arg-type]


async def test_online_each_tick_sends_the_latest_new_fix(tmp_path: Path) -> None:
    backend = Backend()
    pusher = pusher_for(backend, tmp_path / "buf.jsonl")
    a, b, c = track(3)
    await pusher.tick()
    assert backend.live == [] and pusher.online is None  # no fix yet
    pusher.offer(a)
    await pusher.tick()
    await pusher.tick()  # nothing new: nothing resent
    pusher.offer(b)
    pusher.offer(c)
    await pusher.tick()  # samples the newest only
    assert backend.live == [a, c]
    assert backend.batches == []
    assert pusher.online is True
    assert not (tmp_path / "buf.jsonl").exists()  # online, the disk is not touched


async def test_offline_fixes_go_to_disk_and_a_restarted_app_replays_them_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "buf.jsonl"
    backend = Backend()
    fixes = track(6)
    pusher = pusher_for(backend, path)
    pusher.offer(fixes[0])
    await pusher.tick()
    backend.online = False  # into a basement car park
    for fix in fixes[1:4]:
        pusher.offer(fix)
        await pusher.tick()
    assert pusher.online is False
    assert backend.live == fixes[:1]
    assert len(pusher.buffer) == 3

    # The app is killed and started again, still offline: nothing is lost.
    restarted = pusher_for(backend, path)
    assert restarted.buffer.pending() == fixes[1:4]
    restarted.offer(fixes[4])
    await restarted.tick()
    assert restarted.buffer.pending() == fixes[1:5]

    backend.online = True
    restarted.offer(fixes[5])
    await restarted.tick()  # the new fix queues behind the backlog, all of it goes in order
    assert backend.batches == [fixes[1:6]]
    assert backend.received == fixes[1:6] + fixes[:1]
    assert restarted.online is True
    assert len(restarted.buffer) == 0

    for _ in range(3):
        await restarted.tick()
    assert len(backend.batches) == 1  # exactly once
    assert len(pusher_for(backend, path).buffer) == 0  # and nothing comes back after a restart

    nxt = track(1, start=6)[0]
    restarted.offer(nxt)
    await restarted.tick()
    assert backend.live == [fixes[0], nxt]  # backlog drained: live sends resume


async def test_a_replay_cut_short_keeps_the_rest_for_later(tmp_path: Path) -> None:
    path = tmp_path / "buf.jsonl"
    backend = Backend()
    pusher = pusher_for(backend, path, batch_size=2)
    fixes = track(7)
    backend.online = False
    for fix in fixes[:6]:
        pusher.offer(fix)
        await pusher.tick()
    backend.online = True
    backend.fail_batch_after = 2  # the connection drops again during the replay
    pusher.offer(fixes[6])
    await pusher.tick()
    assert backend.batches == [fixes[0:2], fixes[2:4]]
    assert pusher.online is False
    assert OfflineBuffer(path).pending() == fixes[4:7]

    backend.fail_batch_after = None
    await pusher.flush()  # e.g. the websocket reconnected: drain without waiting for a tick
    assert backend.received == fixes
    assert pusher.online is True


async def test_a_failed_live_send_is_not_retried_in_the_same_tick(tmp_path: Path) -> None:
    backend = Backend()
    pusher = pusher_for(backend, tmp_path / "buf.jsonl")
    (fix,) = track(1)
    backend.websocket_up = False  # HTTP would work
    pusher.offer(fix)
    await pusher.tick()
    assert backend.batches == [] and len(pusher.buffer) == 1
    await pusher.tick()  # the next tick replays it over HTTP
    assert backend.batches == [[fix]]


async def test_transport_specific_offline_errors(tmp_path: Path) -> None:
    class WebsocketClosed(Exception):
        pass

    async def send(_: Fix) -> None:
        raise WebsocketClosed

    backend = Backend()
    pusher = FixPusher(
        send,
        backend.send_batch,
        OfflineBuffer(tmp_path / "buf.jsonl"),
        offline_errors=(OSError, WebsocketClosed),
    )
    pusher.offer(track(1)[0])
    await pusher.tick()
    assert len(pusher.buffer) == 1

    strict = FixPusher(send, backend.send_batch, OfflineBuffer(tmp_path / "other.jsonl"))
    strict.offer(track(1)[0])
    with pytest.raises(WebsocketClosed):  # a bug in send is not mistaken for being offline
        await strict.tick()


async def test_a_failing_disk_loses_the_fix_but_keeps_pushing(tmp_path: Path) -> None:
    backend = Backend()
    (tmp_path / "gps").mkdir()
    buffer = OfflineBuffer(tmp_path / "gps" / "buf.jsonl")
    (tmp_path / "gps").rmdir()  # the storage went away: every append now fails
    pusher = FixPusher(backend.send, backend.send_batch, buffer)
    backend.online = False
    pusher.offer(track(1)[0])
    await pusher.tick()
    assert pusher.lost == 1
    backend.online = True
    later = track(1, start=1)[0]
    pusher.offer(later)
    await pusher.tick()
    assert backend.live == [later]


class ManualClock:
    """``sleep`` blocks until the test calls ``advance``, which moves ``monotonic`` on by the
    requested amount and returns it: each interval is one explicit step."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._requests: asyncio.Queue[tuple[float, asyncio.Future[None]]] = asyncio.Queue()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        done = asyncio.get_running_loop().create_future()
        self._requests.put_nowait((seconds, done))
        await done

    async def advance(self) -> float:
        seconds, done = await asyncio.wait_for(self._requests.get(), 5)
        self.now += seconds
        done.set_result(None)
        return seconds


async def test_run_pushes_every_interval_on_a_fixed_rate(tmp_path: Path) -> None:
    backend = Backend()
    clock = ManualClock()
    pusher = pusher_for(
        backend, tmp_path / "buf.jsonl", monotonic=clock.monotonic, sleep=clock.sleep
    )
    source = QueueSource()
    fixes = track(4)
    running = asyncio.create_task(pusher.run(source))
    try:
        source.put(fixes[0])
        await wait_until(lambda: pusher.latest == fixes[0])
        assert await clock.advance() == 5.0
        await wait_until(lambda: backend.live == fixes[:1])

        source.put(fixes[1])
        source.put(fixes[2])
        await wait_until(lambda: pusher.latest == fixes[2])
        backend.on_send = lambda: setattr(clock, "now", clock.now + 2.0)  # a 2 s upload
        assert await clock.advance() == 5.0
        await wait_until(lambda: backend.live == [fixes[0], fixes[2]])
        assert await clock.advance() == 3.0  # next sample stays on the 5 s grid
        assert backend.live == [fixes[0], fixes[2]]  # no new fix: nothing sent

        backend.on_send = lambda: None
        source.put(fixes[3])
        source.end()
        await wait_until(lambda: pusher.latest == fixes[3])
        assert await clock.advance() == 5.0
        await asyncio.wait_for(running, 5)  # the source ended: one last tick, then run returns
        assert backend.live == [fixes[0], fixes[2], fixes[3]]
        assert not source.closed  # closing stays with whoever opened it
    finally:
        running.cancel()


async def test_run_skips_missed_samples_after_a_long_stall(tmp_path: Path) -> None:
    backend = Backend()
    clock = ManualClock()
    pusher = pusher_for(
        backend, tmp_path / "buf.jsonl", monotonic=clock.monotonic, sleep=clock.sleep
    )
    backend.on_send = lambda: setattr(clock, "now", clock.now + 17.0)  # stuck 3+ intervals
    source = QueueSource()
    running = asyncio.create_task(pusher.run(source))
    try:
        source.put(track(1)[0])
        await wait_until(lambda: pusher.latest is not None)
        assert await clock.advance() == 5.0
        assert await clock.advance() == 5.0  # not 0, 0, 0: no burst of catch-up ticks
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


def test_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        pusher_for(Backend(), tmp_path / "buf.jsonl", interval_s=0)


async def test_run_reports_a_failing_source(tmp_path: Path) -> None:
    class Unplugged(QueueSource):
        async def fixes(self) -> AsyncIterator[Fix]:
            yield track(1)[0]
            raise OSError("device disconnected")

    backend = Backend()
    clock = ManualClock()
    pusher = pusher_for(
        backend, tmp_path / "buf.jsonl", monotonic=clock.monotonic, sleep=clock.sleep
    )
    running = asyncio.create_task(pusher.run(Unplugged()))
    await clock.advance()
    with pytest.raises(OSError, match="disconnected"):
        await asyncio.wait_for(running, 5)
    assert backend.live == track(1)  # the fix it did deliver still went out
