"""Out of coverage: fixes taken while the server is unreachable are kept on disk, the
banner says so, and they are replayed in order when the server answers again, or by the
next app started on the same handheld after a crash."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from textual.widgets import Static

from qc_tui.banner import ConnectionBanner
from rider_app.app import RiderApp
from rider_app.gps.fix import Fix
from rider_app.screens.shift import ShiftScreen
from rider_app.tracking import buffer_path
from tests.helpers import screen_ready, wait_for
from tests.rider_app.rider_fakes import NOW, RIDER, FakeRiderApi, QueueSource


def fixes(n: int) -> list[Fix]:
    return [
        Fix(12.9352 + i * 1e-4, 77.6245, NOW + timedelta(seconds=5 * i), 6.0, source="test")
        for i in range(n)
    ]


def kept(app: RiderApp, n: int) -> Callable[[], bool]:
    """Whether ``app`` keeps ``n`` fixes for later."""
    return lambda: app.buffered_fixes == n


def offline_app(api: FakeRiderApi, gps: QueueSource, tmp_path: Path) -> RiderApp:
    return RiderApp(
        client=api,
        gps=gps,
        buffer_dir=tmp_path,
        socket=False,
        push_interval_s=0.02,
        trip_poll_s=0.05,
        retry_delays=(0.05,),
    )


async def test_fixes_kept_while_offline_are_replayed_in_order(tmp_path: Path) -> None:
    api, gps = FakeRiderApi(on_duty=True), QueueSource()
    app = offline_app(api, gps, tmp_path)
    track = fixes(4)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen_ready(app, ShiftScreen) and app.on_duty)
        gps.put(track[0])
        await wait_for(pilot, lambda: len(api.stored) == 1, what="first fix stored")

        api.offline = True
        for n, fix in enumerate(track[1:], start=1):
            gps.put(fix)
            await wait_for(pilot, kept(app, n), what=f"{n} kept")
        assert not app.online
        banner = app.screen.query_one(ConnectionBanner)
        assert banner.has_class("-lost")
        assert "3 GPS fixes kept" in str(banner.content)
        journal = buffer_path(tmp_path, RIDER.login)
        assert len(journal.read_text().splitlines()) == 3  # on disk, not only in memory
        gps_line = str(app.screen.query_one("#gps", Static).content)
        assert "3 kept offline" in gps_line

        api.offline = False
        await wait_for(pilot, lambda: app.online and app.buffered_fixes == 0, what="replayed")
        assert [f.at for f in api.stored] == [f.at for f in track]
        sent = [fix.at for batch in api.batches for fix in batch]
        assert sent == [f.at for f in track]  # in order, each once
        assert not banner.has_class("-lost")


async def test_fixes_kept_before_a_crash_are_sent_by_the_next_run(tmp_path: Path) -> None:
    api, gps = FakeRiderApi(on_duty=True), QueueSource()
    track = fixes(4)
    first = offline_app(api, gps, tmp_path)
    async with first.run_test() as pilot:
        await wait_for(pilot, lambda: first.rider is not None and first.on_duty, what="on duty")
        api.offline = True
        for n, fix in enumerate(track[:3], start=1):
            gps.put(fix)
            await wait_for(pilot, kept(first, n), what=f"{n} kept")
    assert api.stored == []

    # restarted still out of coverage: it remembers the shift and keeps recording
    gps = QueueSource()
    second = offline_app(api, gps, tmp_path)
    async with second.run_test() as pilot:
        await wait_for(pilot, lambda: second.buffered_fixes == 3, what="buffer reloaded")
        assert second.on_duty and not second.online
        gps.put(track[3])
        await wait_for(pilot, lambda: second.buffered_fixes == 4, what="one more kept")
        api.offline = False
        await wait_for(pilot, lambda: len(api.stored) == 4, what="replayed after restart")
        assert [f.at for f in api.stored] == [f.at for f in track]
        await wait_for(pilot, lambda: second.buffered_fixes == 0)


async def test_a_fix_the_server_refuses_for_good_does_not_take_the_batch_with_it(
    tmp_path: Path,
) -> None:
    api, gps = FakeRiderApi(on_duty=True), QueueSource()
    api.offline = True
    stale = Fix(12.93, 77.62, NOW - timedelta(days=2), source="test")  # a wrong receiver clock
    track = [stale, *fixes(2)]
    app = offline_app(api, gps, tmp_path)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.rider is None and screen_ready(app, ShiftScreen))
        app.on_duty = True
        for n, fix in enumerate(track, start=1):
            gps.put(fix)
            await wait_for(pilot, kept(app, n), what=f"{n} kept")
        api.offline = False
        await wait_for(pilot, lambda: app.buffered_fixes == 0, what="replayed")
        assert [f.at for f in api.stored] == [f.at for f in track[1:]]
        assert app.dropped_fixes == 1
