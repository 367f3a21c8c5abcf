"""Every scan result is seen from the corner of an eye: the whole screen flashes green for
a counted item and red (with the bell) for a refused one, then returns to normal."""

from __future__ import annotations

from picker_app.widgets.feedback import FLASH_S
from tests.helpers import scanner_types, wait_for
from tests.picker_app.picker_fakes import FakePickingApi, fake_app, open_task
from tests.picker_app.picker_live import Bells


async def test_the_screen_flashes_the_scan_result() -> None:
    api = FakePickingApi()
    app, clock = fake_app(api)
    bells = Bells(app)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_task(pilot, app)
        assert screen.feedback.flashing is None
        await scanner_types(pilot, clock, screen.pick.lines[1].barcode)
        await wait_for(pilot, lambda: screen.feedback.kind == "ok", what="counted")
        assert screen.feedback.flashed == 1 and screen.feedback.last_flash == "ok"
        assert bells.count == 0
        await wait_for(pilot, lambda: screen.feedback.flashing is None, what="flash over")

        await scanner_types(pilot, clock, "0000000000000")  # not in this order
        assert screen.feedback.flashed == 2 and screen.feedback.last_flash == "error"
        assert bells.count == 1 and screen.feedback.kind == "error"
        await wait_for(
            pilot, lambda: screen.feedback.flashing is None, timeout=FLASH_S + 10, what="over"
        )
