"""Snapshots of every control-tower screen (login, overview, store drill-down, map, alerts
with the audit log): fixed data, times shown in UTC and a frozen clock for the pipeline
timers, so every run reads the same."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from control_tower.app import ControlTowerApp
from control_tower.messages import FeedReceived, FeedState
from control_tower.screens.alerts import AlertsScreen
from control_tower.screens.base import KeyedTable
from control_tower.screens.help import HelpScreen
from control_tower.screens.login import LoginScreen
from control_tower.screens.map import MapScreen
from control_tower.screens.overview import OverviewScreen
from control_tower.screens.stages import StagesScreen
from control_tower.screens.store import StoreScreen
from control_tower.widgets.city_map import CityMap
from control_tower.widgets.pipeline import PipelineBoard
from control_tower.widgets.stores_table import StoresTable
from qc_tui.banner import ConnectionBanner
from shared.enums import OrderStatus
from shared.schemas.ops import AuditEntry
from tests.control_tower.ct_app_fakes import (
    AT,
    MANAGER,
    FakeOpsApi,
    logged_in_api,
    snapshot,
    tower,
)
from tests.helpers import wait_for, wait_for_screen

SIZE = (120, 36)


def snapshot_app() -> ControlTowerApp:
    return tower(logged_in_api(), feed=False)


async def city_shown(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await wait_for_screen(pilot, OverviewScreen, what="overview")
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


def test_login_snapshot(snap_compare: Callable[..., bool]) -> None:
    app = tower(FakeOpsApi(), feed=False, login="manager.blr")

    async def shown(pilot: Pilot[Any]) -> None:
        await wait_for_screen(pilot, LoginScreen, what="login")
        # the screen focuses its first empty input once mounted; the picture is taken after
        # (taken before, the focus styling and the footer's keys came and went)
        await wait_for(pilot, lambda: isinstance(pilot.app.focused, Input), what="focus")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)


def test_map_snapshot(snap_compare: Callable[..., bool]) -> None:
    async def mapped(pilot: Pilot[Any]) -> None:
        await city_shown(pilot)
        await pilot.press("m")
        app = pilot.app
        await wait_for_screen(pilot, MapScreen, what="map")
        city_map = app.screen.query_one(CityMap)
        await wait_for(pilot, lambda: "Koramangala" in city_map.render().plain, what="stores")
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=mapped)


def test_alerts_and_audit_snapshot(snap_compare: Callable[..., bool]) -> None:
    api = logged_in_api()
    api.audit = [
        AuditEntry(
            entry_id=7,
            at=AT - timedelta(minutes=2),
            actor_id=MANAGER.id,
            city_id="BLR",
            action="alert.acknowledge",
            target="f1000002-0000-4000-8000-000000000000",
            reason=None,
        ),
        AuditEntry(
            entry_id=6,
            at=AT - timedelta(minutes=5),
            actor_id=MANAGER.id,
            city_id="BLR",
            action="store.pause",
            target="BLR-WHF",
            reason="heavy rain",
        ),
    ]

    async def listed(pilot: Pilot[Any]) -> None:
        await city_shown(pilot)
        await pilot.press("a")
        app = pilot.app
        await wait_for_screen(pilot, AlertsScreen, what="alerts")
        audit = app.screen.query_one("#audit", KeyedTable)
        await wait_for(pilot, lambda: audit.row_count == 2, what="the audit log")
        await pilot.pause()

    assert snap_compare(tower(api, feed=False), terminal_size=SIZE, run_before=listed)


def test_stages_snapshot(snap_compare: Callable[..., bool]) -> None:
    async def stages(pilot: Pilot[Any]) -> None:
        await city_shown(pilot)
        await pilot.press("w")
        app = pilot.app
        await wait_for_screen(pilot, StagesScreen, what="stages")
        await wait_for(pilot, lambda: app.screen.query_one(KeyedTable).row_count == 3)
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=(140, 36), run_before=stages)


def test_help_with_the_demo_logins_snapshot(snap_compare: Callable[..., bool]) -> None:
    notes = {
        "manager": "manager.blr / manager-demo",
        "rider (yours)": "rider.001 / 1111  (rider.001 to rider.012)",
        "rider app": "qc rider --rider rider.001 --server http://127.0.0.1:8000",
    }

    async def helped(pilot: Pilot[Any]) -> None:
        await city_shown(pilot)
        await pilot.press("question_mark")
        await wait_for_screen(pilot, HelpScreen, what="help")
        await pilot.pause()

    app = tower(logged_in_api(), feed=False, notes=notes)
    assert snap_compare(app, terminal_size=SIZE, run_before=helped)
