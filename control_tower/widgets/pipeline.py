"""A store's order pipeline: a column per state, a ticking timer per order.

Ages arrive as of the moment the data was produced; between updates each timer keeps
counting from ``age_s`` plus the time elapsed since its batch arrived, so the board
ticks every second without the server resending anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget

from control_tower.widgets.models import PipelineOrder
from control_tower.widgets.style import LEVEL_COLOUR, Level, format_age, sla_level
from shared.enums import OrderStatus

Clock = Callable[[], float]

PIPELINE_STATES: tuple[OrderStatus, ...] = (
    OrderStatus.CONFIRMED,
    OrderStatus.PICKING,
    OrderStatus.PACKED,
    OrderStatus.DISPATCHED,
    OrderStatus.OUT_FOR_DELIVERY,
)

COLUMN_TITLES: dict[OrderStatus, str] = {
    OrderStatus.CONFIRMED: "Confirmed",
    OrderStatus.PICKING: "Picking",
    OrderStatus.PACKED: "Packed",
    OrderStatus.DISPATCHED: "Dispatched",
    OrderStatus.OUT_FOR_DELIVERY: "En route",
}

_COLUMN_OF: dict[str, OrderStatus] = {state.value: state for state in PIPELINE_STATES}
# A short-picked order still has to be packed, so it waits among the ones being picked.
_COLUMN_OF[OrderStatus.PARTIALLY_FULFILLED.value] = OrderStatus.PICKING

ID_CHARS = 8  # the leading characters of a UUID are enough to tell orders apart on screen


def column_for(state: str) -> OrderStatus | None:
    """The board column an order state belongs to; None for PLACED and finished orders."""
    return _COLUMN_OF.get(state)


class OrderTimers(Widget):
    """The orders of one column, oldest first, each with its SLA-coloured timer."""

    DEFAULT_CSS = """
    OrderTimers {
        height: auto;
    }
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self._orders: tuple[PipelineOrder, ...] = ()
        self._received_at = 0.0

    @property
    def orders(self) -> tuple[PipelineOrder, ...]:
        return self._orders

    def set_orders(self, orders: Sequence[PipelineOrder], received_at: float) -> None:
        resized = len(orders) != len(self._orders)
        self._orders = tuple(sorted(orders, key=lambda o: (-o.age_s, o.order_id)))
        self._received_at = received_at
        self.refresh(layout=resized)

    def age_at(self, order: PipelineOrder, now: float) -> float:
        return order.age_s + max(0.0, now - self._received_at)

    def late_at(self, now: float) -> int:
        """How many orders are red (90 % of their SLA or more) at ``now``."""
        return sum(sla_level(self.age_at(o, now), o.sla_s) is Level.CRIT for o in self._orders)

    def render_at(self, now: float) -> Text:
        """The column body as it reads at clock time ``now``."""
        if not self._orders:
            return Text("—", style="dim")
        lines = []
        for order in self._orders:
            age = self.age_at(order, now)
            level = sla_level(age, order.sla_s)
            colour = LEVEL_COLOUR[level]
            marker = "◐" if order.state == OrderStatus.PARTIALLY_FULFILLED else "●"
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(f"{marker} ", style=colour)
            line.append(order.order_id[:ID_CHARS])
            line.append(
                f" {format_age(age):>5}",
                style=f"bold {colour}" if level is not Level.OK else colour,
            )
            lines.append(line)
        return Text("\n").join(lines)

    def render(self) -> Text:
        return self.render_at(self._clock())


class PipelineColumn(VerticalScroll):
    """One state's column; focus it (Tab) to scroll a long queue with the arrow keys."""

    DEFAULT_CSS = """
    PipelineColumn {
        width: 1fr;
        min-width: 22;
        height: 1fr;
        padding: 0 1;
        border: round $panel-lighten-2;
        border-title-color: $text;
        border-subtitle-color: $error;
    }
    PipelineColumn:focus {
        border: round $primary;
    }
    """

    def __init__(self, state: OrderStatus, clock: Clock) -> None:
        super().__init__()
        self.state = state
        self._clock = clock
        self.timers = OrderTimers(clock)
        self._update_titles(clock())

    def compose(self) -> ComposeResult:
        yield self.timers

    def set_orders(self, orders: Sequence[PipelineOrder], received_at: float) -> None:
        self.timers.set_orders(orders, received_at)
        self._update_titles(received_at)

    def tick(self) -> None:
        self.timers.refresh()
        self._update_titles(self._clock())

    def _update_titles(self, now: float) -> None:
        self.border_title = f"{COLUMN_TITLES[self.state]} · {len(self.timers.orders)}"
        late = self.timers.late_at(now)
        self.border_subtitle = f"{late} late" if late else ""


class PipelineBoard(Horizontal):
    """Columns CONFIRMED → OUT_FOR_DELIVERY for one store; call :meth:`set_orders` with
    the store's whole pipeline on every update. ``clock`` is monotonic seconds."""

    DEFAULT_CSS = """
    PipelineBoard {
        height: 1fr;
    }
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        tick_s: float = 1.0,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._clock = clock
        self._tick_s = tick_s
        self.columns = {state: PipelineColumn(state, clock) for state in PIPELINE_STATES}

    def compose(self) -> ComposeResult:
        yield from self.columns.values()

    def on_mount(self) -> None:
        self.set_interval(self._tick_s, self.tick)

    def set_orders(self, orders: Iterable[PipelineOrder]) -> None:
        received_at = self._clock()
        grouped: dict[OrderStatus, list[PipelineOrder]] = {s: [] for s in PIPELINE_STATES}
        for order in orders:
            column = column_for(order.state)
            if column is not None:
                grouped[column].append(order)
        for state, column_orders in grouped.items():
            self.columns[state].set_orders(column_orders, received_at)

    def tick(self) -> None:
        """Advance every timer to the clock's current time (runs every ``tick_s``)."""
        for column in self.columns.values():
            column.tick()
