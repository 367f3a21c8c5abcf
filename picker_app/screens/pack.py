"""Pack: count the bags, seal, label; then straight on to the next task."""

from __future__ import annotations

import math

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from picker_app.context import PickerContext
from picker_app.messages import BackToQueue, TaskPacked
from qc_tui.api import describe
from qc_tui.banner import ConnectionBanner
from qc_tui.clock import mmss
from shared.client import ApiError
from shared.schemas.picking import PackResult, PickList

UNITS_PER_BAG = 8


def summary_lines(pick: PickList, shorts: dict[str, int]) -> list[str]:
    replaced = {ln.substitute_sku: ln.name for ln in pick.lines if ln.substitute_sku}
    rows = []
    for ln in pick.lines:
        if ln.sku_id in replaced:
            rows.append(f"↳ {ln.picked_qty} x {ln.name} (for {replaced[ln.sku_id]})")
        elif ln.quantity:
            rows.append(f"✔ {ln.picked_qty} x {ln.name}")
        short = shorts.get(ln.sku_id)
        if short or ln.quantity == 0:
            rows.append(f"✘ {ln.name}: {short or 'all'} short")
    return rows


class PackScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("enter", "next", "Next task"),
    ]

    def __init__(
        self, ctx: PickerContext, pick: PickList, *, shorts: dict[str, int] | None = None
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.pick = pick
        self.order_id = str(pick.order_id)
        self.shorts = shorts or {}
        self.result: PackResult | None = None
        self.packed = False
        self._lost = False  # an attempt went unanswered: the next may find it done

    def compose(self) -> ComposeResult:
        units = sum(ln.picked_qty for ln in self.pick.lines)
        yield Static(f"Pack order {self.order_id[:8]} · {units} units", classes="title")
        yield ConnectionBanner()
        yield Static("\n".join(summary_lines(self.pick, self.shorts)), id="pack-summary")
        yield Label("Bags used")
        bags = max(1, math.ceil(units / UNITS_PER_BAG))
        yield Input(str(bags), id="bags", type="integer", max_length=2)
        yield Static("Enter: seal and label · Esc: back to the list", id="pack-result")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            bags = int(event.value)
        except ValueError:
            bags = 0
        if not 1 <= bags <= 20:
            self._result("Bags: a number from 1 to 20", error=True)
            return
        event.input.disabled = True
        self.pack(bags)

    def _result(self, text: str, *, error: bool = False, done: bool = False) -> None:
        panel = self.query_one("#pack-result", Static)
        panel.set_class(error, "-error")
        panel.set_class(done, "-done")
        panel.update(text)

    @work(exclusive=True, group="pack")
    async def pack(self, bags: int) -> None:
        """Retries by itself while the server is unreachable. Packing twice is refused
        (the task is no longer PICKING), so a retry after a lost answer checks whether
        the first attempt went through."""
        self._lost = False
        try:
            result = await self.ctx.connection.send_until_answered(
                lambda: self.ctx.client.pack(self.order_id, bag_count=bags),
                trying=lambda: self._result("Packing…"),
                waiting=self._waiting,
            )
        except ApiError as exc:
            if self._lost and exc.code == "task_not_picking" and await self._was_packed():
                self._packed(None, bags)
                return
            self._result(f"Not packed: {describe(exc)}", error=True)
            self.query_one(Input).disabled = False
            self.query_one(Input).focus()
            return
        self._packed(result, bags)

    def _waiting(self, _why: str) -> None:
        self._lost = True
        self._result("Connection lost — retrying…", error=True)

    async def _was_packed(self) -> bool:
        try:
            pick = await self.ctx.client.pick_list(self.order_id)
        except ApiError:
            return False
        return pick.status == "PACKED"

    def _packed(self, result: PackResult | None, bags: int) -> None:
        self.result, self.packed = result, True
        if result is None:
            label = "PACKED ✔ (label: see the order in the store console)"
        else:
            took = mmss(result.pick_duration_s)
            label = f"PACKED ✔  Bag label {result.bag_label} · {bags} bag(s) · picked in {took}"
            self.post_message(TaskPacked(result))
        self._result(f"{label}\nEnter: next task · Esc: queue", done=True)
        self.set_focus(None)

    def action_next(self) -> None:
        if self.packed:
            self.post_message(BackToQueue(claim_next=True))

    def action_back(self) -> None:
        if self.packed:
            self.post_message(BackToQueue())
        elif not self.query_one(Input).disabled:
            self.dismiss()
