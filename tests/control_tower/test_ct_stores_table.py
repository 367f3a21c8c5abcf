"""StoresTable: sorted by risk, updated in place, Enter posts StoreSelected."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from control_tower.widgets.models import StoreRow
from control_tower.widgets.stores_table import StoresTable
from control_tower.widgets.style import LEVEL_COLOUR, Level
from tests.control_tower.ct_data import stores


class TableApp(App[None]):
    def __init__(self, initial: list[StoreRow]) -> None:
        super().__init__()
        self.initial = initial
        self.selected: list[str] = []
        self.raw_selections = 0

    def compose(self) -> ComposeResult:
        table = StoresTable()
        table.update_stores(self.initial)  # before mount: shown once mounted
        yield table

    def on_stores_table_store_selected(self, message: StoresTable.StoreSelected) -> None:
        self.selected.append(message.store_id)

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        self.raw_selections += 1


def changed(rows: list[StoreRow], by_id: dict[str, dict[str, Any]]) -> list[StoreRow]:
    return [replace(r, **by_id.get(r.store_id, {})) for r in rows]


def cell(table: StoresTable, store_id: str, column: str) -> Text:
    value = table.get_cell(store_id, column)
    assert isinstance(value, Text)
    return value


async def test_rows_are_sorted_by_risk_descending() -> None:
    app = TableApp(stores())
    async with app.run_test() as pilot:
        await pilot.pause()
        table = app.query_one(StoresTable)
        assert table.store_ids == ["BLR-KOR", "BLR-HSR", "BLR-JPN", "BLR-IND", "BLR-WHF"]
        risk = cell(table, "BLR-KOR", "risk")
        assert risk.plain == "82%"
        assert risk.style == f"bold {LEVEL_COLOUR[Level.CRIT]}"
        assert cell(table, "BLR-KOR", "queue").plain == "12"
        assert cell(table, "BLR-WHF", "state").plain == "PAUSED"


async def test_update_resorts_in_place() -> None:
    app = TableApp(stores())
    async with app.run_test() as pilot:
        await pilot.pause()
        table = app.query_one(StoresTable)
        rows_before = dict(table.rows)
        table.update_stores(
            changed(
                stores(),
                {
                    "BLR-IND": {"risk": 0.9, "orders_by_state": {"PICKING": 9}},
                    "BLR-KOR": {"risk": 0.3},
                },
            )
        )
        await pilot.pause()
        assert table.row_count == 5
        assert table.store_ids == ["BLR-IND", "BLR-HSR", "BLR-JPN", "BLR-KOR", "BLR-WHF"]
        # The very same Row objects: nothing was removed and re-added.
        assert all(table.rows[key] is row for key, row in rows_before.items())
        assert cell(table, "BLR-IND", "risk").plain == "90%"
        assert cell(table, "BLR-IND", "risk").style == f"bold {LEVEL_COLOUR[Level.CRIT]}"
        assert cell(table, "BLR-IND", "queue").plain == "9"
        assert cell(table, "BLR-KOR", "risk").style == f"bold {LEVEL_COLOUR[Level.OK]}"


async def test_colour_only_change_is_applied() -> None:
    app = TableApp(stores())
    async with app.run_test() as pilot:
        await pilot.pause()
        table = app.query_one(StoresTable)
        # 0.699 and 0.701 both read "70%" but sit either side of the red threshold.
        table.update_stores(changed(stores(), {"BLR-HSR": {"risk": 0.699}}))
        table.update_stores(changed(stores(), {"BLR-HSR": {"risk": 0.701}}))
        await pilot.pause()
        assert cell(table, "BLR-HSR", "risk").style == f"bold {LEVEL_COLOUR[Level.CRIT]}"


async def test_cursor_stays_on_its_store_when_rows_move() -> None:
    app = TableApp(stores())
    async with app.run_test() as pilot:
        await pilot.pause()
        table = app.query_one(StoresTable)
        table.focus()
        await pilot.press("down", "down")  # onto BLR-JPN
        assert table.cursor_row == 2
        table.update_stores(changed(stores(), {"BLR-JPN": {"risk": 0.99}}))
        await pilot.pause()
        assert table.store_ids[0] == "BLR-JPN"
        assert table.cursor_row == 0


async def test_stores_come_and_go_by_key() -> None:
    app = TableApp(stores())
    async with app.run_test() as pilot:
        await pilot.pause()
        table = app.query_one(StoresTable)
        newcomer = StoreRow("BLR-YLK", "Yelahanka", 13.10, 77.59, risk=0.6)
        table.update_stores([*stores()[:4], newcomer])  # drops BLR-JPN
        await pilot.pause()
        assert table.store_ids == ["BLR-KOR", "BLR-YLK", "BLR-HSR", "BLR-IND", "BLR-WHF"]
        assert set(table.stores) == set(table.store_ids)


async def test_enter_posts_store_selected() -> None:
    app = TableApp(stores())
    async with app.run_test() as pilot:
        await pilot.pause()
        app.query_one(StoresTable).focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.selected == ["BLR-HSR"]
        assert app.raw_selections == 0  # the DataTable message stays inside the widget


async def test_enter_binding_is_shown() -> None:
    app = TableApp(stores())
    async with app.run_test() as pilot:
        await pilot.pause()
        app.query_one(StoresTable).focus()
        await pilot.pause()
        shown = [a.binding.description for a in app.active_bindings.values() if a.binding.show]
        assert "Open store" in shown
