"""Open alerts, most severe first; `a` acknowledges the highlighted one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from control_tower.widgets.models import Alert, Severity
from control_tower.widgets.style import LEVEL_COLOUR, Level

SEVERITY_RANK: dict[str, int] = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
SEVERITY_STYLE: dict[str, str] = {
    Severity.CRITICAL: f"bold {LEVEL_COLOUR[Level.CRIT]}",
    Severity.WARNING: LEVEL_COLOUR[Level.WARN],
    Severity.INFO: "#3fc5f0",
}
SEVERITY_TAG: dict[str, str] = {
    Severity.CRITICAL: "CRIT",
    Severity.WARNING: "WARN",
    Severity.INFO: "INFO",
}


def alert_order(alert: Alert) -> tuple[bool, int, float, str]:
    """Unacknowledged first, then by severity, then newest first."""
    return (
        alert.acknowledged,
        SEVERITY_RANK.get(alert.severity, len(SEVERITY_RANK)),
        -alert.raised_at.timestamp(),
        alert.alert_id,
    )


def alert_prompt(alert: Alert) -> Text:
    dim = "dim" if alert.acknowledged else ""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("✓ " if alert.acknowledged else "● ", SEVERITY_STYLE.get(alert.severity, ""))
    text.append(
        SEVERITY_TAG.get(alert.severity, alert.severity.upper()[:4]),
        SEVERITY_STYLE.get(alert.severity, ""),
    )
    text.append(f" {alert.raised_at:%H:%M:%S} ", "dim")
    if alert.store_id:
        text.append(f"{alert.store_id} ", f"bold {dim}".strip())
    text.append(alert.message, dim)
    return text


class AlertsPanel(OptionList):
    """Alerts with severity colours. Up/down move, ``a`` posts
    :class:`AlertsPanel.AlertAcknowledged` for the highlighted, unacknowledged alert."""

    DEFAULT_CSS = """
    AlertsPanel {
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    AlertsPanel:focus {
        border: round $primary;
    }
    """

    BINDINGS = [Binding("a", "acknowledge", "Ack alert")]

    @dataclass
    class AlertAcknowledged(Message):
        """The user acknowledged an alert; the app tells the server."""

        alert_id: str

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._alerts: dict[str, Alert] = {}
        self._order: list[str] = []
        self._update_title()

    @property
    def alerts(self) -> list[Alert]:
        """The alerts in display order."""
        return [self._alerts[alert_id] for alert_id in self._order]

    @property
    def highlighted_alert(self) -> Alert | None:
        option = self.highlighted_option
        return None if option is None or option.id is None else self._alerts[option.id]

    def set_alerts(self, alerts: Iterable[Alert]) -> None:
        """Show exactly these alerts; the highlight stays on the same alert if it is kept."""
        ordered = sorted(alerts, key=alert_order)
        incoming = {alert.alert_id: alert for alert in ordered}
        order = list(incoming)
        if order == self._order:
            # Same alerts in the same order: redraw only the lines that changed.
            for alert_id, alert in incoming.items():
                if alert != self._alerts[alert_id]:
                    self.replace_option_prompt(alert_id, alert_prompt(alert))
        else:
            kept = self.highlighted_alert
            index = self.highlighted
            self.set_options(Option(alert_prompt(a), id=a.alert_id) for a in ordered)
            if kept is not None and kept.alert_id in incoming:
                self.highlighted = order.index(kept.alert_id)
            elif order:
                # The highlighted alert went away: stay at the same place in the list.
                self.highlighted = min(index or 0, len(order) - 1)
        self._alerts = incoming
        self._order = order
        self._update_title()

    def action_acknowledge(self) -> None:
        alert = self.highlighted_alert
        if alert is None or alert.acknowledged:
            self.app.bell()
            return
        self.post_message(self.AlertAcknowledged(alert.alert_id))

    def _update_title(self) -> None:
        open_count = sum(not a.acknowledged for a in self._alerts.values())
        self.border_title = f"Alerts · {open_count} open"
