"""The city's stores, riskiest first, updated cell by cell as data arrives."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from control_tower.widgets.models import DEFAULT_SLA_S, StoreRow
from control_tower.widgets.style import LEVEL_COLOUR, Level, format_age, risk_level, sla_level

Cell = str | Text

# (column key, header); the "store" column holds the bare store id, which sorting uses.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("store", "Store"),
    ("name", "Name"),
    ("risk", "Risk"),
    ("queue", "Queue"),
    ("road", "Road"),
    ("oldest", "Oldest"),
    ("breach", "Breach"),
    ("pickers", "Pickers"),
    ("riders", "Riders i/b"),
    ("stock", "Low/Sold out"),
    ("state", "State"),
)


def _num(value: int, style: str = "") -> Text:
    return Text(str(value), style=style, justify="right")


def store_cells(store: StoreRow, sla_s: float = DEFAULT_SLA_S) -> dict[str, Cell]:
    """The table cells for one store, by column key."""
    risk_colour = LEVEL_COLOUR[risk_level(store.risk)]
    breach_style = f"bold {LEVEL_COLOUR[Level.CRIT]}" if store.predicted_breaches else "dim"
    # sold out today: what customers wanted and the store ran out of (never stocked or long
    # empty SKUs are the store screen's, apart)
    stock_style = LEVEL_COLOUR[Level.CRIT] if store.sold_out_today else ""
    riders_style = LEVEL_COLOUR[Level.WARN] if store.idle_riders == 0 else ""
    return {
        "store": store.store_id,
        "name": Text(store.name, overflow="ellipsis", no_wrap=True),
        "risk": Text(f"{store.risk:.0%}", style=f"bold {risk_colour}", justify="right"),
        "queue": _num(store.queued),
        "road": _num(store.on_road),
        "oldest": Text(
            format_age(store.oldest_wait_s),
            style=LEVEL_COLOUR[sla_level(store.oldest_wait_s, sla_s)],
            justify="right",
        ),
        "breach": _num(store.predicted_breaches, breach_style),
        "pickers": _num(store.active_pickers),
        "riders": Text(f"{store.idle_riders}/{store.busy_riders}", riders_style, justify="right"),
        "stock": Text(f"{store.low_stock}/{store.sold_out_today}", stock_style, justify="right"),
        "state": state_text(store),
    }


def state_text(store: StoreRow) -> Text:
    """Paused by a manager, closed by its hours (as short as PAUSED: the table is tight;
    the store screen says when it opens), or live."""
    if store.paused:
        return Text("PAUSED", style=f"bold {LEVEL_COLOUR[Level.WARN]}")
    if store.opens_at is not None:
        return Text("closed", style="dim")
    return Text("live", style=LEVEL_COLOUR[Level.OK])


def _same(a: Cell, b: Cell) -> bool:
    # Text.__eq__ ignores the base style, so a colour-only change would be missed.
    if isinstance(a, Text) and isinstance(b, Text):
        return (a.plain, a.style, a.spans, a.justify) == (b.plain, b.style, b.spans, b.justify)
    return a == b


class StoresTable(DataTable[Cell]):
    """Stores sorted by risk (descending), one row per store keyed by ``store_id``.

    :meth:`update_stores` changes only the cells whose content changed, adds and removes
    rows by key, re-sorts, and keeps the cursor on the store it was on. Enter posts
    :class:`StoresTable.StoreSelected`.
    """

    DEFAULT_CSS = """
    StoresTable {
        height: 1fr;
    }
    """

    BINDINGS = [Binding("enter", "select_cursor", "Open store")]

    @dataclass
    class StoreSelected(Message):
        """The user chose a store (Enter on its row, or a click)."""

        store_id: str

    def __init__(
        self,
        *,
        sla_s: float = DEFAULT_SLA_S,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(
            cursor_type="row",
            zebra_stripes=True,
            # Keep the risk colours readable on the highlighted row.
            cursor_foreground_priority="renderable",
            name=name,
            id=id,
            classes=classes,
        )
        self.sla_s = sla_s
        self._stores: dict[str, StoreRow] = {}
        self._cells: dict[str, dict[str, Cell]] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        if self._stores:
            self.update_stores(self._stores.values())

    @property
    def stores(self) -> dict[str, StoreRow]:
        return dict(self._stores)

    @property
    def store_ids(self) -> list[str]:
        """Store ids in display order."""
        return [
            str(self.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value)
            for row in range(self.row_count)
        ]

    def update_stores(self, stores: Iterable[StoreRow]) -> None:
        """Show exactly these stores; call with the full list on every update."""
        incoming = {store.store_id: store for store in stores}
        self._stores = incoming
        if not self.columns:
            return  # not mounted yet: on_mount adds the columns, then these rows
        cursor_store = self._cursor_store()
        for gone in self._cells.keys() - incoming.keys():
            self.remove_row(gone)
            del self._cells[gone]
        for store_id, store in incoming.items():
            cells = store_cells(store, self.sla_s)
            previous = self._cells.get(store_id)
            if previous is None:
                self.add_row(*(cells[key] for key, _ in COLUMNS), key=store_id)
            else:
                for key, value in cells.items():
                    if not _same(previous[key], value):
                        self.update_cell(store_id, key, value, update_width=True)
            self._cells[store_id] = cells
        self.sort("store", key=self._rank)
        if cursor_store in incoming and self.get_row_index(cursor_store) != self.cursor_row:
            self.move_cursor(row=self.get_row_index(cursor_store))

    def _rank(self, store_id: str) -> tuple[float, str]:
        return (-self._stores[store_id].risk, store_id)

    def _cursor_store(self) -> str | None:
        if not self.row_count:
            return None
        row_key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        return row_key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # StoreSelected is this widget's public message; the raw DataTable one stays inside.
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.StoreSelected(event.row_key.value))
