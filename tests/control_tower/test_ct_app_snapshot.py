"""Snapshots of the control tower's city overview and store drill-down: fixed data, times
shown in UTC and a frozen clock for the pipeline timers, so every run reads the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from control_tower.app import ControlTowerApp
from control_tower.messages import FeedReceived, FeedState
from control_tower.screens.overview import OverviewScreen
from control_tower.screens.store import StoreScreen
from control_tower.widgets.pipeline import PipelineBoard
from control_tower.widgets.stores_table import StoresTable
from qc_tui.banner import ConnectionBanner
from shared.enums import OrderStatus
from tests.control_tower.ct_app_fakes import logged_in_api, snapshot, tower
from tests.helpers import wait_for

SIZE = (120, 36)


def snapshot_app() -> ControlTowerApp:
    return tower(logged_in_api(), feed=False)


async def city_shown(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), what="overview")
    app.post_message(FeedReceived(snapshot()))
    await wait_for(pilot, lambda: app.screen.query_one(StoresTable).row_count == 5)
    await pilot.pause()


def test_overview_snapshot(snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=city_shown)


def test_store_drill_down_snapshot(snap_compare: Callable[..., bool]) -> None:
    async def drilled_down(pilot: Pilot[Any]) -> None:
        await city_shown(pilot)
        await pilot.press("enter")  # the riskiest store: Koramangala
        app = pilot.app

        def ready() -> bool:
            screen = app.screen
            if not isinstance(screen, StoreScreen):
                return False
            board = screen.query_one(PipelineBoard)
            return bool(board.columns[OrderStatus.PICKING].timers.orders)

        await wait_for(pilot, ready, what="the store's pipeline")
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=drilled_down)


def test_connection_lost_snapshot(snap_compare: Callable[..., bool]) -> None:
    async def lost(pilot: Pilot[Any]) -> None:
        await city_shown(pilot)
        pilot.app.post_message(FeedState(False, "[Errno 111] Connection refused"))
        await wait_for(pilot, lambda: pilot.app.screen.query_one(ConnectionBanner).lost)
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=lost)
