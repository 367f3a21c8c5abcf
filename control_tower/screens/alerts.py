"""Every open alert in the city, and the audit log of the managers' actions."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from control_tower.context import TowerContext
from control_tower.screens.base import CityAlertsPanel, KeyedTable, LiveScreen
from control_tower.state import ALERTS
from qc_tui.api import describe
from qc_tui.banner import ConnectionBanner
from shared.client import ApiError
from shared.schemas.ops import AuditEntry

AUDIT_COLUMNS = (("at", "At"), ("action", "Action"), ("target", "Target"), ("reason", "Reason"))
AUDIT_LIMIT = 100


class AlertsScreen(LiveScreen):
    BINDINGS = [
        Binding("escape,a", "app.pop_screen", "Back"),
        Binding("k", "acknowledge", "Ack alert"),
        Binding("u", "reload_audit", "Reload audit"),
    ]

    def __init__(self, ctx: TowerContext) -> None:
        super().__init__(ctx)
        self.audit: list[AuditEntry] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="title", classes="title", markup=False)
        yield ConnectionBanner()
        yield CityAlertsPanel(id="all-alerts")
        yield KeyedTable(AUDIT_COLUMNS, id="audit")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#audit").border_title = "Audit log"
        self.query_one(CityAlertsPanel).focus()
        self.load_audit()

    def update_view(self, changed: frozenset[str]) -> None:
        self.query_one("#title", Static).update(f"Alerts · {self.ctx.city_id} · {self.as_of()}")
        if ALERTS in changed:
            self.query_one(CityAlertsPanel).set_alerts(self.ctx.view.alert_items(tz=self.ctx.tz))

    @work(exclusive=True, group="audit")
    async def load_audit(self) -> None:
        table = self.query_one("#audit", KeyedTable)
        try:
            entries = await self.ctx.client.audit_log(self.ctx.city_id, limit=AUDIT_LIMIT)
        except ApiError as exc:
            table.border_title = f"Audit log · could not load: {describe(exc)}"
            return
        self.audit = entries
        table.border_title = f"Audit log · last {len(entries)}"
        table.set_rows(
            {
                str(e.entry_id): [
                    self.ctx.clock_time(e.at),
                    e.action,
                    e.target,
                    Text(e.reason or "", style="" if e.reason else "dim"),
                ]
                for e in entries
            }
        )

    def action_reload_audit(self) -> None:
        self.load_audit()
