"""The control tower's manager actions driven with the keyboard against the fake feed and
a scripted API: pause and resume, the radius, acknowledging an alert, reassigning and
cancelling an order, stopping a flash sale, and refusals reported."""

from __future__ import annotations

import pytest
from textual import events
from textual.widgets import Input, OptionList, Static

from control_tower.screens.alerts import AlertsScreen
from control_tower.screens.base import CityAlertsPanel
from control_tower.screens.dialogs import RadiusScreen, ReasonScreen
from control_tower.screens.store import StoreScreen
from control_tower.widgets.kpi import KpiBar
from control_tower.widgets.pipeline import PipelineBoard
from qc_tui.dialogs import ChoiceScreen, ConfirmScreen
from shared.client import ApiError
from shared.enums import OrderStatus
from tests.control_tower.ct_app_fakes import (
    SALE_ID,
    FakeFeedServer,
    changes,
    logged_in_api,
    tower,
    uid,
)
from tests.control_tower.ct_pilot import (
    SIZE,
    dialog,
    drill_down,
    overview,
    plain,
    stores_table,
)
from tests.helpers import screen_ready, wait_for, wait_for_screen

# --- the manager's actions -------------------------------------------------------


async def test_pause_and_resume_the_selected_store(feed: FakeFeedServer) -> None:
    api = logged_in_api(socket_url=feed.url)
    app = tower(api)
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        table = stores_table(app)
        await pilot.press("p")  # on Koramangala, the riskiest
        await dialog(pilot, app, ReasonScreen)
        await pilot.press("enter")  # no reason: refused
        assert "required" in plain(app.screen.query_one("#reason-error", Static).content)
        await pilot.press(*"flooded road", "enter")
        await wait_for(pilot, lambda: api.called("pause_store"), what="pause")
        assert api.called("pause_store") == [(("BLR-KOR",), {"reason": "flooded road"})]
        await wait_for(pilot, lambda: plain(table.get_cell("BLR-KOR", "state")) == "PAUSED")
        assert plain(table.get_cell("BLR-KOR", "risk")) == "82%"  # the feed's number stays

        # Whitefield is paused: p asks to resume it
        table.move_cursor(row=table.store_ids.index("BLR-WHF"))
        await pilot.press("p")
        confirm = await dialog(pilot, app, ConfirmScreen)
        assert "heavy rain" in confirm.detail
        await pilot.press("y")
        await wait_for(pilot, lambda: api.called("resume_store") == [(("BLR-WHF",), {})])
        await wait_for(pilot, lambda: plain(table.get_cell("BLR-WHF", "state")) == "live")


async def test_a_key_pressed_again_before_the_dialog_showed_is_not_typed_in_it(
    feed: FakeFeedServer,
) -> None:
    api = logged_in_api(socket_url=feed.url)
    app = tower(api)
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        # the app is slow to show the dialog: the manager presses p again, and that press
        # reaches the app only once the dialog is up
        again = events.Key("p", "p")
        await pilot.press("p")
        screen = await dialog(pilot, app, ReasonScreen)
        app.post_message(again)
        await pilot.pause()
        reason = screen.query_one("#reason", Input)
        assert reason.has_focus and reason.value == ""
        await pilot.press(*"flooded road", "enter")
        await wait_for(pilot, lambda: api.called("pause_store"), what="pause")
        assert api.called("pause_store") == [(("BLR-KOR",), {"reason": "flooded road"})]


async def test_pause_refused_by_the_server_is_reported(feed: FakeFeedServer) -> None:
    api = logged_in_api(socket_url=feed.url)
    api.refuse["pause_store"] = ApiError(409, "already_paused", "BLR-KOR is already paused")
    app = tower(api)
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        await pilot.press("p")
        await dialog(pilot, app, ReasonScreen)
        await pilot.press("tab", "enter")  # the first common reason
        await wait_for(pilot, lambda: api.called("pause_store"), what="pause")
        assert api.called("pause_store")[0][1] == {"reason": "picking backlog"}
        await wait_for(pilot, lambda: app._notifications, what="notification")
        assert "already paused" in list(app._notifications)[-1].message
        assert plain(stores_table(app).get_cell("BLR-KOR", "state")) == "live"


async def test_change_the_radius(feed: FakeFeedServer) -> None:
    api = logged_in_api(socket_url=feed.url)
    app = tower(api)
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        await pilot.press("down", "r")  # HSR Layout
        screen = await dialog(pilot, app, RadiusScreen)
        radius = screen.query_one("#radius", Input)
        assert radius.value == "3000"
        radius.value = ""
        await pilot.press(*"20000", "enter")
        assert "Between 500 and 10,000" in plain(screen.query_one("#radius-error", Static).content)
        radius.value = ""
        await pilot.press(*"2000", "tab", *"rain", "enter")
        await wait_for(pilot, lambda: api.called("set_store_radius"), what="radius")
        assert api.called("set_store_radius") == [
            (("BLR-HSR",), {"service_radius_m": 2000, "reason": "rain"})
        ]
        await wait_for(pilot, lambda: app.view.stores["BLR-HSR"].service_radius_m == 2000)


