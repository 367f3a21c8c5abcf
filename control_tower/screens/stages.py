"""Where the minutes go: per store, p50 / p90 of each stage of an order's way to the door
(placed -> confirmed -> picking -> packed -> picked up -> at the door -> delivered) over the
last hour of the city's clock, from GET /v1/ops/stages, asked again every few seconds."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from control_tower.context import TowerContext
from control_tower.screens.base import KeyedTable, LiveScreen
from control_tower.widgets.style import LEVEL_COLOUR, Level, format_age
from qc_tui.api import describe
from qc_tui.banner import ConnectionBanner
from shared.client import ApiError
from shared.schemas.ops import StageBreakdown, StageFigures

STAGE_HEADS = (  # each stage from the one before: placed ->
    ("confirm", "→confirmed"),
    ("queue", "→picking"),
    ("pick", "→packed"),
    ("handover", "→picked up"),
    ("ride", "→at door"),
    ("door", "→delivered"),
    ("total", "placed→delivered"),
)
COLUMNS = (("store", "Store"), *STAGE_HEADS, ("n", "Delivered"))
REFRESH_S = 5.0  # real seconds between asks
WINDOW_MIN = 60
PROMISE_S = 600  # the 10-minute promise: a total p90 beyond it is red


def figures_cell(figures: StageFigures) -> Text:
    """``1:05 / 2:30`` (p50 / p90), or a dash when no order finished the stage."""
    if figures.p50_s is None or figures.p90_s is None:
        return Text("—", style="dim", justify="center")
    text = Text(f"{format_age(figures.p50_s)} / ", justify="center")
    late = figures.stage == "total" and figures.p90_s > PROMISE_S
    text.append(format_age(figures.p90_s), style=f"bold {LEVEL_COLOUR[Level.CRIT]}" if late else "")
    return text


def breakdown_rows(breakdown: StageBreakdown) -> dict[str, list[str | Text]]:
    rows: dict[str, list[str | Text]] = {}
    for store in breakdown.stores:
        by_stage = {f.stage: f for f in store.stages}
        cells: list[str | Text] = [store.store_id]
        for key, _ in STAGE_HEADS:
            figures = by_stage.get(key)
            cells.append(figures_cell(figures) if figures else Text("—", style="dim"))
        total = by_stage.get("total")
        cells.append(Text(str(total.count if total else 0), justify="right"))
        rows[store.store_id] = cells
    return rows


class StagesScreen(LiveScreen):
    BINDINGS = [
        Binding("escape,w", "app.pop_screen", "Back"),
        Binding("m", "app.open_map", "Map"),
    ]

    def __init__(self, ctx: TowerContext, *, refresh_s: float = REFRESH_S) -> None:
        super().__init__(ctx)
        self.refresh_s = refresh_s
        self.breakdown: StageBreakdown | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="title", classes="title", markup=False)
        yield ConnectionBanner()
        yield Static(
            f"p50 / p90 (m:ss) of the stages that ended in the last {WINDOW_MIN} min of the "
            "city's clock · the rider's wait at the store is inside packed→picked up",
            id="stages-note",
            markup=False,
        )
        yield KeyedTable(COLUMNS, id="stages")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#stages").border_title = "Where the minutes go"
        self.query_one(KeyedTable).focus()
        self.load()
        self.set_interval(self.refresh_s, self.load)

    def update_view(self, changed: frozenset[str]) -> None:
        self.query_one("#title", Static).update(
            f"Where the minutes go · {self.ctx.city_id} · {self.as_of()}"
        )

    @work(exclusive=True, group="stages")
    async def load(self) -> None:
        note = self.query_one("#stages-note", Static)
        try:
            breakdown = await self.ctx.client.stage_breakdown(
                self.ctx.city_id, window_min=WINDOW_MIN
            )
        except ApiError as exc:
            note.update(Text(f"Could not load the stages: {describe(exc)}", style="red"))
            return
        self.breakdown = breakdown
        self.query_one(KeyedTable).set_rows(breakdown_rows(breakdown))
