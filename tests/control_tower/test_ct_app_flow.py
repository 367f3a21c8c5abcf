"""The control tower driven with the keyboard against a real-socket fake feed and a
scripted API: log in, the overview updating live in place, drill-down, map, alerts, the
banner while the feed is down and the fresh snapshot after, times in the city's zone (the
manager's actions: test_ct_app_actions.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from textual.widgets import Input, Static

from control_tower.messages import FeedReceived
from control_tower.screens.alerts import AlertsScreen
from control_tower.screens.base import CityAlertsPanel, KeyedTable
from control_tower.screens.login import LoginScreen
from control_tower.screens.map import MapScreen
from control_tower.screens.overview import OverviewScreen
from control_tower.widgets.city_map import CityMap
from control_tower.widgets.kpi import KpiBar
from control_tower.widgets.pipeline import PipelineBoard
from control_tower.widgets.trends import TrendsPanel
from qc_tui.banner import ConnectionBanner
from shared.enums import OrderStatus, Role
from shared.schemas.ops import AuditEntry
from tests.control_tower.ct_app_fakes import (
    AT,
    MANAGER,
    FakeFeedServer,
    FakeOpsApi,
    alert,
    changes,
    logged_in_api,
    order,
    rider,
    snapshot,
    store,
    tower,
    uid,
)
from tests.control_tower.ct_pilot import (
    RISK_ORDER,
    SIZE,
    drill_down,
    overview,
    plain,
    shown_keys,
    stores_table,
)
from tests.helpers import screen_ready, wait_for, wait_for_screen

# --- log in, overview, live updates --------------------------------------------------


async def test_log_in_and_watch_the_city_update_in_place(feed: FakeFeedServer) -> None:
    api = FakeOpsApi(socket_url=feed.url)
    app = tower(api, login="manager.blr")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_screen(pilot, LoginScreen, what="login")
        await pilot.press(*"manager-demo", "enter")
        screen = await overview(pilot, app)
        assert feed.queries == [{"city": "BLR", "token": "tok-manager.blr"}]
        table = stores_table(app)
        assert table.store_ids == RISK_ORDER
        title = plain(screen.query_one("#title", Static).content)
        assert title == "qc control tower · BLR · Bengaluru Manager · as of 13:00:00 UTC"

        bar = screen.query_one(KpiBar)
        assert bar.tile("late").value == 4 and bar.tile("idle").value == 10
        assert plain(bar.tile("p90").render()) == "13.0 min\n"
        trends = screen.query_one(TrendsPanel)
        assert len(trends.series[0].points) == 30
        assert trends.border_title == "Trends · last 30 min · per minute"
        assert "SKU00042 active waiting 120" in plain(screen.query_one("#flash", Static).content)
        panel = screen.query_one(CityAlertsPanel)
        assert panel.alerts[0].alert_id[:8] == "f1000001"  # critical first

        rows = dict(table.rows)
        feed.send(
            changes(
                stores=[store("BLR-IND", risk=0.95, predicted_breaches=6)],
                alerts=[alert("f1000004", severity="critical")],
            )
        )
        await wait_for(pilot, lambda: table.store_ids[0] == "BLR-IND", what="re-sorted")
        assert all(table.rows[key] is row for key, row in rows.items())  # updated in place
        assert screen.query_one(KpiBar).tile("late").value == 10
        await wait_for(pilot, lambda: panel.alerts[0].alert_id[:8] in ("f1000001", "f1000004"))
        assert plain(screen.query_one("#title", Static).content).endswith("13:00:01 UTC")
        assert app.screen is screen  # never remounted


async def test_wrong_password_and_non_managers_stay_on_the_login_screen() -> None:
    api = FakeOpsApi()
    app = tower(api, login="manager.blr", feed=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_screen(pilot, LoginScreen)
        error = app.screen.query_one("#login-error", Static)
        await pilot.press(*"nope", "enter")
        await wait_for(pilot, lambda: "Wrong login" in plain(error.content), what="refusal")
        api.account = MANAGER.model_copy(update={"role": Role.PICKER, "login": "picker.kor.1"})
        app.screen.query_one("#login", Input).value = "picker.kor.1"
        app.screen.query_one("#password", Input).focus()
        await pilot.press(*"manager-demo", "enter")
        await wait_for(pilot, lambda: "not a city manager" in plain(error.content))
        assert isinstance(app.screen, LoginScreen)
        assert api.called("login")[-1][0] == ("picker.kor.1",)
        assert app.client.token is None  # the picker's token is not kept


async def test_password_from_the_environment_logs_in_at_once(feed: FakeFeedServer) -> None:
    api = FakeOpsApi(socket_url=feed.url)
    app = tower(api, login="manager.blr", password="manager-demo")
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        assert api.called("login")


async def test_an_existing_token_skips_the_login(feed: FakeFeedServer) -> None:
    api = FakeOpsApi(socket_url=feed.url)
    app = tower(api, token="tok-manager.blr")
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        assert api.called("me") and not api.called("login")
        assert app.city_id == "BLR"


async def test_another_city_refused_by_the_feed_goes_back_to_login(feed: FakeFeedServer) -> None:
    feed.refuse_with = 4403
    api = logged_in_api(socket_url=feed.url)
    app = tower(api, city="del")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: screen_ready(app, LoginScreen) and app.screen.query("#login-error"),
            what="login",
        )
        error = plain(app.screen.query_one("#login-error", Static).content)
        assert error == "Not allowed to watch city DEL: city DEL is not yours"
        assert feed.queries[0]["city"] == "DEL" and feed.connections == 1
        assert app.screen.query_one("#city", Input).value == "DEL"


# --- the banner and a server restart ----------------------------------------------


async def test_lost_feed_shows_the_banner_and_resumes_from_a_fresh_snapshot() -> None:
    current = {"snapshot": snapshot()}
    feed = FakeFeedServer(lambda: current["snapshot"])
    feed.start()
    api = logged_in_api(socket_url=feed.url)
    app = tower(api)
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await overview(pilot, app)
            store_screen = await drill_down(pilot, app)
            board = store_screen.query_one(PipelineBoard)
            assert len(board.columns[OrderStatus.PICKING].timers.orders) == 2
            banner = store_screen.query_one(ConnectionBanner)
            assert not banner.lost

            await asyncio.to_thread(feed.stop)
            await wait_for(pilot, lambda: banner.lost, what="banner")
            assert "Connection lost" in plain(banner.content)
            assert screen.query_one(ConnectionBanner).lost  # the overview below shows it too
            # the last known city stays on screen while the feed is down
            assert len(board.columns[OrderStatus.PICKING].timers.orders) == 2

            # the server comes back with a different city: everything follows the snapshot
            later = AT + timedelta(minutes=2)
            current["snapshot"] = snapshot(
                at=later,
                orders=[order("a1000003", "BLR-KOR", "PACKED", 730.0, at=later)],
                stores=[
                    store("BLR-KOR", risk=0.3),
                    store("BLR-HSR", risk=0.6),
                    store("BLR-IND"),
                    store("BLR-JPN"),
                    store("BLR-WHF", is_operational=True, paused_reason=None),
                ],
            )
            await asyncio.to_thread(feed.start)
            await wait_for(pilot, lambda: not banner.lost, what="banner gone")
            await wait_for(pilot, lambda: not board.columns[OrderStatus.PICKING].timers.orders)
            assert [o.order_id[:8] for o in board.columns[OrderStatus.PACKED].timers.orders] == [
                "a1000003"
            ]
            assert app.screen is store_screen  # the same screen, never rebuilt
            assert "13:02:00" in plain(store_screen.query_one("#title", Static).content)
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is screen)
            assert stores_table(app).store_ids[:2] == ["BLR-HSR", "BLR-JPN"]
            assert "PAUSED" not in {
                plain(stores_table(app).get_cell(s, "state")) for s in RISK_ORDER
            }
            assert feed.connections == 2
    finally:
        await asyncio.to_thread(feed.stop)


# --- drill-down, map, alerts ---------------------------------------------------------


async def test_store_drill_down_shows_pipeline_people_and_stock(feed: FakeFeedServer) -> None:
    app = tower(logged_in_api(socket_url=feed.url))
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        screen = await drill_down(pilot, app)
        assert screen.store_id == "BLR-KOR"
        title = plain(screen.query_one("#title", Static).content)
        assert title.startswith("BLR-KOR · Koramangala · live · radius 3.0 km")
        board = screen.query_one(PipelineBoard)
        counts = {state.value: len(col.timers.orders) for state, col in board.columns.items()}
        assert counts == {
            "CONFIRMED": 2,
            "PICKING": 2,
            "PACKED": 1,
            "DISPATCHED": 0,
            "OUT_FOR_DELIVERY": 1,
        }
        riders = screen.query_one("#riders", KeyedTable)
        assert [plain(riders.get_row_at(i)[0]) for i in range(riders.row_count)] == [
            "Ravi Kumar",
            "Anil P",
            "Suresh M",
            "Imran S",
        ]
        pickers = screen.query_one("#pickers", KeyedTable)
        doing = {plain(pickers.get_row_at(i)[0]): plain(pickers.get_row_at(i)[1]) for i in range(3)}
        assert doing == {
            "Deepa R": "a1000004 short pick",
            "Lakshmi V": "free",
            "Priya N": "a1000003 picking",
        }
        assert plain(screen.query_one("#stock", Static).content) == (
            "12 low · 3 at risk in 24 h\n2 sold out today · 3 empty since before today"
        )
        store_alerts = screen.query_one(CityAlertsPanel)
        assert {a.store_id for a in store_alerts.alerts} == {"BLR-KOR"}
        assert "queue 12" in plain(screen.query_one("#store-stats", Static).content)

        # an order moves on, one is delivered, a rider goes out: the same widgets update
        row_objects = dict(riders.rows)
        feed.send(
            changes(
                orders=[order("a1000001", "BLR-KOR", "PICKING", 46.0)],
                removed_orders=[uid("a1000006")],
                riders=[rider("e1000002", status="RETURNING")],
            )
        )
        await wait_for(pilot, lambda: len(board.columns[OrderStatus.PICKING].timers.orders) == 3)
        assert not board.columns[OrderStatus.OUT_FOR_DELIVERY].timers.orders
        await wait_for(
            pilot, lambda: plain(riders.get_cell(str(uid("e1000002")), "status")) == "returning"
        )
        assert dict(riders.rows) == row_objects  # same order: cells updated, rows kept

        await pilot.press("escape")
        await wait_for_screen(pilot, OverviewScreen, what="back")


PAUSE_ENTRY = AuditEntry(
    entry_id=7,
    at=AT,
    actor_id=MANAGER.id,
    city_id="BLR",
    action="store.pause",
    target="BLR-WHF",
    reason="heavy rain",
)


async def test_map_and_alerts_screens(feed: FakeFeedServer) -> None:
    api = logged_in_api(socket_url=feed.url)
    api.audit = [PAUSE_ENTRY]
    app = tower(api)
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        await pilot.press("m")
        await wait_for_screen(pilot, MapScreen, what="map")
        city_map = app.screen.query_one(CityMap)
        await wait_for(pilot, lambda: "Koramangala" in city_map.render().plain)
        assert len(city_map.riders) == 5 and len(city_map.drops) == 8
        assert city_map.has_focus
        await pilot.press("plus")
        assert city_map.zoom == 2
        await pilot.press("escape")
        await wait_for_screen(pilot, OverviewScreen)

        await pilot.press("a")
        await wait_for_screen(pilot, AlertsScreen, what="alerts")
        screen = cast(AlertsScreen, app.screen)
        audit = screen.query_one("#audit", KeyedTable)
        await wait_for(pilot, lambda: audit.row_count == 1, what="audit log")
        assert [plain(c) for c in audit.get_row_at(0)] == [
            "13:00:00",
            "store.pause",
            "BLR-WHF",
            "heavy rain",
        ]
        panel = screen.query_one(CityAlertsPanel)
        assert len(panel.alerts) == 4 and panel.has_focus
        await pilot.press("k")
        await wait_for(pilot, lambda: api.called("acknowledge_alert"), what="ack")
        assert api.called("acknowledge_alert")[0][0] == (str(uid("f1000001")),)
        await wait_for(pilot, lambda: panel.alerts[-1].acknowledged, what="shown acknowledged")
        await wait_for(pilot, lambda: len(api.called("audit_log")) == 2, what="audit reloaded")
        await pilot.press("a")
        await wait_for_screen(pilot, OverviewScreen)


async def test_footer_shows_the_keys() -> None:
    app = tower(logged_in_api(), feed=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_screen(pilot, OverviewScreen)
        app.post_message(FeedReceived(snapshot()))
        await overview(pilot, app)
        keys = shown_keys(app)
        for key, what in {
            "m": "Map",
            "a": "Alerts",
            "p": "Pause/resume",
            "r": "Radius",
            "k": "Ack alert",
            "s": "Stop sale",
            "q": "Quit",
        }.items():
            assert keys.get(key) == what, key
        assert "Open store" in keys.values()
        await drill_down(pilot, app)
        keys = shown_keys(app)
        assert {"g": "Reassign", "x": "Cancel order"}.items() <= keys.items()
        assert "Back" in keys.values()


@pytest.fixture
def utc_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This machine's zone is UTC (as on a server or in a container)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_times_are_shown_in_the_citys_zone_by_default(utc_machine: None) -> None:
    app = tower(logged_in_api(), feed=False, tz=None)  # no --tz: the city's zone
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_screen(pilot, OverviewScreen)
        app.post_message(FeedReceived(snapshot()))  # BLR, in Asia/Kolkata
        screen = await overview(pilot, app)
        assert plain(screen.query_one("#title", Static).content).endswith("as of 18:30:00 IST")
        first = screen.query_one(CityAlertsPanel).alerts[0]
        assert f"{first.raised_at:%H:%M}" == "18:26"  # 12:56 UTC
        api = cast(FakeOpsApi, app.client)
        api.audit = [PAUSE_ENTRY]
        await pilot.press("a")
        await wait_for_screen(pilot, AlertsScreen, what="alerts")
        table = app.screen.query_one("#audit", KeyedTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="the audit log")
        assert plain(table.get_row_at(0)[0]) == "18:30:00"


async def test_times_are_shown_in_the_chosen_zone() -> None:
    ist = ZoneInfo("Asia/Kolkata")
    app = tower(logged_in_api(), feed=False, tz=ist)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_screen(pilot, OverviewScreen)
        app.post_message(FeedReceived(snapshot()))
        screen = await overview(pilot, app)
        assert plain(screen.query_one("#title", Static).content).endswith("as of 18:30:00 IST")
        first = screen.query_one(CityAlertsPanel).alerts[0]
        assert first.raised_at.utcoffset() == timedelta(hours=5, minutes=30)
        assert first.raised_at.astimezone(UTC) == AT - timedelta(minutes=4)
