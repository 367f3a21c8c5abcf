"""The city overview: KPI tiles, trends of the last hours, flash sales, alerts, and the stores
sorted by risk. Enter on a store drills down."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Static

from control_tower.screens.base import CityAlertsPanel, LiveScreen
from control_tower.screens.store import StoreScreen
from control_tower.state import ALERTS, CITY, STORES, sale_is_open
from control_tower.widgets.kpi import KpiBar, KpiTile
from control_tower.widgets.stores_table import StoresTable
from control_tower.widgets.trends import TrendSeries, TrendsPanel
from qc_tui.banner import ConnectionBanner


def kpi_tiles() -> list[KpiTile]:
    return [
        KpiTile("orders", "Orders/min"),
        KpiTile("late", "Going late", warn_at=3, crit_at=10),
        KpiTile("idle", "Idle riders", warn_at=5, crit_at=2, higher_is_worse=False),
        KpiTile("within10", "≤10 min", warn_at=85, crit_at=70, higher_is_worse=False, unit="%"),
        KpiTile("p90", "P90 to door", fmt="{:.1f}", unit="min", warn_at=12, crit_at=15),
        KpiTile("delivered", "Delivered"),
        KpiTile("alerts", "Open alerts", warn_at=1, crit_at=5),
    ]


class OverviewScreen(LiveScreen):
    BINDINGS = [
        Binding("m", "app.open_map", "Map"),
        Binding("a", "app.open_alerts", "Alerts"),
        Binding("p", "pause", "Pause/resume"),
        Binding("r", "radius", "Radius"),
        Binding("k", "acknowledge", "Ack alert"),
        Binding("s", "stop_sale", "Stop sale"),
        Binding("w", "app.open_stages", "Minutes"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="title", classes="title", markup=False)
        yield ConnectionBanner()
        yield KpiBar(kpi_tiles(), id="kpis")
        yield StoresTable(id="stores")
        with Horizontal(id="overview-bottom"):
            with Vertical(id="overview-trends"):
                yield TrendsPanel(id="trends")
                yield Static("", id="flash", markup=False)
            yield CityAlertsPanel(id="alerts")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(StoresTable).focus()
        self.query_one("#flash", Static).border_title = "Flash sales"

    @property
    def selected_store(self) -> str | None:
        table = self.query_one(StoresTable)
        ids = table.store_ids
        return ids[table.cursor_row] if 0 <= table.cursor_row < len(ids) else None

    def update_view(self, changed: frozenset[str]) -> None:
        view = self.ctx.view
        user = self.ctx.client.user
        who = f" · {user.name}" if user is not None else ""
        self.query_one("#title", Static).update(
            f"qc control tower · {self.ctx.city_id}{who} · {self.as_of()}"
        )
        if changed & {CITY, STORES, ALERTS}:
            bar = self.query_one(KpiBar)
            readings = view.kpis()
            bar.set_values(readings)
            given = {r.key for r in readings}
            for tile in bar.query(KpiTile):
                if tile.key not in given:
                    tile.value = None
        if STORES in changed:
            self.query_one(StoresTable).update_stores(view.store_rows())
        if changed:
            self._show_trends()
        if CITY in changed:
            self.query_one("#flash", Static).update(self._flash_text())
        if ALERTS in changed:
            self.query_one(CityAlertsPanel).set_alerts(view.alert_items(tz=self.ctx.tz))

    def _show_trends(self) -> None:
        trends = self.ctx.view.trends
        percent = [None if p is None else p * 100 for p in trends.series("late_share")]
        series = [
            TrendSeries("Orders / min", tuple(trends.series("orders")), style="cyan"),
            TrendSeries(
                "Going late %", tuple(percent), fmt="{:.0f}", avg_fmt="{:.0f}", style="red"
            ),
            TrendSeries("Idle riders", tuple(trends.series("idle_riders")), style="green"),
        ]
        self.query_one(TrendsPanel).set_series(series, minutes=len(trends.minutes))

    def _flash_text(self) -> Text:
        sales = self.ctx.view.flash_sales()
        if not sales:
            return Text("none running", style="dim")
        lines = []
        for sale in sales:
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(f"{sale.sku_id} ", style="bold" if sale_is_open(sale) else "dim")
            line.append(f"{sale.status.lower()} ", style="dim")
            line.append(
                f"waiting {sale.waiting} · checkout {sale.in_checkout} · "
                f"left {sale.tokens_left} · sold {sale.sold}"
            )
            lines.append(line)
        return Text("\n").join(lines)

    # --- actions --------------------------------------------------------------------
    def on_stores_table_store_selected(self, message: StoresTable.StoreSelected) -> None:
        self.app.push_screen(StoreScreen(self.ctx, message.store_id))

    def action_pause(self) -> None:
        store_id = self.selected_store
        if store_id is None:
            self.app.bell()
            return
        self.ctx.actions.pause_or_resume(store_id)

    def action_radius(self) -> None:
        store_id = self.selected_store
        if store_id is None:
            self.app.bell()
            return
        self.ctx.actions.change_radius(store_id)

    def action_stop_sale(self) -> None:
        self.ctx.actions.stop_flash_sale()
