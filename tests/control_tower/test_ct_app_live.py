"""The control tower against the real server and its ``/ws/ops`` feed: log in as the
seeded manager, see the seeded stores, pause and resume one from the app, a city that is
not the manager's, and the screen surviving a server restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC
from typing import Any, cast

import psycopg
import pytest
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static

from control_tower.app import ControlTowerApp
from control_tower.screens.dialogs import ReasonScreen
from control_tower.screens.login import LoginScreen
from control_tower.screens.overview import OverviewScreen
from control_tower.screens.store import StoreScreen
from control_tower.widgets.pipeline import PipelineBoard
from control_tower.widgets.stores_table import StoresTable
from qc_tui.banner import ConnectionBanner
from qc_tui.dialogs import ChoiceScreen, ConfirmScreen
from server.app import create_app
from server.kit.clock import Clock
from server.kit.config import Settings
from server.seed.generate import DEMO_SECRETS
from shared.enums import OrderStatus, Role
from tests.control_tower.ct_app_fakes import fixed_monotonic
from tests.helpers import ThreadedServer, screen_ready, wait_for, wait_for_screen
from tests.picker_app.picker_live import STORE, in_stock_skus, place_order

MANAGER = ("manager.blr", DEMO_SECRETS[Role.MANAGER])
SIZE = (130, 40)


def seeded_stores(database_url: str) -> dict[str, tuple[str, bool]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT store_id, store_name, is_operational FROM dark_stores WHERE city_id = 'BLR'"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def audit_actions(database_url: str) -> list[tuple[str, str, str | None]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT action, target, reason FROM ops_audit_log ORDER BY entry_id"
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def live_app(url: str, **kwargs: Any) -> ControlTowerApp:
    options: dict[str, Any] = {
        "tz": UTC,
        "monotonic": fixed_monotonic,
        "retry_base_s": 0.05,
        "retry_max_s": 0.3,
    }
    return ControlTowerApp(server_url=url, **(options | kwargs))


async def log_in(pilot: Pilot[Any], app: ControlTowerApp) -> OverviewScreen:
    await wait_for(
        pilot,
        lambda: screen_ready(app, LoginScreen) and app.screen.query("#password"),
        what="login screen",
    )
    assert app.screen.query_one("#login", Input).value == MANAGER[0]
    await pilot.press(*MANAGER[1], "enter")
    await wait_for(
        pilot,
        lambda: screen_ready(app, OverviewScreen) and app.screen.query(StoresTable),
        what="overview composed",
    )
    return cast(OverviewScreen, app.screen)


async def stores_shown(pilot: Pilot[Any], app: ControlTowerApp, n: int) -> StoresTable:
    table = app.screen.query_one(StoresTable)
    await wait_for(pilot, lambda: table.row_count == n, timeout=30, what="the seeded stores")
    return table


def state_of(table: StoresTable, store_id: str) -> str:
    cell = table.get_cell(store_id, "state")
    return getattr(cell, "plain", str(cell))


@pytest.mark.slow
async def test_manager_sees_the_seeded_city_and_pauses_a_store(city, live_server) -> None:
    seeded = seeded_stores(city.database_url)
    app = live_app(live_server.url, login=MANAGER[0])
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot, app)
        assert app.client.user is not None and app.client.user.city_id == "BLR"
        table = await stores_shown(pilot, app, len(seeded))
        assert set(table.store_ids) == set(seeded)
        for store_id, (name, _) in seeded.items():
            assert table.stores[store_id].name == name
        assert app.link_state == "up"
        title = str(screen.query_one("#title", Static).content)
        assert title.startswith("qc control tower · BLR · ")

        # pause the store under the cursor, with a reason
        store_id = table.store_ids[table.cursor_row]
        await pilot.press("p")
        await wait_for_screen(pilot, ReasonScreen, what="reason")
        await pilot.press(*"stock count", "enter")
        await wait_for(pilot, lambda: state_of(table, store_id) == "PAUSED", what="paused")
        assert seeded_stores(city.database_url)[store_id][1] is False
        assert ("store.pause", store_id, "stock count") in audit_actions(city.database_url)
        # the feed agrees (its own snapshot of the city, not the action's answer)
        await wait_for(
            pilot,
            lambda: app.view.stores[store_id].paused_reason == "stock count",
            what="the feed's view",
        )

        # and resume it from its drill-down
        table.move_cursor(row=table.store_ids.index(store_id))
        await pilot.press("enter")
        await wait_for_screen(pilot, StoreScreen, what="store")
        assert "PAUSED (stock count)" in str(app.screen.query_one("#title", Static).content)
        await pilot.press("p")
        await wait_for_screen(pilot, ConfirmScreen, what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: seeded_stores(city.database_url)[store_id][1] is True)
        await pilot.press("escape")
        await wait_for(pilot, lambda: state_of(table, store_id) == "live", what="live again")


async def test_a_city_that_is_not_the_managers_is_refused(city, live_server) -> None:
    app = live_app(live_server.url, login=MANAGER[0], city="DEL")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot, lambda: screen_ready(app, LoginScreen) and app.screen.query("#password")
        )
        await pilot.press(*MANAGER[1], "enter")
        await wait_for(
            pilot,
            lambda: (
                screen_ready(app, LoginScreen)
                and "Not allowed to watch city DEL"
                in str(app.screen.query_one("#login-error", Static).content)
            ),
            timeout=30,
            what="the refusal",
        )
        assert "not yours" in str(app.screen.query_one("#login-error", Static).content)


@pytest.mark.slow
async def test_an_order_on_the_board_cancelled_from_the_app(city, live_server) -> None:
    sku = in_stock_skus(city.database_url, 1)[0]
    order_id = await place_order(live_server.url, {sku: 1})
    app = live_app(live_server.url, login=MANAGER[0])
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, app)
        table = await stores_shown(pilot, app, len(seeded_stores(city.database_url)))
        table.move_cursor(row=table.store_ids.index(STORE))
        await pilot.press("enter")
        await wait_for_screen(pilot, StoreScreen, what="store")
        board = app.screen.query_one(PipelineBoard)
        confirmed = board.columns[OrderStatus.CONFIRMED].timers

        def on_board() -> list[str]:
            return [o.order_id for o in confirmed.orders]

        await wait_for(pilot, lambda: order_id in on_board(), timeout=30, what="the order")
        await pilot.press("x")
        await wait_for_screen(pilot, ChoiceScreen, what="orders")
        options = app.screen.query_one(OptionList)
        options.highlighted = next(i for i, o in enumerate(options.options) if o.id == order_id)
        await pilot.press("enter")
        await wait_for_screen(pilot, ReasonScreen, what="reason")
        await pilot.press(*"customer called", "enter")
        await wait_for(pilot, lambda: order_id not in on_board(), timeout=30, what="gone")
        with psycopg.connect(city.database_url) as conn:
            status = conn.execute(
                "SELECT status FROM orders WHERE order_id = %s", (order_id,)
            ).fetchone()
        assert status is not None and status[0] == "CANCELLED"
        assert ("order.cancel", order_id, "customer called") in audit_actions(city.database_url)


# --- a server that can be restarted ------------------------------------------------


@pytest.fixture
def restartable(city, settings: Settings, clock: Clock) -> Iterator[ThreadedServer]:
    """The app under uvicorn on a fixed loopback port; stop and start it again."""
    server = ThreadedServer(lambda: create_app(settings, clock=clock))
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
async def test_the_screen_survives_a_server_restart(city, restartable) -> None:
    seeded = seeded_stores(city.database_url)
    app = live_app(restartable.url, login=MANAGER[0])
    async with app.run_test(size=SIZE) as pilot:
        screen = await log_in(pilot, app)
        table = await stores_shown(pilot, app, len(seeded))
        banner = screen.query_one(ConnectionBanner)
        assert not banner.lost
        snapshots = app.view.snapshots

        await asyncio.to_thread(restartable.stop)
        await wait_for(pilot, lambda: banner.lost, timeout=30, what="the banner")
        assert app.link_state == "down"
        # the city changes while the server is down: the app must not miss it
        store_id = sorted(seeded)[0]
        with psycopg.connect(city.database_url) as conn:
            conn.execute(
                "UPDATE dark_stores SET is_operational = false, paused_reason = 'power cut' "
                "WHERE store_id = %s",
                (store_id,),
            )
        assert state_of(table, store_id) == "live"  # the last known view stays up meanwhile

        await asyncio.to_thread(restartable.start)
        await wait_for(pilot, lambda: not banner.lost, timeout=30, what="the banner gone")
        await wait_for(pilot, lambda: state_of(table, store_id) == "PAUSED", what="fresh view")
        assert app.view.snapshots == snapshots + 1  # resumed from a fresh snapshot
        assert app.screen is screen and app.link_state == "up"
        assert set(table.store_ids) == set(seeded)