async def test_acknowledge_the_selected_alert_from_the_overview(feed: FakeFeedServer) -> None:
    api = logged_in_api(socket_url=feed.url)
    app = tower(api)
    async with app.run_test(size=SIZE) as pilot:
        screen = await overview(pilot, app)
        panel = screen.query_one(CityAlertsPanel)
        panel.focus()
        await pilot.press("down", "a")  # `a` opens the alerts screen, never acknowledges
        await wait_for_screen(pilot, AlertsScreen)
        assert not api.called("acknowledge_alert")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        second = panel.alerts[1].alert_id
        assert panel.highlighted_alert is not None
        assert panel.highlighted_alert.alert_id == second
        await pilot.press("k")  # the highlighted one
        await wait_for(pilot, lambda: api.called("acknowledge_alert") == [((second,), {})])
        assert panel.alerts[-1].alert_id == second  # acknowledged: last, ticked
        await wait_for(pilot, lambda: screen.query_one(KpiBar).tile("alerts").value == 3)


@pytest.mark.slow
async def test_reassign_an_order_to_another_rider_of_the_store(feed: FakeFeedServer) -> None:
    api = logged_in_api(socket_url=feed.url)
    app = tower(api)
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        await drill_down(pilot, app)
        await pilot.press("g")
        orders = await dialog(pilot, app, ChoiceScreen)
        listed = [o.id for o in orders.query_one(OptionList).options]
        # still in the store, oldest first (a1000006 is on the road: not offered)
        assert [i[:8] for i in listed] == [
            "a1000004",
            "a1000003",
            "a1000005",
            "a1000002",
            "a1000001",
        ]
        first = plain(orders.query_one(OptionList).get_option_at_index(0).prompt)
        assert first.startswith("a1000004 partially_fulfilled") and "late" in first
        third = plain(orders.query_one(OptionList).get_option_at_index(2).prompt)
        assert third.endswith("· Anil P")
        await pilot.press("down", "down", "enter")  # a1000005, carried by Anil P
        await wait_for(pilot, lambda: app.screen is not orders and screen_ready(app, ChoiceScreen))
        riders = app.screen
        names = [plain(o.prompt) for o in riders.query_one(OptionList).options]
        assert names == [
            "Ravi Kumar · idle 2:30 · 0.1 km from the store"
        ]  # the store's idle riders
        await pilot.press("enter")
        await dialog(pilot, app, ReasonScreen)
        await pilot.press(*"rider not responding", "enter")
        await wait_for(pilot, lambda: api.called("reassign_order"), what="reassign")
        assert api.called("reassign_order") == [
            (
                (str(uid("a1000005")),),
                {"rider_id": str(uid("e1000001")), "reason": "rider not responding"},
            )
        ]
        await wait_for_screen(pilot, StoreScreen)


@pytest.mark.slow
async def test_cancel_an_order_with_a_reason(feed: FakeFeedServer) -> None:
    api = logged_in_api(socket_url=feed.url)
    app = tower(api)
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        store_screen = await drill_down(pilot, app)
        await pilot.press("x")
        await dialog(pilot, app, ChoiceScreen)
        await pilot.press("end", "enter")  # the newest: a1000001
        await dialog(pilot, app, ReasonScreen)
        await pilot.press("escape")  # changed my mind: nothing is sent
        await wait_for(pilot, lambda: app.screen is store_screen)
        assert not api.called("ops_cancel_order")
        await pilot.press("x")
        await dialog(pilot, app, ChoiceScreen)
        await pilot.press("end", "enter")
        await dialog(pilot, app, ReasonScreen)
        await pilot.press(*"customer asked", "enter")
        await wait_for(pilot, lambda: api.called("ops_cancel_order"), what="cancel")
        assert api.called("ops_cancel_order") == [
            ((str(uid("a1000001")),), {"reason": "customer asked"})
        ]
        # the feed then drops it from the board
        feed.send(changes(removed_orders=[uid("a1000001")]))
        board = store_screen.query_one(PipelineBoard)
        await wait_for(pilot, lambda: len(board.columns[OrderStatus.CONFIRMED].timers.orders) == 1)


async def test_stop_a_flash_sale(feed: FakeFeedServer) -> None:
    api = logged_in_api(socket_url=feed.url)
    app = tower(api)
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        await pilot.press("s")
        await dialog(pilot, app, ChoiceScreen)
        await pilot.press("enter")
        await dialog(pilot, app, ReasonScreen)
        await pilot.press(*"pricing error", "enter")
        await wait_for(pilot, lambda: api.called("stop_flash_sale"), what="stop")
        assert api.called("stop_flash_sale") == [((str(SALE_ID),), {"reason": "pricing error"})]
