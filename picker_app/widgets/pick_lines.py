"""The pick list in walking order: one row per line, the current one highlighted."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label

from shared.schemas.picking import PickLinePublic


@dataclass(frozen=True, slots=True)
class LineView:
    """A line as the picker sees it: the server's line plus what the terminal knows."""

    line: PickLinePublic
    short_qty: int = 0  # units of the line short (ordered - to pick)
    substitute_for: str | None = None  # the name of the line this one replaces

    @property
    def complete(self) -> bool:
        return self.line.picked_qty >= self.line.quantity

    def state(self) -> str:
        ln = self.line
        if ln.awaiting_customer_until is not None:
            return "⌛ ask customer"  # the customer chooses the substitute (policy ask)
        parts = []
        if self.complete and ln.quantity > 0:
            parts.append("✔")
        if ln.quantity == 0 or self.short_qty:
            parts.append(f"short {self.short_qty}" if self.short_qty else "short")
        if ln.substitute_sku is not None:
            parts.append("→ sub")
        if self.substitute_for is not None:
            parts.append("sub")
        return " ".join(parts)


class PickLineRow(Horizontal):
    CELLS = ("marker", "bin", "name", "qty", "state")

    def __init__(self, view: LineView, *, current: bool) -> None:
        super().__init__(classes="pick-line")
        self.view = view
        self.show(view, current=current)

    def compose(self) -> ComposeResult:
        for cell, text in zip(self.CELLS, self._texts(), strict=True):
            yield Label(text, classes=cell)

    def _texts(self) -> tuple[str, ...]:
        view, ln = self.view, self.view.line
        return (
            "▶" if self.has_class("-current") else " ",
            ln.bin_code or "—",
            ln.name if view.substitute_for is None else f"↳ {ln.name}",
            f"{ln.picked_qty}/{ln.quantity}",
            view.state(),
        )

    def show(self, view: LineView, *, current: bool) -> None:
        self.view = view
        ln = view.line
        self.set_class(current, "-current")
        self.set_class(view.complete and ln.quantity > 0, "-done")
        self.set_class(ln.quantity == 0 or view.short_qty > 0, "-short")
        self.set_class(view.substitute_for is not None, "-sub")
        self.set_class(ln.awaiting_customer_until is not None, "-waiting")
        labels = list(self.query(Label))
        if labels:
            for label, text in zip(labels, self._texts(), strict=True):
                label.update(text)


class PickLines(VerticalScroll, can_focus=False):
    """Rows in walking order. ``cursor`` is the index of the highlighted line."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.views: list[LineView] = []
        self.cursor = 0

    async def set_lines(self, views: list[LineView], cursor: int) -> None:
        self.cursor = max(0, min(cursor, len(views) - 1))
        rows = list(self.query(PickLineRow))
        if [r.view.line.sku_id for r in rows] == [v.line.sku_id for v in views]:
            for i, (row, view) in enumerate(zip(rows, views, strict=True)):
                row.show(view, current=i == self.cursor)
        else:
            await self.remove_children()
            rows = [PickLineRow(v, current=i == self.cursor) for i, v in enumerate(views)]
            await self.mount_all(rows)
        self.views = views
        if rows:
            rows[self.cursor].scroll_visible(animate=False)

    def move_cursor(self, cursor: int) -> None:
        if not self.views:
            return
        self.cursor = max(0, min(cursor, len(self.views) - 1))
        for i, row in enumerate(self.query(PickLineRow)):
            row.show(row.view, current=i == self.cursor)
            if i == self.cursor:
                row.scroll_visible(animate=False)
