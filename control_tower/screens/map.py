"""The city on a braille map: stores (coloured by risk), riders, drops and the outline of
the stores. Arrows pan, + and - zoom, 0 resets."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from control_tower.screens.base import LiveScreen
from control_tower.state import ORDERS, RIDERS, STORES
from control_tower.widgets.city_map import CityMap
from qc_tui.banner import ConnectionBanner


class MapScreen(LiveScreen):
    BINDINGS = [
        Binding("escape,m", "app.pop_screen", "Back"),
        Binding("a", "app.open_alerts", "Alerts"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="title", classes="title", markup=False)
        yield ConnectionBanner()
        yield CityMap(id="map")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(CityMap).focus()

    def update_view(self, changed: frozenset[str]) -> None:
        view = self.ctx.view
        self.query_one("#title", Static).update(
            f"City map · {self.ctx.city_id} · {len(view.stores)} stores · "
            f"{len(view.rider_dots())} riders · {self.as_of()}"
        )
        if changed & {STORES, RIDERS, ORDERS}:  # the layers not given stay as they were
            self.query_one(CityMap).set_data(
                stores=view.store_rows() if STORES in changed else None,
                riders=view.rider_dots() if RIDERS in changed else None,
                drops=view.drop_dots() if ORDERS in changed else None,
            )
