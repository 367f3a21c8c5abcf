"""OrdersSparkline keeps the last hour and feeds Textual's Sparkline in place."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Sparkline, Static

from control_tower.widgets.sparkline import WINDOW_MINUTES, OrdersSparkline


class SparkApp(App[None]):
    def compose(self) -> ComposeResult:
        spark = OrdersSparkline()
        spark.set_series([3, 4])  # before mount: shown once composed
        yield spark


def summary(spark: OrdersSparkline) -> str:
    return str(spark.query_one(Static).content)


async def test_history_before_mount_is_shown() -> None:
    app = SparkApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        spark = app.query_one(OrdersSparkline)
        assert spark.query_one(Sparkline).data == [3, 4]
        assert summary(spark) == "now 4 · peak 4 · avg 3.5"


async def test_only_the_last_hour_is_kept() -> None:
    app = SparkApp()
    async with app.run_test() as pilot:
        spark = app.query_one(OrdersSparkline)
        sparkline = spark.query_one(Sparkline)
        spark.set_series(range(100))
        spark.push(7)
        await pilot.pause()
        assert len(spark.series) == WINDOW_MINUTES
        assert spark.series[0] == 41 and spark.series[-1] == 7
        assert spark.query_one(Sparkline) is sparkline  # same widget, new data
        assert sparkline.data == list(spark.series)
        assert summary(spark) == "now 7 · peak 99 · avg 69.0"  # (41 + ... + 99 + 7) / 60 = 68.95


async def test_empty_series() -> None:
    app = SparkApp()
    async with app.run_test() as pilot:
        spark = app.query_one(OrdersSparkline)
        spark.set_series([])
        await pilot.pause()
        assert summary(spark) == "no data yet"
