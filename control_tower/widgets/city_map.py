"""The city on a braille canvas: stores, riders, drops and the outline of the stores.

The view is fitted to the stores (plus a delivery radius around them), not to riders,
so the map stays still while riders move; riders and drops beyond it are not drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive
from textual.widget import Widget

from control_tower.widgets.braille import BRAILLE_BASE, BrailleCanvas
from control_tower.widgets.models import DropDot, RiderDot, StoreRow
from control_tower.widgets.projection import Projection, convex_hull
from control_tower.widgets.style import LEVEL_COLOUR, risk_level
from shared.enums import RiderStatus

# Insertion order is drawing priority when riders of different statuses share a cell:
# the ones carrying orders win. Offline riders are not on the map.
RIDER_COLOURS: dict[str, str] = {
    RiderStatus.DELIVERING: "#5c8cff",
    RiderStatus.ASSIGNED: "#ffb000",
    RiderStatus.AT_STORE: "#3fc5f0",
    RiderStatus.RETURNING: "#a0a0a0",
    RiderStatus.IDLE: "#4ebf71",
}
DROP_COLOUR = "#d670d6"
HULL_COLOUR = "#4a6a8a"
STORE_GLYPH = "◆"
PAUSED_STORE_GLYPH = "◇"
DEFAULT_PAD_M = 2_500.0  # about a dark store's delivery radius
MAX_ZOOM = 32.0
PAN_STEP = 0.25  # of the current view per key press

Cell = tuple[str, str]  # (character, style)


def _braille_layers(
    width: int,
    height: int,
    projection: Projection,
    stores: Sequence[StoreRow],
    riders: Sequence[RiderDot],
    drops: Sequence[DropDot],
) -> list[tuple[BrailleCanvas, str]]:
    """Dot layers with their colours, highest priority first."""
    layers: list[tuple[BrailleCanvas, str]] = []
    for status, colour in RIDER_COLOURS.items():
        canvas = BrailleCanvas(width, height)
        for rider in riders:
            if rider.status == status:
                canvas.set(*projection.project(rider.location))
        layers.append((canvas, colour))
    drop_canvas = BrailleCanvas(width, height)
    for drop in drops:
        drop_canvas.set(*projection.project(drop.location))
    layers.append((drop_canvas, DROP_COLOUR))
    hull_canvas = BrailleCanvas(width, height)
    corners = [projection.project(p) for p in convex_hull([s.location for s in stores])]
    # A closed ring for three or more corners, a single segment for two.
    ring = corners + corners[:1] if len(corners) > 2 else corners
    for (x0, y0), (x1, y1) in pairwise(ring):
        hull_canvas.line(x0, y0, x1, y1)
    layers.append((hull_canvas, HULL_COLOUR))
    return layers


def _place_stores(
    grid: list[list[Cell]], projection: Projection, stores: Sequence[StoreRow]
) -> None:
    height, width = len(grid), len(grid[0])
    glyph_at: dict[tuple[int, int], StoreRow] = {}
    # Ascending risk, so of two stores sharing a cell the riskier one is drawn.
    for store in sorted(stores, key=lambda s: s.risk):
        x, y = projection.project(store.location)
        cell = (x // 2, y // 4)
        if 0 <= cell[0] < width and 0 <= cell[1] < height:
            glyph_at[cell] = store
    taken = set(glyph_at)

    def hidden(cells: list[tuple[int, int]]) -> int:
        # Riders and drops under a label are lost from view; the outline is not.
        return sum(grid[y][x][1] not in ("", HULL_COLOUR) for x, y in cells)

    for (cx, cy), store in glyph_at.items():
        glyph = PAUSED_STORE_GLYPH if store.paused else STORE_GLYPH
        grid[cy][cx] = (glyph, f"bold {LEVEL_COLOUR[risk_level(store.risk)]}")
    brand = _shared_prefix([s.name for s in stores])
    # Riskiest stores label first, so when labels would collide theirs is the one shown.
    for (cx, cy), store in sorted(glyph_at.items(), key=lambda item: -item[1].risk):
        # the whole name; where it does not fit, the name without the brand every store
        # shares ("Malleshwaram" of "qc Malleshwaram"): a label is never cut
        names = [store.name] + ([store.name[len(brand) :]] if brand else [])
        for name in names:
            right = [(cx + 1 + i, cy) for i in range(len(name) + 1)]
            left = [(cx - len(name) - 1 + i, cy) for i in range(len(name) + 1)]
            fitting = [
                (cells, text)
                for cells, text in ((right, " " + name), (left, name + " "))
                if all(0 <= x < width and (x, y) not in taken for x, y in cells)
            ]
            if fitting:
                cells, text = min(fitting, key=lambda option: hidden(option[0]))
                for (x, y), char in zip(cells, text, strict=True):
                    grid[y][x] = (char, "bold")
                taken.update(cells)
                break


def _shared_prefix(names: Sequence[str]) -> str:
    """The leading words every name shares ("qc " of "qc Koramangala", "qc HSR Layout"),
    leaving each name at least one word of its own; "" when there is none."""
    if len(names) < 2:
        return ""
    words = [name.split(" ") for name in names]
    shared: list[str] = []
    for column in zip(*words, strict=False):
        if len(set(column)) != 1:
            break
        shared.append(column[0])
    if not shared or any(len(w) <= len(shared) for w in words):
        return ""
    return " ".join(shared) + " "


def render_map(
    width: int,
    height: int,
    stores: Sequence[StoreRow],
    riders: Sequence[RiderDot] = (),
    drops: Sequence[DropDot] = (),
    *,
    pad_m: float = DEFAULT_PAD_M,
    zoom: float = 1.0,
    centre: tuple[float, float] = (0.0, 0.0),
) -> Text:
    """The map as ``height`` lines of ``width`` cells."""
    if width < 1 or height < 1:
        return Text()
    anchors = [s.location for s in stores] or [
        *(r.location for r in riders),
        *(d.location for d in drops),
    ]
    if not anchors:
        return Text("waiting for data…", style="dim")
    projection = Projection(anchors, width * 2, height * 4, pad_m=pad_m, zoom=zoom, centre=centre)
    layers = _braille_layers(width, height, projection, stores, riders, drops)
    grid: list[list[Cell]] = []
    for row in range(height):
        line: list[Cell] = []
        for column in range(width):
            bits, style = 0, ""
            for canvas, colour in layers:
                cell_bits = canvas.cell(column, row)
                if cell_bits:
                    bits |= cell_bits
                    style = style or colour
            line.append((chr(BRAILLE_BASE + bits), style) if bits else (" ", ""))
        grid.append(line)
    _place_stores(grid, projection, stores)
    text = Text(no_wrap=True, overflow="crop")
    for y, line in enumerate(grid):
        if y:
            text.append("\n")
        for char, style in line:
            text.append(char, style)
    return text


def legend() -> str:
    """Content markup naming the colours, for the map's border."""
    riders = " ".join(
        f"[{colour}]●[/] {status.lower().replace('_', ' ')}"
        for status, colour in RIDER_COLOURS.items()
    )
    return f"{STORE_GLYPH} store  [{DROP_COLOUR}]●[/] drop  {riders}"


