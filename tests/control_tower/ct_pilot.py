"""What the control tower's Pilot tests share: the screen size, the fake feed's risk
order, and waiting for the overview, a drill-down or a dialog."""

from __future__ import annotations

from typing import Any, cast

from rich.text import Text
from textual.pilot import Pilot

from control_tower.app import ControlTowerApp
from control_tower.screens.overview import OverviewScreen
from control_tower.screens.store import StoreScreen
from control_tower.widgets.stores_table import StoresTable
from tests.helpers import screen_ready, wait_for, wait_for_screen

SIZE = (130, 40)
RISK_ORDER = ["BLR-KOR", "BLR-HSR", "BLR-JPN", "BLR-IND", "BLR-WHF"]


async def overview(pilot: Pilot[Any], app: ControlTowerApp) -> OverviewScreen:
    await wait_for(
        pilot,
        lambda: (
            screen_ready(app, OverviewScreen) and app.screen.query_one(StoresTable).row_count == 5
        ),
        what="overview with stores",
    )
    return cast(OverviewScreen, app.screen)


async def drill_down(pilot: Pilot[Any], app: ControlTowerApp) -> StoreScreen:
    await pilot.press("enter")  # the cursor starts on the riskiest store
    await wait_for_screen(pilot, StoreScreen, what="store screen")
    return cast(StoreScreen, app.screen)


async def dialog(pilot: Pilot[Any], app: ControlTowerApp, kind: type) -> Any:
    await wait_for_screen(pilot, kind)
    await pilot.pause()
    return app.screen


def stores_table(app: ControlTowerApp) -> StoresTable:
    return app.screen.query_one(StoresTable)


def plain(value: object) -> str:
    return value.plain if isinstance(value, Text) else str(value)


def shown_keys(app: ControlTowerApp) -> dict[str, str]:
    return {
        b.binding.key_display or key: b.binding.description
        for key, b in app.active_bindings.items()
        if b.binding.show
    }
