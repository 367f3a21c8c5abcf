"""PipelineBoard: columns by state, timers that tick and change colour at the SLA marks."""

from __future__ import annotations

from rich.color import Color
from textual.app import App, ComposeResult

from control_tower.widgets.models import PipelineOrder
from control_tower.widgets.pipeline import PIPELINE_STATES, PipelineBoard, column_for
from control_tower.widgets.style import LEVEL_COLOUR, Level
from shared.enums import OrderStatus


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class BoardApp(App[None]):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    def compose(self) -> ComposeResult:
        # A long tick: the test drives time itself.
        yield PipelineBoard(clock=self.clock, tick_s=3600)


ORDERS = [
    PipelineOrder("aaaaaaaa-0001", "PICKING", age_s=100),
    PipelineOrder("bbbbbbbb-0002", "PICKING", age_s=629),  # just under amber
    PipelineOrder("cccccccc-0003", "PARTIALLY_FULFILLED", age_s=700),
    PipelineOrder("dddddddd-0004", "OUT_FOR_DELIVERY", age_s=805),  # just under red
    PipelineOrder("eeeeeeee-0005", "PLACED", age_s=5),  # not in a store column yet
    PipelineOrder("ffffffff-0006", "DELIVERED", age_s=600),
]


def colour_of(level: Level) -> Color:
    return Color.parse(LEVEL_COLOUR[level])


def test_column_for_state() -> None:
    assert [column_for(s) for s in PIPELINE_STATES] == list(PIPELINE_STATES)
    assert column_for(OrderStatus.PARTIALLY_FULFILLED) is OrderStatus.PICKING
    assert column_for(OrderStatus.PLACED) is None
    assert column_for(OrderStatus.DELIVERED) is None
    assert column_for(OrderStatus.CANCELLED) is None


async def test_orders_land_in_their_columns_oldest_first() -> None:
    clock = FakeClock()
    app = BoardApp(clock)
    async with app.run_test(size=(120, 20)) as pilot:
        board = app.query_one(PipelineBoard)
        board.set_orders(ORDERS)
        await pilot.pause()
        picking = board.columns[OrderStatus.PICKING]
        assert [o.order_id[:8] for o in picking.timers.orders] == [
            "cccccccc",
            "bbbbbbbb",
            "aaaaaaaa",
        ]
        assert picking.border_title == "Picking · 3"
        assert board.columns[OrderStatus.OUT_FOR_DELIVERY].border_title == "En route · 1"
        assert board.columns[OrderStatus.CONFIRMED].timers.render_at(clock.now).plain == "—"


async def test_timer_text_and_colour_at_a_given_time() -> None:
    clock = FakeClock()
    app = BoardApp(clock)
    async with app.run_test(size=(120, 20)) as pilot:
        board = app.query_one(PipelineBoard)
        board.set_orders(ORDERS)
        await pilot.pause()
        timers = board.columns[OrderStatus.PICKING].timers
        text = timers.render_at(clock.now)
        assert text.plain.split("\n") == [
            "◐ cccccccc 11:40",
            "● bbbbbbbb 10:29",
            "● aaaaaaaa  1:40",
        ]
        # One second on, the 629 s order crosses 70 % of its 900 s SLA.
        later = timers.render_at(clock.now + 1).split()
        assert later[1].plain == "● bbbbbbbb 10:30"
        assert later[1].spans[-1].style == f"bold {LEVEL_COLOUR[Level.WARN]}"


async def test_rendered_frame_ticks_and_turns_red() -> None:
    clock = FakeClock()
    app = BoardApp(clock)
    async with app.run_test(size=(120, 20)) as pilot:
        board = app.query_one(PipelineBoard)
        board.set_orders(ORDERS)
        await pilot.pause()
        column = board.columns[OrderStatus.OUT_FOR_DELIVERY]

        def timer_segment() -> tuple[str, Color | None]:
            strip = column.timers.render_line(0)
            segment = next(s for s in strip if ":" in s.text)
            return segment.text.strip(), segment.style.color if segment.style else None

        assert timer_segment() == ("13:25", colour_of(Level.WARN))
        assert column.border_subtitle == ""

        clock.now += 5  # 810 s: 90 % of the SLA
        board.tick()
        await pilot.pause()
        assert timer_segment() == ("13:30", colour_of(Level.CRIT))
        assert column.border_subtitle == "1 late"


async def test_new_batch_restarts_the_elapsed_time() -> None:
    clock = FakeClock()
    app = BoardApp(clock)
    async with app.run_test(size=(120, 20)) as pilot:
        board = app.query_one(PipelineBoard)
        board.set_orders([PipelineOrder("aaaaaaaa", "PACKED", age_s=60)])
        clock.now += 30
        board.set_orders([PipelineOrder("aaaaaaaa", "PACKED", age_s=95)])
        await pilot.pause()
        timers = board.columns[OrderStatus.PACKED].timers
        assert timers.render_at(clock.now).plain == "● aaaaaaaa  1:35"
