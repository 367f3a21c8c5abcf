"""A store closed by its hours reads closed in the tower, with when it opens, not "live"
(issue 22: a closed store looked like a coverage problem)."""

from __future__ import annotations

from control_tower.screens.store import StoreScreen
from control_tower.widgets.stores_table import StoresTable
from tests.control_tower.ct_app_fakes import logged_in_api, tower
from tests.control_tower.ct_pilot import SIZE, overview, plain
from tests.helpers import wait_for_screen


async def test_a_closed_store_says_when_it_opens(feed) -> None:
    app = tower(logged_in_api(socket_url=feed.url))
    async with app.run_test(size=SIZE) as pilot:
        screen = await overview(pilot, app)
        table = screen.query_one(StoresTable)
        states = {str(key.value): plain(table.get_cell(key, "state")) for key in table.rows}
        assert states["BLR-JPN"] == "closed"  # the store screen says until when
        assert states["BLR-KOR"] == "live" and states["BLR-WHF"] == "PAUSED"
        table.move_cursor(row=table.get_row_index("BLR-JPN"))
        await pilot.press("enter")
        await wait_for_screen(pilot, StoreScreen, what="store")
        title = plain(app.screen.query_one("#title").content)  # type: ignore[attr-defined]
        assert title.startswith("BLR-JPN · JP Nagar · closed · opens Tue 06:00")
