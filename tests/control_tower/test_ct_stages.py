"""The tower's "where the minutes go" screen (w): per store, p50 / p90 of each stage from
GET /v1/ops/stages, the total's p90 red past the 10-minute promise, a dash where no order
finished the stage; asked again while it is open."""

from __future__ import annotations

from typing import cast

from rich.text import Text

from control_tower.screens.base import KeyedTable
from control_tower.screens.overview import OverviewScreen
from control_tower.screens.stages import COLUMNS, StagesScreen
from tests.control_tower.ct_app_fakes import logged_in_api, tower
from tests.helpers import footer_keys, wait_for, wait_for_screen


async def test_w_opens_the_stage_breakdown_per_store() -> None:
    api = logged_in_api()
    app = tower(api, feed=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for_screen(pilot, OverviewScreen, what="overview")
        assert footer_keys(app)["w"] == "Minutes"
        await pilot.press("w")
        await wait_for_screen(pilot, StagesScreen, what="stages")
        screen = cast(StagesScreen, app.screen)
        table = screen.query_one(KeyedTable)
        await wait_for(pilot, lambda: table.row_count == 3, what="stores listed")
        assert api.called("stage_breakdown")[0] == (("BLR",), {"window_min": 60})
        keys = [key for key, _ in COLUMNS]
        kor = dict(zip(keys, table.get_row("BLR-KOR"), strict=True))
        assert str(kor["pick"]) == "1:50 / 3:10"
        total = cast(Text, kor["total"])
        assert total.plain == "8:40 / 11:30"
        assert any("bold" in str(span.style) for span in total.spans)  # past the promise
        assert str(kor["n"]) == "42"
        ind = dict(zip(keys, table.get_row("BLR-IND"), strict=True))
        assert (
            cast(Text, ind["total"]).plain == "6:56 / 9:12" and not cast(Text, ind["total"]).spans
        )
        hsr = dict(zip(keys, table.get_row("BLR-HSR"), strict=True))
        assert str(hsr["total"]) == "—" and str(hsr["n"]) == "0"

        screen.load()  # the periodic ask, now
        await wait_for(pilot, lambda: len(api.called("stage_breakdown")) >= 2, what="asked again")
        await pilot.press("escape")
        await wait_for_screen(pilot, OverviewScreen, what="back")
