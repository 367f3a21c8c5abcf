"""Orders per minute over the last hour, as a sparkline with a one-line summary."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Sparkline, Static

WINDOW_MINUTES = 60


class OrdersSparkline(Widget):
    """Feed it whole minutes: :meth:`set_series` on (re)connect, :meth:`push` each minute."""

    DEFAULT_CSS = """
    OrdersSparkline {
        height: auto;
        padding: 0 1;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    OrdersSparkline > Sparkline {
        height: 3;
    }
    OrdersSparkline > Static {
        color: $text-muted;
    }
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._minutes: deque[float] = deque(maxlen=WINDOW_MINUTES)
        self.border_title = f"Orders / min · last {WINDOW_MINUTES} min"

    def compose(self) -> ComposeResult:
        yield Sparkline(list(self._minutes), summary_function=max)
        yield Static(self._summary(), markup=False)

    @property
    def series(self) -> tuple[float, ...]:
        return tuple(self._minutes)

    def set_series(self, per_minute: Iterable[float]) -> None:
        """Replace the history (oldest first); only the last hour is kept."""
        self._minutes.clear()
        self._minutes.extend(per_minute)
        self._show()

    def push(self, orders_in_minute: float) -> None:
        """Append the newest completed minute, dropping the oldest past an hour."""
        self._minutes.append(orders_in_minute)
        self._show()

    def _summary(self) -> str:
        if not self._minutes:
            return "no data yet"
        now, peak = self._minutes[-1], max(self._minutes)
        avg = sum(self._minutes) / len(self._minutes)
        return f"now {now:,.0f} · peak {peak:,.0f} · avg {avg:,.1f}"

    def _show(self) -> None:
        if not self.is_mounted:
            return  # compose() picks the data up
        self.query_one(Sparkline).data = list(self._minutes)
        self.query_one(Static).update(self._summary(), layout=False)
