"""The overview's trends: a few figures per minute over the last hours, each as a
one-line bar chart under its name and now / peak / average."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

BARS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class TrendSeries:
    label: str
    points: tuple[float | None, ...]  # one per minute, oldest first; None: no reading
    fmt: str = "{:,.0f}"  # how now and peak are written
    avg_fmt: str = "{:,.1f}"
    style: str = "cyan"


def squeeze(points: Sequence[float | None], width: int) -> list[float | None]:
    """At most ``width`` columns: consecutive minutes averaged into one (gaps ignored; a
    column with no reading at all stays a gap)."""
    if width <= 0:
        return []
    per = max(1, math.ceil(len(points) / width))
    columns: list[float | None] = []
    for start in range(0, len(points), per):
        known = [p for p in points[start : start + per] if p is not None]
        columns.append(sum(known) / len(known) if known else None)
    return columns


def bars(columns: Sequence[float | None], peak: float) -> str:
    """A bar per column scaled to ``peak``; a blank where there is no reading."""
    top = len(BARS) - 1
    return "".join(
        " " if c is None else BARS[round(c / peak * top) if peak > 0 else 0] for c in columns
    )


def summary(series: TrendSeries) -> str:
    known = [p for p in series.points if p is not None]
    if not known:
        return "no data yet"
    last = series.points[-1]
    now = "-" if last is None else series.fmt.format(last)
    peak, avg = series.fmt.format(max(known)), series.avg_fmt.format(sum(known) / len(known))
    return f"now {now} · peak {peak} · avg {avg}"


class TrendsPanel(Widget):
    """Give it the series with :meth:`set_series`; it draws them to its width."""

    DEFAULT_CSS = """
    TrendsPanel {
        height: auto;
        padding: 0 1;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
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
        self._series: tuple[TrendSeries, ...] = ()
        self.border_title = "Trends"

    @property
    def series(self) -> tuple[TrendSeries, ...]:
        return self._series

    def set_series(self, series: Sequence[TrendSeries], *, minutes: int) -> None:
        """``minutes``: the span the points cover, for the title."""
        span = f"{minutes // 60} h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes} min"
        self.border_title = f"Trends · last {span} · per minute"
        resized = len(series) != len(self._series)
        self._series = tuple(series)
        self.refresh(layout=resized)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, 2 * len(self._series))

    def render(self) -> Text:
        if not self._series:
            return Text("no data yet", style="dim")
        width = self.content_size.width
        lines = []
        for series in self._series:
            head = Text(no_wrap=True, overflow="ellipsis")
            head.append(f"{series.label}  ", style="bold")
            head.append(summary(series), style="dim")
            known = [p for p in series.points if p is not None]
            columns = squeeze(series.points, width)
            lines.append(head)
            lines.append(Text(bars(columns, max(known, default=0.0)), style=series.style))
        return Text("\n").join(lines)