class CityMap(Widget, can_focus=True):
    """Stores (◆, coloured by risk, labelled; ◇ when paused), riders coloured by status,
    drops, and the outline of the stores. Arrow keys pan, + and - zoom, 0 resets."""

    DEFAULT_CSS = """
    CityMap {
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
    }
    CityMap:focus {
        border: round $primary;
    }
    """

    BINDINGS = [
        Binding("plus,equals_sign", "zoom(2)", "Zoom in", key_display="+"),
        Binding("minus", "zoom(0.5)", "Zoom out", key_display="-"),
        Binding("0", "reset_view", "Reset map"),
        Binding("left", "pan(-1, 0)", "Pan west", show=False),
        Binding("right", "pan(1, 0)", "Pan east", show=False),
        Binding("up", "pan(0, 1)", "Pan north", show=False),
        Binding("down", "pan(0, -1)", "Pan south", show=False),
    ]

    zoom: reactive[float] = reactive(1.0)
    view_centre: reactive[tuple[float, float]] = reactive((0.0, 0.0))

    def __init__(
        self,
        *,
        pad_m: float = DEFAULT_PAD_M,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.pad_m = pad_m
        self.stores: tuple[StoreRow, ...] = ()
        self.riders: tuple[RiderDot, ...] = ()
        self.drops: tuple[DropDot, ...] = ()
        self.border_title = "City map"
        self.border_subtitle = legend()

    def set_data(
        self,
        *,
        stores: Iterable[StoreRow] | None = None,
        riders: Iterable[RiderDot] | None = None,
        drops: Iterable[DropDot] | None = None,
    ) -> None:
        """Replace whichever layers are given; the others stay as they were."""
        if stores is not None:
            self.stores = tuple(stores)
        if riders is not None:
            self.riders = tuple(riders)
        if drops is not None:
            self.drops = tuple(drops)
        self.refresh()

    def render(self) -> Text:
        return render_map(
            self.size.width,
            self.size.height,
            self.stores,
            self.riders,
            self.drops,
            pad_m=self.pad_m,
            zoom=self.zoom,
            centre=self.view_centre,
        )

    def validate_zoom(self, zoom: float) -> float:
        return min(MAX_ZOOM, max(1.0, zoom))

    def validate_view_centre(self, centre: tuple[float, float]) -> tuple[float, float]:
        # Keep the view centre inside the fitted box so the city cannot be lost off-screen.
        return (min(0.5, max(-0.5, centre[0])), min(0.5, max(-0.5, centre[1])))

    def action_zoom(self, factor: float) -> None:
        self.zoom *= factor

    def action_pan(self, east: int, north: int) -> None:
        step = PAN_STEP / self.zoom
        east_0, north_0 = self.view_centre
        self.view_centre = (east_0 + east * step, north_0 + north * step)

    def action_reset_view(self) -> None:
        self.zoom = 1.0
        self.view_centre = (0.0, 0.0)
