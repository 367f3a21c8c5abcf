"""One store up close: the order pipeline by state with SLA-coloured timers, its pickers
and riders, stock, and the store's alerts. Orders are acted on from here."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Static

from control_tower.context import TowerContext
from control_tower.screens.base import CityAlertsPanel, KeyedTable, LiveScreen
from control_tower.state import ALERTS, ORDERS, PICKERS, RIDERS, STORES, store_row
from control_tower.widgets.pipeline import ID_CHARS, PipelineBoard
from control_tower.widgets.style import LEVEL_COLOUR, Level, format_age, risk_level
from qc_tui.banner import ConnectionBanner
from shared.enums import RiderStatus

PICKER_COLUMNS = (("name", "Picker"), ("doing", "Doing"))
RIDER_COLUMNS = (("name", "Rider"), ("status", "Status"), ("idle", "Idle"))
STATE_WORDS = {"PARTIALLY_FULFILLED": "short pick"}
RIDER_STYLE: dict[str, str] = {
    RiderStatus.IDLE: LEVEL_COLOUR[Level.OK],
    RiderStatus.OFFLINE: "dim",
}


class StoreScreen(LiveScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("p", "pause", "Pause/resume"),
        Binding("r", "radius", "Radius"),
        Binding("g", "reassign", "Reassign"),
        Binding("x", "cancel_order", "Cancel order"),
        Binding("t", "move_rider", "Move rider"),
        Binding("k", "acknowledge", "Ack alert"),
        Binding("m", "app.open_map", "Map"),
        Binding("a", "app.open_alerts", "Alerts"),
    ]

    def __init__(self, ctx: TowerContext, store_id: str) -> None:
        super().__init__(ctx)
        self.store_id = store_id

    def compose(self) -> ComposeResult:
        yield Static("", id="title", classes="title", markup=False)
        yield ConnectionBanner()
        yield Static("", id="store-stats", markup=False)
        yield PipelineBoard(clock=self.ctx.timer_clock, id="pipeline")
        with Horizontal(id="store-bottom"):
            yield KeyedTable(PICKER_COLUMNS, id="pickers")
            yield KeyedTable(RIDER_COLUMNS, id="riders")
            with Vertical(id="store-side"):
                yield Static("", id="stock", markup=False)
                yield CityAlertsPanel(id="store-alerts")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pickers").border_title = "Pickers"
        self.query_one("#riders").border_title = "Riders"
        self.query_one("#stock").border_title = "Stock"
        self.query_one("#riders", KeyedTable).focus()

    def update_view(self, changed: frozenset[str]) -> None:
        view = self.ctx.view
        if STORES in changed:
            self._show_store()
        self.query_one("#title", Static).update(self._title())
        if ORDERS in changed:
            self.query_one(PipelineBoard).set_orders(view.pipeline(self.store_id))
        if PICKERS in changed or ORDERS in changed:
            self._show_pickers()
        if RIDERS in changed:
            self._show_riders()
        if ALERTS in changed:
            self.query_one(CityAlertsPanel).set_alerts(
                view.alert_items(self.store_id, tz=self.ctx.tz)
            )

    def _title(self) -> Text:
        store = self.ctx.view.stores.get(self.store_id)
        title = Text(f"{self.store_id}")
        if store is None:
            title.append(" · not in the feed", style="dim")
        else:
            title.append(f" · {store.name} · ")
            if store.is_operational and store.opens_at is not None:
                title.append(f"closed · opens {store.opens_at:%a %H:%M}")
            elif store.is_operational:
                title.append("live")
            else:
                title.append("PAUSED")
                if store.paused_reason:
                    title.append(f" ({store.paused_reason})")
            title.append(f" · radius {store.service_radius_m / 1000:.1f} km")
        title.append(f" · {self.as_of()}")
        return title

    def _show_store(self) -> None:
        store = self.ctx.view.stores.get(self.store_id)
        stats = self.query_one("#store-stats", Static)
        stock = self.query_one("#stock", Static)
        if store is None:
            stats.update(Text("This store is not in the city feed.", style="dim"))
            stock.update("")
            return
        row = store_row(store)
        risk = LEVEL_COLOUR[risk_level(store.risk)]
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("risk ")
        text.append(f"{store.risk:.0%}", style=f"bold {risk}")
        text.append(
            f" · queue {row.queued} · on road {row.on_road} · oldest {format_age(store.oldest_wait_s)}"
        )
        text.append(" · predicted late ")
        late = LEVEL_COLOUR[Level.CRIT] if store.predicted_breaches else ""
        text.append(str(store.predicted_breaches), style=f"bold {late}".strip())
        text.append(
            f" · pickers {store.active_pickers} · riders {store.idle_riders} idle"
            f" / {store.busy_riders} busy"
        )
        stats.update(text)
        body = Text()
        body.append(
            f"{store.low_stock} low", style=LEVEL_COLOUR[Level.WARN] if store.low_stock else ""
        )
        body.append(f" · {store.stockout_risk} at risk in 24 h\n")
        # two "out of stock" named apart: what customers emptied today, and shelves empty
        # from before (never stocked, or not restocked)
        body.append(
            f"{store.sold_out_today} sold out today",
            style=f"bold {LEVEL_COLOUR[Level.CRIT]}" if store.sold_out_today else "",
        )
        body.append(f" · {store.stock_outs - store.sold_out_today} empty since before today")
        stock.update(body)

    def _show_pickers(self) -> None:
        rows: dict[str, list[str | Text]] = {}
        orders = self.ctx.view.orders
        for picker in self.ctx.view.store_pickers(self.store_id):
            order_id = str(picker.picking_order_id) if picker.picking_order_id else None
            if order_id is None:
                doing = Text("free", style=LEVEL_COLOUR[Level.OK])
            else:
                order = orders.get(order_id)
                state = f" {STATE_WORDS.get(order.status, order.status.lower())}" if order else ""
                doing = Text(f"{order_id[:ID_CHARS]}{state}")
            rows[str(picker.user_id)] = [picker.name, doing]
        self.query_one("#pickers", KeyedTable).set_rows(rows)

    def _show_riders(self) -> None:
        rows: dict[str, list[str | Text]] = {}
        for rider in self.ctx.view.store_riders(self.store_id):
            idle = format_age(rider.idle_s) if rider.idle_s is not None else ""
            rows[str(rider.rider_id)] = [
                rider.name,
                Text(
                    rider.status.lower().replace("_", " "), style=RIDER_STYLE.get(rider.status, "")
                ),
                Text(idle, justify="right"),
            ]
        self.query_one("#riders", KeyedTable).set_rows(rows)

    # --- actions --------------------------------------------------------------------
    def action_pause(self) -> None:
        self.ctx.actions.pause_or_resume(self.store_id)

    def action_radius(self) -> None:
        self.ctx.actions.change_radius(self.store_id)

    def action_reassign(self) -> None:
        self.ctx.actions.reassign(self.store_id)

    def action_cancel_order(self) -> None:
        self.ctx.actions.cancel_order(self.store_id)

    def action_move_rider(self) -> None:
        self.ctx.actions.move_rider(self.store_id)
