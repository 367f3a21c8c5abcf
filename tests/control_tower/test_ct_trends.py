"""The overview's trends: per-minute accumulation of the feed (bucket boundaries, gaps,
the 3-hour window) and the panel on the overview after a few feed messages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from control_tower.screens.overview import OverviewScreen
from control_tower.trends import WINDOW_MINUTES, Trends, late_share, minute_of
from control_tower.widgets.trends import TrendsPanel, bars, squeeze
from tests.control_tower.ct_app_fakes import (
    AT,
    FakeFeedServer,
    changes,
    city,
    logged_in_api,
    store,
    stores,
    tower,
)
from tests.helpers import wait_for, wait_for_screen

MIN = timedelta(minutes=1)


def idle(n: int) -> list[Any]:
    """The city's stores with ``n`` idle riders in all (at the first store)."""
    rows = [s.model_copy(update={"idle_riders": 0}) for s in stores()]
    rows[0] = rows[0].model_copy(update={"idle_riders": n})
    return rows


def test_a_minute_is_the_server_minute_and_its_last_sample_wins() -> None:
    trends = Trends()
    trends.record(AT - timedelta(seconds=1), None, idle(3))  # 12:59:59
    trends.record(AT, None, idle(5))  # 13:00:00 opens the next minute
    trends.record(AT + timedelta(seconds=59), None, idle(7))  # still 13:00
    assert trends.minutes == [AT - MIN, AT]
    assert trends.series("idle_riders") == [3, 7]
    assert trends.newest == minute_of(AT)


def test_a_minute_no_message_reached_stays_a_gap() -> None:
    trends = Trends()
    trends.record(AT, None, idle(2))
    trends.record(AT + 3 * MIN + timedelta(seconds=5), None, idle(4))
    assert trends.series("idle_riders") == [2, None, None, 4]
    assert trends.series("late_share")[1:3] == [None, None]


def test_orders_are_the_server_counts_ending_at_the_message_minute() -> None:
    trends = Trends()
    trends.record(AT + timedelta(seconds=30), city(orders_per_minute=[4, 5, 6]), idle(1))
    assert trends.minutes == [AT - 2 * MIN, AT - MIN, AT]
    assert trends.series("orders") == [4, 5, 6]
    assert trends.series("idle_riders") == [None, None, 1]  # sampled now only
    # a minute later the server's count for 13:00 is final: it replaces the partial one
    trends.record(AT + MIN, city(orders_per_minute=[5, 9, 2]), idle(1))
    assert trends.series("orders") == [4, 5, 9, 2]


def test_the_window_keeps_the_last_three_hours() -> None:
    trends = Trends()
    trends.record(AT, None, idle(1))
    trends.record(AT + (WINDOW_MINUTES - 1) * MIN, None, idle(2))
    assert len(trends.minutes) == WINDOW_MINUTES and trends.minutes[0] == AT
    trends.record(AT + WINDOW_MINUTES * MIN, None, idle(3))  # 13:00 falls out
    assert trends.minutes == [AT + (WINDOW_MINUTES - 1) * MIN, AT + WINDOW_MINUTES * MIN]
    assert trends.series("idle_riders") == [2, 3]


def test_late_share_is_breaches_over_active_orders() -> None:
    rows = [store("BLR-KOR", orders_by_state={"PICKING": 3, "PACKED": 1}, predicted_breaches=1)]
    assert late_share(rows) == 0.25
    assert late_share([store("BLR-KOR", orders_by_state={}, predicted_breaches=0)]) == 0.0


def test_bars_average_minutes_into_columns_and_keep_gaps() -> None:
    assert squeeze([1, 3, None, None, 8], 3) == [2, None, 8]
    assert bars([0, None, 4, 8], 8) == "▁ ▅█"


async def test_the_overview_shows_the_trends_after_a_few_feed_messages(
    feed: FakeFeedServer,
) -> None:
    app = tower(logged_in_api(socket_url=feed.url))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for_screen(pilot, OverviewScreen, what="overview")
        panel = app.screen.query_one(TrendsPanel)
        await wait_for(pilot, lambda: bool(panel.series), what="first trends")
        feed.send(changes(at=AT + MIN, stores=idle(6)))
        feed.send(changes(at=AT + 3 * MIN, stores=idle(9)))
        await wait_for(pilot, lambda: panel.series[2].points[-1] == 9, what="third minute")
        labels = [s.label for s in panel.series]
        assert labels == ["Orders / min", "Going late %", "Idle riders"]
        assert panel.series[2].points[-3:] == (6, None, 9)
        text = panel.render().plain
        assert "Idle riders  now 9 · peak 10 · avg 8.3" in text
        assert panel.border_title == "Trends · last 33 min · per minute"
        assert panel.region.height == 8 and panel.region.width > 60
