"""A snapshot of the city overview: the map above the stores table, fixed data."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App, ComposeResult

from control_tower.widgets.city_map import CityMap
from control_tower.widgets.stores_table import StoresTable
from tests.control_tower.ct_data import drops, riders, stores


class OverviewApp(App[None]):
    CSS = """
    StoresTable { height: auto; max-height: 9; }
    """

    def compose(self) -> ComposeResult:
        yield CityMap()
        yield StoresTable()

    def on_mount(self) -> None:
        self.query_one(CityMap).set_data(stores=stores(), riders=riders(), drops=drops())
        self.query_one(StoresTable).update_stores(stores())


def test_city_overview_snapshot(snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(OverviewApp(), terminal_size=(100, 32))
