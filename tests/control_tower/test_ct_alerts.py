"""AlertsPanel: severity order, in-place updates, `a` posts AlertAcknowledged."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from textual.app import App, ComposeResult

from control_tower.widgets.alerts import AlertsPanel
from control_tower.widgets.models import Alert, Severity
from tests.control_tower.ct_data import alerts


class AlertsApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.acked: list[str] = []

    def compose(self) -> ComposeResult:
        yield AlertsPanel()

    def on_mount(self) -> None:
        self.query_one(AlertsPanel).set_alerts(alerts())

    def on_alerts_panel_alert_acknowledged(self, message: AlertsPanel.AlertAcknowledged) -> None:
        self.acked.append(message.alert_id)


def ids(panel: AlertsPanel) -> list[str]:
    return [a.alert_id for a in panel.alerts]


async def test_open_alerts_first_by_severity() -> None:
    app = AlertsApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        panel = app.query_one(AlertsPanel)
        assert ids(panel) == ["a2", "a1", "a3"]
        assert [o.id for o in panel.options] == ["a2", "a1", "a3"]
        assert panel.border_title == "Alerts · 2 open"
        first = panel.get_option("a2").prompt
        assert first.plain.startswith("● CRIT 18:30:00 BLR-KOR")  # type: ignore[union-attr]


async def test_a_acknowledges_the_highlighted_alert() -> None:
    app = AlertsApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        app.query_one(AlertsPanel).focus()
        await pilot.press("a", "down", "a")
        await pilot.pause()
        assert app.acked == ["a2", "a1"]


async def test_acknowledged_alert_is_not_acknowledged_again() -> None:
    app = AlertsApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        app.query_one(AlertsPanel).focus()
        await pilot.press("end", "a")
        await pilot.pause()
        assert app.acked == []


async def test_same_order_update_replaces_only_the_prompt() -> None:
    app = AlertsApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        panel = app.query_one(AlertsPanel)
        options_before = list(panel.options)
        panel.set_alerts(
            [replace(a, message="4 orders predicted to breach") if a.alert_id == "a2" else a
             for a in alerts()]
        )  # fmt: skip
        await pilot.pause()
        assert list(panel.options) == options_before  # same Option objects
        assert "4 orders" in panel.get_option("a2").prompt.plain  # type: ignore[union-attr]


async def test_highlight_follows_its_alert_when_the_list_reorders() -> None:
    app = AlertsApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        panel = app.query_one(AlertsPanel)
        panel.focus()
        await pilot.press("down")  # a1
        newest = Alert(
            "a4", "rider", Severity.CRITICAL, None, "No idle riders city-wide",
            alerts()[0].raised_at + timedelta(minutes=1),
        )  # fmt: skip
        panel.set_alerts([*alerts(), newest])
        await pilot.pause()
        assert ids(panel) == ["a4", "a2", "a1", "a3"]
        assert panel.highlighted_alert is not None
        assert panel.highlighted_alert.alert_id == "a1"
        assert panel.border_title == "Alerts · 3 open"


async def test_highlight_stays_in_place_when_its_alert_goes() -> None:
    app = AlertsApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        panel = app.query_one(AlertsPanel)
        panel.focus()
        await pilot.press("down")  # a1
        panel.set_alerts([a for a in alerts() if a.alert_id != "a1"])
        await pilot.pause()
        assert panel.highlighted == 1
        assert panel.highlighted_alert is not None
        assert panel.highlighted_alert.alert_id == "a3"
