"""What every live screen shares: the title line, the connection banner, and being told
which parts of the city changed so it redraws only those, in place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, OptionList

from control_tower.context import TowerContext
from control_tower.state import SECTIONS
from control_tower.widgets.alerts import AlertsPanel
from qc_tui.banner import ConnectionBanner

Cell = str | Text


class CityAlertsPanel(AlertsPanel, inherit_bindings=False):
    """The alerts panel without its own ``a`` key: in the control tower ``a`` opens the
    alerts screen and ``k`` (a screen key, so it works whatever has focus) acknowledges."""

    BINDINGS = list(OptionList.BINDINGS)


class KeyedTable(DataTable[Cell]):
    """A table whose rows are keyed; :meth:`set_rows` changes only the cells that changed
    while the rows stay in the same order, and rebuilds the rows (keeping the cursor on its
    row) only when rows come, go or move."""

    def __init__(self, columns: Sequence[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._column_spec = tuple(columns)
        self._rows: dict[str, tuple[Cell, ...]] = {}

    def on_mount(self) -> None:
        for key, label in self._column_spec:
            self.add_column(label, key=key)

    @property
    def row_keys(self) -> list[str]:
        return list(self._rows)

    @property
    def cursor_key(self) -> str | None:
        keys = list(self._rows)
        return keys[self.cursor_row] if 0 <= self.cursor_row < len(keys) else None

    def set_rows(self, rows: Mapping[str, Sequence[Cell]]) -> None:
        incoming = {key: tuple(cells) for key, cells in rows.items()}
        if list(incoming) == list(self._rows):
            for key, cells in incoming.items():
                for (column, _), old, new in zip(
                    self._column_spec, self._rows[key], cells, strict=True
                ):
                    if not _same(old, new):
                        self.update_cell(key, column, new, update_width=True)
        else:
            cursor = self.cursor_key
            self.clear()
            for key, cells in incoming.items():
                self.add_row(*cells, key=key)
            if cursor in incoming:
                self.move_cursor(row=list(incoming).index(cursor), animate=False)
        self._rows = incoming


def _same(a: Cell, b: Cell) -> bool:
    if isinstance(a, Text) and isinstance(b, Text):
        return (a.plain, a.style, a.spans, a.justify) == (b.plain, b.style, b.spans, b.justify)
    return a == b


class LiveScreen(Screen[None]):
    """A screen that shows part of the city. The app calls :meth:`show` with the sections
    that changed after every feed message (on every live screen in the stack, so a screen
    under a dialog keeps up); a screen shows everything once when it mounts."""

    BINDINGS = [Binding("q", "app.quit", "Quit"), Binding("question_mark", "app.help", "Help")]

    _composed = False  # on_mount has run: the widgets are there to update

    def __init__(self, ctx: TowerContext) -> None:
        super().__init__()
        self.ctx = ctx
        self._link = ("connecting", "")  # the feed's state and why, as the app says

    def on_mount(self) -> None:
        self.watch(self.app, "link_state", self._link_state_changed)
        self.watch(self.app, "link_detail", self._link_detail_changed)
        self._composed = True
        self.update_view(SECTIONS)

    def _link_state_changed(self, state: str) -> None:
        self._link = (state, self._link[1])
        self._show_link()

    def _link_detail_changed(self, detail: str) -> None:
        self._link = (self._link[0], detail)
        self._show_link()

    def _show_link(self) -> None:
        banner = self.query_one(ConnectionBanner)
        state, detail = self._link
        if state == "down":
            banner.show_lost(detail or None)
        else:
            banner.hide()

    def show(self, changed: frozenset[str]) -> None:
        """Redraw the parts that depend on ``changed`` (until it is mounted, nothing: it
        shows everything once it is)."""
        if self._composed:
            self.update_view(changed)

    def update_view(self, changed: frozenset[str]) -> None:
        raise NotImplementedError

    # screens with an alerts panel bind ``k`` to this; the panel says which alert
    def action_acknowledge(self) -> None:
        self.query_one(CityAlertsPanel).action_acknowledge()

    def on_alerts_panel_alert_acknowledged(
        self, message: CityAlertsPanel.AlertAcknowledged
    ) -> None:
        self.ctx.actions.acknowledge(message.alert_id)

    def as_of(self) -> str:
        return self.ctx.as_of()
