"""What the picker reads and the keys the footer offers: every screen with a footer says how
to quit (the dialogs say Esc), and the pick list shows the whole barcode of the item."""

from __future__ import annotations

from textual.widgets import Static

from picker_app.screens.login import LoginScreen
from picker_app.screens.pack import PackScreen
from picker_app.screens.queue import QueueScreen
from tests.helpers import footer_keys, wait_for, wait_for_screen
from tests.picker_app.picker_fakes import FakePickingApi, fake_app, open_task
from tests.picker_app.picker_live import person_presses


async def test_every_screen_says_how_to_quit() -> None:
    api = FakePickingApi(logged_in=False)
    app, clock = fake_app(api)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_screen(pilot, LoginScreen, what="login")
        assert footer_keys(app)["ctrl+q"] == "Quit"
        await pilot.press(*"picker.kor.1", "enter", *"1234", "enter")
        await wait_for_screen(pilot, QueueScreen, what="queue")
        assert footer_keys(app)["ctrl+q"] == "Quit"
        pick = await open_task(pilot, app)
        assert footer_keys(app)["ctrl+q"] == "Quit"
        for ln in api.pick.lines:  # everything picked: P packs
            ln.picked_qty = ln.quantity
        await person_presses(pilot, clock, "r")
        await wait_for(pilot, lambda: "Press P" in str(pick.query_one("#next-item").render()))
        await person_presses(pilot, clock, "p")
        await wait_for_screen(pilot, PackScreen, what="pack")
        assert footer_keys(app)["ctrl+q"] == "Quit"


async def test_the_pick_list_shows_the_whole_barcode() -> None:
    api = FakePickingApi()
    app, _ = fake_app(api)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_task(pilot, app)
        papaya = api.pick.lines[1]  # the first line still to pick
        panel = screen.query_one("#next-item", Static)
        await wait_for(pilot, lambda: papaya.name in str(panel.render()), what="next item")
        assert f"barcode {papaya.barcode}" in str(panel.render())
        assert len(papaya.barcode) == 13
