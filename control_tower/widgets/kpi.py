"""KPI tiles: a label, a big number, an optional trend, coloured by thresholds."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget

from control_tower.widgets.models import KpiValue
from control_tower.widgets.style import LEVEL_COLOUR, Level, threshold_level


class KpiTile(Widget):
    """One KPI. Set ``value``/``delta`` (or call :meth:`set`) to update it in place.

    ``warn_at``/``crit_at`` colour the tile; with ``higher_is_worse=False`` they are
    floors instead (e.g. idle riders). The delta arrow is red when the KPI moves the bad
    way and green when it moves the good way.
    """

    DEFAULT_CSS = """
    KpiTile {
        width: 1fr;
        min-width: 14;
        height: 4;
        padding: 0 1;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
    }
    KpiTile.-warn { border: round $warning; }
    KpiTile.-crit { border: round $error; }
    """

    value: reactive[float | None] = reactive(None)
    delta: reactive[float | None] = reactive(None)
    note: reactive[str | None] = reactive(None)

    def __init__(
        self,
        key: str,
        label: str,
        *,
        warn_at: float | None = None,
        crit_at: float | None = None,
        higher_is_worse: bool = True,
        fmt: str = "{:,.0f}",
        unit: str = "",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.key = key
        self.warn_at = warn_at
        self.crit_at = crit_at
        self.higher_is_worse = higher_is_worse
        self.fmt = fmt
        self.unit = unit
        self.border_title = label

    @property
    def level(self) -> Level:
        if self.value is None:
            return Level.OK
        return threshold_level(
            self.value, self.warn_at, self.crit_at, higher_is_worse=self.higher_is_worse
        )

    def set(self, value: float, delta: float | None = None, note: str | None = None) -> None:
        self.value = value
        self.delta = delta
        self.note = note

    def watch_value(self) -> None:
        level = self.level
        self.set_class(level is Level.WARN, "-warn")
        self.set_class(level is Level.CRIT, "-crit")

    def render(self) -> Text:
        if self.value is None:
            return Text("—", style="dim")
        text = Text(self.fmt.format(self.value), style=f"bold {LEVEL_COLOUR[self.level]}")
        if self.unit:
            text.append(f" {self.unit}", style="dim")
        text.append("\n")
        text.append_text(self._trend())
        return text

    def _trend(self) -> Text:
        if self.note is not None:
            return Text(self.note, style="dim")
        if self.delta is None:
            return Text("")
        if self.delta == 0:
            return Text("= 0", style="dim")
        worse = (self.delta > 0) == self.higher_is_worse
        arrow = "▲" if self.delta > 0 else "▼"
        colour = LEVEL_COLOUR[Level.CRIT if worse else Level.OK]
        return Text(f"{arrow} {self.fmt.format(abs(self.delta))}", style=colour)


class KpiBar(Horizontal):
    """A row of KPI tiles, updated together by key."""

    DEFAULT_CSS = """
    KpiBar {
        height: auto;
    }
    """

    def __init__(
        self,
        tiles: Iterable[KpiTile],
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._tiles = {tile.key: tile for tile in tiles}

    def compose(self) -> ComposeResult:
        yield from self._tiles.values()

    def tile(self, key: str) -> KpiTile:
        return self._tiles[key]

    def set_values(self, values: Iterable[KpiValue]) -> None:
        """Update the tiles named by the readings; unknown keys are an error (typos)."""
        for reading in values:
            self._tiles[reading.key].set(reading.value, reading.delta, reading.note)
