"""KPI tiles and bar: values, trends and threshold classes, updated in place."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from control_tower.widgets.kpi import KpiBar, KpiTile
from control_tower.widgets.models import KpiValue
from control_tower.widgets.style import LEVEL_COLOUR, Level


class KpiApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KpiBar(
            [
                KpiTile("orders", "Orders / min"),
                KpiTile("late", "Predicted late", warn_at=3, crit_at=10),
                KpiTile("idle", "Idle riders", warn_at=5, crit_at=2, higher_is_worse=False),
                KpiTile("p90", "P90 delivery", fmt="{:.1f}", unit="min"),
            ]
        )


async def test_values_and_levels() -> None:
    app = KpiApp()
    async with app.run_test(size=(120, 10)) as pilot:
        bar = app.query_one(KpiBar)
        tiles = list(bar.query(KpiTile))
        bar.set_values(
            [
                KpiValue("orders", 1234, delta=12),
                KpiValue("late", 4),
                KpiValue("idle", 1, delta=-3),
                KpiValue("p90", 9.25),
            ]
        )
        await pilot.pause()
        assert [t.key for t in bar.query(KpiTile)] == ["orders", "late", "idle", "p90"]
        assert list(bar.query(KpiTile)) == tiles  # same widgets, updated in place

        orders = bar.tile("orders").render()
        assert orders.plain == "1,234\n▲ 12"
        assert bar.tile("late").has_class("-warn")
        assert bar.tile("idle").has_class("-crit")
        assert bar.tile("p90").render().plain == "9.2 min\n"

        # Fewer idle riders is the bad direction for a higher-is-better KPI.
        idle = bar.tile("idle").render()
        assert idle.plain == "1\n▼ 3"
        assert idle.spans[-1].style == LEVEL_COLOUR[Level.CRIT]


async def test_level_classes_follow_the_value() -> None:
    app = KpiApp()
    async with app.run_test(size=(120, 10)) as pilot:
        tile = app.query_one(KpiBar).tile("late")
        tile.set(12)
        await pilot.pause()
        assert tile.has_class("-crit") and not tile.has_class("-warn")
        tile.set(0, delta=-12)
        await pilot.pause()
        assert not tile.has_class("-crit") and not tile.has_class("-warn")
        assert tile.render().spans[-1].style == LEVEL_COLOUR[Level.OK]  # falling lateness is good


async def test_unset_tile_and_flat_trend() -> None:
    app = KpiApp()
    async with app.run_test(size=(120, 10)) as pilot:
        bar = app.query_one(KpiBar)
        assert bar.tile("orders").render().plain == "—"
        bar.set_values([KpiValue("orders", 5, delta=0)])
        await pilot.pause()
        assert bar.tile("orders").render().plain == "5\n= 0"


async def test_unknown_key_is_an_error() -> None:
    app = KpiApp()
    async with app.run_test(size=(120, 10)):
        with pytest.raises(KeyError):
            app.query_one(KpiBar).set_values([KpiValue("typo", 1)])
