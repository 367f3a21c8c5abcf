"""The picker app without a server (a scripted API): the outbox journal, the wedge detector
wiring, queue polling, camera scanning, login errors and the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import zxingcpp
from textual.widgets import Input, Static

from picker_app.__main__ import camera_source, parse_args
from picker_app.outbox import PendingScan, ScanOutbox
from picker_app.screens.exception import ManualCodeScreen, ShortScreen, SubstituteScreen
from picker_app.screens.login import LoginScreen
from picker_app.screens.queue import QueueScreen
from shared.schemas.picking import PickTaskSummary
from tests.helpers import scanner_types, wait_for, wait_for_screen
from tests.picker_app.picker_fakes import (
    BANANA,
    FakePickingApi,
    fake_app,
    open_task,
    queue_rows,
    scans_sent,
)
from tests.picker_app.picker_live import person_presses

PAPAYA = "SKU00002"  # the fake pick list's first open line (0 of 1 picked)
MILK = "SKU00031"  # the next line (1 of 3 picked)


def test_outbox_journal_replays_pending_scans(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    box = ScanOutbox(path)
    first, second, third = (PendingScan.new(order_id="o", code=c, source="t") for c in "abc")
    for entry in (first, second, third):
        box.add(entry)
    box.add(first)  # the same scan twice is still one scan
    box.done(second.scan_id)
    with path.open("a") as journal:
        journal.write('{"op": "add", "scan_')  # a torn write from a crash
    again = ScanOutbox(path)
    assert [e.scan_id for e in again] == [first.scan_id, third.scan_id]
    assert again.head() == first and len(again.for_order("o")) == 2
    assert len(path.read_text().splitlines()) == 2  # compacted on load


async def test_scans_kept_offline_are_sent_after_a_restart_with_the_same_ids(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "outbox.jsonl"
    api = FakePickingApi()
    app, clock = fake_app(api, outbox_path=journal)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_task(pilot, app)
        api.offline = True
        barcode = next(ln.barcode for ln in screen.pick.lines if ln.sku_id == PAPAYA)
        await scanner_types(pilot, clock, barcode)
        await wait_for(pilot, lambda: not app.online, what="offline")
        assert "kept" in screen.feedback.text
        kept = [e.scan_id for e in app.outbox]
        assert len(kept) == 1
    # the terminal restarts with the server back
    api2 = FakePickingApi()
    app2, _ = fake_app(api2, outbox_path=journal)
    async with app2.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app2.outbox) == 0, what="journal sent")
        assert [scan_id for scan_id, _ in scans_sent(api2)] == kept
    assert ScanOutbox(journal).head() is None


async def test_a_scan_whose_answer_was_lost_is_resent_and_counted_once() -> None:
    api = FakePickingApi()
    app, clock = fake_app(api)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_task(pilot, app)
        api.lose_answers = 1
        await scanner_types(pilot, clock, screen.pick.lines[1].barcode)
        await wait_for(pilot, lambda: screen.pick.lines[1].picked_qty == 1, what="counted")
        ids = [scan_id for scan_id, _ in scans_sent(api)]
        assert len(ids) == 2 and ids[0] == ids[1]
        assert api.pick.lines[1].picked_qty == 1 and screen.feedback.kind == "ok"


async def test_a_short_and_a_substitute_whose_answers_were_lost_are_sent_again() -> None:
    api = FakePickingApi()
    app, clock = fake_app(api)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_task(pilot, app)
        await person_presses(pilot, clock, "down")
        await wait_for(pilot, lambda: getattr(screen.selected(), "sku_id", "") == MILK)
        api.lose_answers = 1
        await person_presses(pilot, clock, "s")
        await wait_for_screen(pilot, ShortScreen, what="short dialog")
        await pilot.press("enter")  # found: the one already scanned
        await wait_for_screen(pilot, SubstituteScreen, what="offers")
        assert cast(SubstituteScreen, app.screen).short.short_qty == 2
        api.lose_answers = 1
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.line(BANANA.sku_id) is not None, what="substitute")
        assert screen.feedback.kind == "ok" and screen.shorts == {MILK: 2}
    # each sent twice, unchanged; the fake (like the server) applied each once
    shorts = api.called("short_pick")
    substitutes = api.called("substitute")
    assert shorts == [(MILK, 1, "missing")] * 2
    assert substitutes == [(MILK, BANANA.sku_id, 2)] * 2
    assert [ln.sku_id for ln in api.pick.lines].count(BANANA.sku_id) == 1


async def test_typing_by_hand_is_not_a_scan_but_runs_the_keys() -> None:
    api = FakePickingApi()
    app, clock = fake_app(api)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_task(pilot, app)
        barcode = screen.pick.lines[1].barcode
        for digit in barcode:  # a person typing the digits, far slower than a scanner
            await person_presses(pilot, clock, digit)
        await person_presses(pilot, clock, "enter")
        await wait_for(pilot, lambda: not screen.wedge.poll(clock()).pending, what="released")
        assert scans_sent(api) == [] and len(app.outbox) == 0
        # a command key gets through the detector to its binding
        await person_presses(pilot, clock, "m")
        await wait_for_screen(pilot, ManualCodeScreen, what="dialog")
        # typed once the field is there (keys from before it was shown are not taken)
        await wait_for(pilot, lambda: app.screen.query_one(Input).has_focus, what="field")
        await pilot.press(*barcode, "enter")  # typed into the dialog's field
        await wait_for(pilot, lambda: screen.pick.lines[1].picked_qty == 1, what="counted")
        assert scans_sent(api)[0][1] == barcode and app.screen is screen


async def test_the_queue_polls_again_only_after_each_poll_has_finished() -> None:
    api = FakePickingApi()
    api.tasks = queue_rows()[:1]
    running, most = 0, 0
    original = api.queue

    async def slow_queue(store_id: str) -> list[PickTaskSummary]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.03)  # a slow server
            return await original(store_id)
        finally:
            running -= 1

    api.queue = slow_queue  # type: ignore[method-assign]
    app, _ = fake_app(api, queue_poll_s=0.01)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, QueueScreen)
        queue = cast(QueueScreen, app.screen)
        await wait_for(pilot, lambda: len(queue.tasks) == 1, what="first poll")
        api.tasks = queue_rows()  # new orders arrive
        await wait_for(pilot, lambda: len(queue.tasks) == 4, what="a later poll")
        await wait_for(pilot, lambda: len(api.called("queue")) >= 6)
        assert most == 1


async def test_camera_scans_are_counted(tmp_path: Path) -> None:
    api = FakePickingApi()
    barcode = api.pick.lines[1].barcode
    symbol = np.asarray(
        zxingcpp.create_barcode(barcode, zxingcpp.BarcodeFormat.EAN13).to_image(scale=4)
    )
    blank = np.full((480, 640, 3), 255, np.uint8)
    frame = blank.copy()
    frame[40 : 40 + symbol.shape[0], 40 : 40 + symbol.shape[1]] = symbol[:, :, None]
    video = tmp_path / "shelf.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (640, 480))
    for picture in [blank] * 3 + [frame] * 5 + [blank] * 3:
        writer.write(picture)
    writer.release()
    app, _ = fake_app(api, camera=video)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_task(pilot, app)
        await wait_for(pilot, lambda: screen.pick.lines[1].picked_qty == 1, what="camera scan")
        assert scans_sent(api)[0][1] == barcode  # once: the code stayed in view
        camera = screen.query_one("#camera", Static)
        await wait_for(pilot, lambda: "ended" in str(camera.content), what="video ended")
        assert len(scans_sent(api)) == 1


async def test_a_camera_that_cannot_open_leaves_the_scanner_working(tmp_path: Path) -> None:
    api = FakePickingApi()
    app, clock = fake_app(api, camera=tmp_path / "missing.avi")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_task(pilot, app)
        camera = screen.query_one("#camera", Static)
        await wait_for(pilot, lambda: "camera off" in str(camera.content), what="camera off")
        await scanner_types(pilot, clock, screen.pick.lines[1].barcode)
        await wait_for(pilot, lambda: screen.pick.lines[1].picked_qty == 1, what="wedge scan")


async def test_login_refusals_are_shown() -> None:
    api = FakePickingApi(logged_in=False)
    app, _ = fake_app(api, store="BLR-IND")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, LoginScreen)
        error = app.screen.query_one("#login-error", Static)
        await pilot.press(*"picker.kor.1", "enter", *"0000", "enter")
        await wait_for(pilot, lambda: "Wrong picker or PIN" in str(error.content))
        assert app.screen.query_one("#pin", Input).value == ""
        await pilot.press(*"1234", "enter")
        await wait_for(pilot, lambda: "works at BLR-KOR" in str(error.content))
        app.screen.query_one("#store", Input).value = ""  # the picker's own store
        await pilot.press("enter")  # the PIN is still there
        await wait_for_screen(pilot, QueueScreen, what="queue")
        assert app.store_id == "BLR-KOR"


def test_command_line() -> None:
    args = parse_args(["--server", "http://qc:8000", "--store", "blr-kor", "--camera", "0"])
    assert (args.server, args.store, args.camera) == ("http://qc:8000", "blr-kor", 0)
    assert camera_source("/dev/video2") == "/dev/video2"
    assert parse_args([]).server == "http://127.0.0.1:8000" and parse_args([]).camera is None
