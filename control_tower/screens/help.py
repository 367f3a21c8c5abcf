"""Help (?): the keys of the tower, and, in a demo, the logins and commands for people who
want to join it as a picker or a rider (printed before the tower opens, so seen only after
quitting it otherwise)."""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

KEYS = (
    ("Overview", "Enter: open a store · w: where the minutes go · m: map · a: alerts"),
    ("", "p: pause/resume the store · r: its radius · s: stop a flash sale · k: ack an alert"),
    ("Store", "g: reassign an order · x: cancel an order · t: move a rider to another store"),
    ("", "Esc: back"),
    ("Map", "arrows pan · + and - zoom · 0 resets"),
    ("Everywhere", "?: this help · q: quit"),
)


def help_text(notes: Mapping[str, str]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for where, keys in KEYS:
        table.add_row(where, keys)
    if notes:
        table.add_row("", "")
        table.add_row(Text("Join the demo", style="bold reverse"), "")
        for what, value in notes.items():
            table.add_row(what, value)
    return table


class HelpScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,question_mark", "app.pop_screen", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, notes: Mapping[str, str]) -> None:
        super().__init__()
        self.notes = dict(notes)

    def compose(self) -> ComposeResult:
        yield Static("Help · keys and logins", classes="title", markup=False)
        with VerticalScroll():
            yield Static(help_text(self.notes), id="help")
        yield Footer()
