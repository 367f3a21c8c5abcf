"""A plain map of the route for a glance at a red light: the rider (●), the store (S) and
the drops by number, joined in riding order by dotted straight lines, north up. No streets
(the handheld has no road data); the turn list beside it says where each leg heads."""

from __future__ import annotations

import itertools
import math

from rich.text import Text
from textual.widget import Widget

from shared.geo import LatLng, haversine_m

ASPECT = 2.0  # a terminal cell is about twice as tall as it is wide
MARGIN = 2  # cells kept free at each edge, so marks and labels stay inside
YOU = "●"
PATH = "·"


class RouteMap(Widget):
    """Points in riding order: (mark, where); the first may be the rider ("you")."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: list[tuple[str, LatLng]] = []

    def show(self, points: list[tuple[str, LatLng]]) -> None:
        self.points = points
        self.border_subtitle = self._scale()
        self.refresh()

    def _scale(self) -> str:
        """How far apart the farthest points are, for a sense of size."""
        if len(self.points) < 2:
            return ""
        span = max(haversine_m(a, b) for _, a in self.points for _, b in self.points)
        return (
            f"N ↑ · across {span / 1000:.1f} km" if span >= 1000 else f"N ↑ · across {span:.0f} m"
        )

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if not self.points or width < 2 * MARGIN + 1 or height < 2 * MARGIN + 1:
            return Text("no position yet" if not self.points else "", style="dim")
        cells = self._project(width, height)
        grid = [[" "] * width for _ in range(height)]
        styles: dict[tuple[int, int], str] = {}
        for (x0, y0), (x1, y1) in itertools.pairwise(cells):
            steps = max(abs(x1 - x0), abs(y1 - y0), 1)
            for i in range(1, steps):
                x = x0 + round((x1 - x0) * i / steps)
                y = y0 + round((y1 - y0) * i / steps)
                grid[y][x] = PATH
        for (mark, _), (x, y) in zip(self.points, cells, strict=True):
            glyph = YOU if mark == "you" else mark[0]
            grid[y][x] = glyph
            styles[(x, y)] = "bold reverse" if mark != "you" else "bold"
        text = Text(no_wrap=True, overflow="crop")
        for y, row in enumerate(grid):
            for x, char in enumerate(row):
                text.append(char, style=styles.get((x, y), "dim" if char == PATH else ""))
            if y < height - 1:
                text.append("\n")
        return text

    def _project(self, width: int, height: int) -> list[tuple[int, int]]:
        """Each point's cell: an equirectangular view of the points' box, north up, one
        scale for both axes (so a leg's direction on screen is its direction on the road)."""
        lat0 = math.radians(sum(p.lat for _, p in self.points) / len(self.points))
        xs = [p.lng * math.cos(lat0) for _, p in self.points]
        ys = [p.lat for _, p in self.points]
        span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
        room_x, room_y = width - 1 - 2 * MARGIN, height - 1 - 2 * MARGIN
        # cells per degree: the tighter axis decides (y cells are ASPECT times taller)
        scale = min(
            room_x / span_x if span_x else math.inf,
            room_y * ASPECT / span_y if span_y else math.inf,
        )
        if math.isinf(scale):
            scale = 0.0
        mid_x, mid_y = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
        cells = []
        for x, y in zip(xs, ys, strict=True):
            cx = round(width / 2 - 0.5 + (x - mid_x) * scale)
            cy = round(height / 2 - 0.5 - (y - mid_y) * scale / ASPECT)
            cells.append((min(max(cx, 0), width - 1), min(max(cy, 0), height - 1)))
        return cells
