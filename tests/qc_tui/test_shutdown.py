"""A terminal closing while a screen's call is in flight: Textual removes a screen's
widgets before it cancels that screen's workers, so a call answered in between resumes
into a screen without its widgets (a NoMatches that failed the app as it closed)."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from qc_tui.app import ClosingApp


class Lines(Static):
    """The screen's list; its removal answers the call in flight (the worst moment)."""

    def __init__(self, answered: asyncio.Event) -> None:
        super().__init__("lines", id="lines")
        self.answered = answered

    def on_unmount(self) -> None:
        self.answered.set()


class ListScreen(Screen[None]):
    def __init__(self, answered: asyncio.Event, asked: asyncio.Event) -> None:
        super().__init__()
        self.answered, self.asked = answered, asked
        self.shown: list[str] = []

    def compose(self) -> ComposeResult:
        yield Lines(self.answered)

    @work(exclusive=True, group="reload")
    async def reload(self) -> None:
        self.asked.set()
        await self.answered.wait()  # the server's answer
        self.shown.append(str(self.query_one("#lines", Lines).render()))


class Terminal(ClosingApp):
    def __init__(self) -> None:
        super().__init__()
        self.answered, self.asked = asyncio.Event(), asyncio.Event()

    def on_mount(self) -> None:
        self.push_screen(ListScreen(self.answered, self.asked))


async def test_a_call_answered_as_the_app_closes_does_not_fail_it() -> None:
    app = Terminal()
    async with app.run_test() as pilot:
        screen = app.screen
        assert isinstance(screen, ListScreen)
        screen.reload()
        await asyncio.wait_for(app.asked.wait(), 10)
        await pilot.pause()
    assert app.answered.is_set(), "the screen's widgets were removed"
    assert app.return_code in (None, 0)  # run_test re-raises an app's failure: none
    assert screen.shown == []  # it resumed after its widgets went
