"""Moving a rider to another store from the store screen (t): a free rider of the store,
then the store that needs them (riskiest first), a reason, one API call (issue 22)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from control_tower.screens.dialogs import ReasonScreen
from control_tower.screens.store import StoreScreen
from qc_tui.dialogs import ChoiceScreen
from shared.client import ApiError
from tests.control_tower.ct_app_fakes import logged_in_api, tower, uid
from tests.control_tower.ct_pilot import SIZE, dialog, drill_down, overview, plain
from tests.control_tower.test_ct_app_snapshot import SIZE as SNAP_SIZE
from tests.control_tower.test_ct_app_snapshot import city_shown, snapshot_app
from tests.helpers import wait_for, wait_for_screen


def _choosing(app: Any, title: str) -> bool:
    return isinstance(app.screen, ChoiceScreen) and app.screen.title_text.startswith(title)


@pytest.mark.slow
async def test_move_a_free_rider_to_the_store_that_needs_one(feed) -> None:
    api = logged_in_api(socket_url=feed.url)
    app = tower(api)
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        store_screen = await drill_down(pilot, app)  # Koramangala
        await pilot.press("t")
        riders = await dialog(pilot, app, ChoiceScreen)
        names = [plain(o.prompt) for o in riders.query_one(OptionList).options]
        # the riders without a trip (the server refuses the others), idle first
        assert names == ["Ravi Kumar · idle 2:30", "Imran S · offline"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: _choosing(app, "Send Ravi Kumar"), what="the stores")
        stores = app.screen
        listed = [o.id for o in stores.query_one(OptionList).options]
        assert listed == ["BLR-HSR", "BLR-JPN", "BLR-IND", "BLR-WHF"]  # riskiest first
        await pilot.press("enter")
        reason = await dialog(pilot, app, ReasonScreen)
        assert reason.title_text == "Move Ravi Kumar from BLR-KOR to BLR-HSR?"
        await pilot.press(*"store short of riders", "enter")
        await wait_for(pilot, lambda: api.called("move_rider"), what="move")
        assert api.called("move_rider") == [
            ((str(uid("e1000001")),), {"store_id": "BLR-HSR", "reason": "store short of riders"})
        ]
        await wait_for(pilot, lambda: app.screen is store_screen)


@pytest.mark.slow
async def test_a_refused_move_is_reported(feed) -> None:
    api = logged_in_api(socket_url=feed.url)
    api.refuse["move_rider"] = ApiError(409, "rider_busy", "the rider is assigned on a trip")
    app = tower(api)
    notes: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await overview(pilot, app)
        await drill_down(pilot, app)
        app.notify = lambda message, **_: notes.append(str(message))  # type: ignore[method-assign]
        await pilot.press("t")
        await dialog(pilot, app, ChoiceScreen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: _choosing(app, "Send Ravi Kumar"), what="the stores")
        await pilot.press("enter")
        await dialog(pilot, app, ReasonScreen)
        await pilot.press(*"peak", "enter")
        await wait_for(pilot, lambda: bool(notes), what="the refusal")
        assert notes[-1].startswith("Could not move Ravi Kumar")
        assert "on a trip" in notes[-1]
        assert isinstance(app.screen, StoreScreen)


def test_move_rider_choice_snapshot(snap_compare: Callable[..., bool]) -> None:
    async def choosing(pilot: Pilot[Any]) -> None:
        await city_shown(pilot)
        await pilot.press("enter")
        await wait_for_screen(pilot, StoreScreen)
        await pilot.press("t")
        await wait_for_screen(pilot, ChoiceScreen)
        await pilot.press("enter")  # Ravi Kumar: now the stores to send him to
        await wait_for(
            pilot,
            lambda: _choosing(pilot.app, "Send Ravi Kumar"),
            what="the stores",
        )
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=SNAP_SIZE, run_before=choosing)
