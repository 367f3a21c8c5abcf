"""The pick list: walk the lines in order and scan every unit (a USB keyboard-wedge
scanner needs no focused field, see ``qc_tui.wedge``; a camera may scan too)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, ProgressBar, Static
from textual.worker import get_current_worker

from picker_app.context import PickerContext
from picker_app.messages import BackToQueue, ScanAccepted, ScanRead, ScanRefused
from picker_app.screens.exception import (
    ManualCodeScreen,
    ShortChoice,
    ShortScreen,
    SubstituteScreen,
)
from picker_app.screens.pack import PackScreen
from picker_app.widgets.feedback import ScanFeedback
from picker_app.widgets.pick_lines import LineView, PickLines
from qc_tui.api import describe
from qc_tui.banner import ConnectionBanner
from qc_tui.clock import mmss
from qc_tui.connection import worth_resending
from qc_tui.wedge import WedgeScreen
from scanners.camera import CameraScanner
from scanners.resolve import item_barcode
from scanners.types import Scan
from scanners.wedge import WedgeDetector
from shared.client import ApiError
from shared.schemas.picking import PickLinePublic, PickList

T = TypeVar("T")
WAIT_RECHECK_S = 5.0


class PickScreen(WedgeScreen):
    BINDINGS = [
        Binding("up", "cursor(-1)", "Line up", show=False),
        Binding("down", "cursor(1)", "Line down", show=False),
        Binding("s", "short('missing')", "Short"),
        Binding("d", "short('damaged')", "Damaged"),
        Binding("m", "manual", "Type code"),
        Binding("p", "pack", "Pack"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "leave", "Queue"),
    ]

    def __init__(self, ctx: PickerContext, pick: PickList) -> None:
        super().__init__(WedgeDetector(), ctx.monotonic)
        self.ctx = ctx
        self.pick = pick
        self.order_id = str(pick.order_id)
        self._busy = False  # an exception flow is running
        self._wait_checked = float("-inf")  # monotonic time of the last past-deadline reload

    @property
    def shorts(self) -> dict[str, int]:
        """Units short per line as the server has them, so a short whose answer was lost
        (or reported before a restart) still shows."""
        return {
            ln.sku_id: ln.ordered_qty - ln.quantity
            for ln in self.pick.lines
            if ln.ordered_qty is not None and ln.ordered_qty > ln.quantity
        }

    @property
    def feedback(self) -> ScanFeedback:
        return self.query_one(ScanFeedback)

    def compose(self) -> ComposeResult:
        yield Static(id="pick-title", classes="title")
        yield ConnectionBanner()
        with Horizontal(id="pick-stats"):
            yield Static(id="sla")
            yield Static(id="timer")
            yield Static(id="units")
            yield Static(id="camera")
        yield ProgressBar(id="progress", show_eta=False)
        yield Static(id="next-item")
        yield PickLines(id="lines")
        yield ScanFeedback(id="feedback")
        yield Footer()

    async def on_mount(self) -> None:
        await self.apply_pick(self.pick)
        self._tick()
        self.set_interval(1.0, self._tick)
        pending = len(self.ctx.scans.pending(self.order_id))
        if pending:
            self.feedback.info(f"{pending} earlier scan(s) of this order are being sent…")
        else:
            self.feedback.info("Scan the highlighted item")
        if self.ctx.camera is not None:
            self.run_camera(self.ctx.camera)
        self.watch(self.app, "online", self._online_changed, init=False)

    def _online_changed(self, online: bool) -> None:
        waiting = len(self.ctx.scans.pending(self.order_id))
        if not online and waiting:
            self.feedback.info(f"⋯ {waiting} scan(s) kept — sent when the connection is back")

    # --- showing the task -----------------------------------------------------------
    def views(self) -> list[LineView]:
        replaced = {ln.substitute_sku: ln.name for ln in self.pick.lines if ln.substitute_sku}
        shorts = self.shorts
        return [
            LineView(ln, shorts.get(ln.sku_id, 0), replaced.get(ln.sku_id))
            for ln in self.pick.lines
        ]

    def first_open(self) -> int:
        lines = self.pick.lines
        return next((i for i, ln in enumerate(lines) if ln.picked_qty < ln.quantity), 0)

    def line(self, sku_id: str) -> PickLinePublic | None:
        return next((ln for ln in self.pick.lines if ln.sku_id == sku_id), None)

    def selected(self) -> PickLinePublic | None:
        lines = self.pick.lines
        cursor = self.query_one(PickLines).cursor
        return lines[cursor] if 0 <= cursor < len(lines) else None

    async def apply_pick(self, pick: PickList, *, cursor: int | None = None) -> None:
        self.pick = pick
        await self.query_one(PickLines).set_lines(
            self.views(), self.first_open() if cursor is None else cursor
        )
        self._show_progress()

    async def _line_changed(self, *, follow: str | None = None) -> None:
        """Redraw after a count changed; the cursor goes to ``follow`` if it is still open,
        else to the first open line along the path."""
        lines = self.pick.lines
        target = next(
            (
                i
                for i, ln in enumerate(lines)
                if ln.sku_id == follow and ln.picked_qty < ln.quantity
            ),
            None,
        )
        await self.apply_pick(self.pick, cursor=target)

    def _show_progress(self) -> None:
        lines = self.pick.lines
        units = sum(ln.quantity for ln in lines)
        picked = sum(min(ln.picked_qty, ln.quantity) for ln in lines)
        open_lines = sum(1 for ln in lines if ln.picked_qty < ln.quantity)
        self.query_one("#pick-title", Static).update(
            f"Order {self.order_id[:8]} · {len(lines)} lines · {units} units"
        )
        self.query_one(ProgressBar).update(total=max(units, 1), progress=picked)
        self.query_one("#units", Static).update(f"{picked}/{units} units")
        nxt = self.selected()
        panel = self.query_one("#next-item", Static)
        panel.set_class(open_lines == 0, "-complete")
        if open_lines == 0:
            panel.update("All lines picked.\nPress P to pack.")
        elif nxt is not None:
            where = f"Aisle {nxt.aisle or '?'} > Bin {nxt.bin_code or '?'}"
            left = nxt.quantity - nxt.picked_qty
            panel.update(
                f"{where}\n{nxt.name}\ntake {left} of {nxt.quantity} · barcode {nxt.barcode}"
            )

    def _tick(self) -> None:
        clock = self.ctx.clock
        sla = self.query_one("#sla", Static)
        left = clock.seconds_until(self.pick.sla_deadline)
        sla.set_class(left is not None and left < 120, "-urgent")
        sla.update("SLA —" if left is None else f"SLA {mmss(left)}")
        spent = clock.seconds_since(self.pick.claimed_at)
        timer = self.query_one("#timer", Static)
        timer.set_class(spent is not None and spent > self.pick.estimate_s, "-over")
        shown = "—" if spent is None else mmss(max(spent, 0))
        timer.update(f"Time {shown} / est {mmss(self.pick.estimate_s)}")
        # an answer whose push was missed (socket down): ask again once a deadline is past
        due = [clock.seconds_until(ln.awaiting_customer_until) for ln in self._waiting()]
        if any(left is not None and left < -WAIT_RECHECK_S for left in due):
            now = self.ctx.monotonic()
            if now - self._wait_checked >= WAIT_RECHECK_S:
                self._wait_checked = now
                self.reload_worker()

    def scanned(self, scan: Scan) -> None:
        self.post_message(ScanRead(scan))

    # --- scans ----------------------------------------------------------------------
    def on_scan_read(self, message: ScanRead) -> None:
        if not self.is_active:
            self.notify("Scan ignored: finish the open dialog first", severity="warning")
            return
        self.count_code(message.scan.code, message.scan.source)

    def count_code(self, code: str, source: str) -> None:
        """Refuse at once what cannot be right; keep and send the rest."""
        scans = self.ctx.scans
        barcode = item_barcode(code)
        line = next((ln for ln in self.pick.lines if ln.barcode == barcode), None)
        if line is None:
            nxt = self.selected()
            hint = f" Next: {nxt.name} at {nxt.bin_code}." if nxt is not None else ""
            self.refuse(f"WRONG ITEM {code}: not in this order — put it back.{hint}")
            return
        in_flight = sum(1 for e in scans.pending(self.order_id) if item_barcode(e.code) == barcode)
        if line.picked_qty + in_flight >= line.quantity:
            self.refuse(f"TOO MANY: all {line.quantity} x {line.name} are picked — put it back")
            return
        scans.submit(order_id=self.order_id, code=code, source=source)
        if self.ctx.connection.online:
            self.feedback.info(f"⋯ {line.name} — counting")
        else:
            self.feedback.info(f"⋯ {line.name} — kept, sent when the connection is back")

    def refuse(self, text: str) -> None:
        self.app.bell()
        self.feedback.error(text)

    async def on_scan_accepted(self, message: ScanAccepted) -> None:
        result = message.result
        line = self.line(result.sku_id)
        if line is None:  # the list changed under us: fetch it (it includes this scan)
            self.reload_worker()
            self.feedback.ok(f"{result.sku_id}  {result.picked_qty}/{result.quantity}")
            return
        line.picked_qty, line.quantity = result.picked_qty, result.quantity
        await self._line_changed(follow=result.sku_id)
        text = f"{line.name}  {result.picked_qty}/{result.quantity}"
        if result.order_complete:
            text += "  ·  ALL PICKED — press P to pack"
        elif result.line_complete:
            text += "  ·  line done"
        self.feedback.ok(text)

    def on_scan_refused(self, message: ScanRefused) -> None:
        problem = message.problem
        if message.code == "wrong_item":
            expected = self.line(str(problem.get("expected_sku")))
            hint = f" Next: {expected.name} at {expected.bin_code}." if expected else ""
            self.refuse(f"WRONG ITEM {message.entry.code}: not in this order.{hint}")
        elif message.code == "over_pick":
            self.refuse(f"TOO MANY: {message.detail} — put it back")
        else:
            self.refuse(f"Scan refused: {message.detail}")
        self.reload_worker()  # the server's count is the truth

    # --- camera ---------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="camera")
    def run_camera(self, source: int | str | os.PathLike[str]) -> None:
        """Blocking camera work off the event loop; scans come back via call_from_thread."""
        worker = get_current_worker()
        app = self.app

        def deliver(scan: Scan) -> None:
            if not worker.is_cancelled:
                with contextlib.suppress(RuntimeError):  # the app is closing
                    app.call_from_thread(self.post_message, ScanRead(scan))

        try:
            camera = CameraScanner(source, deliver)
            camera.start()
        except Exception as exc:  # no such device, no decoder: the wedge still works
            app.call_from_thread(self._camera_state, f"camera off: {exc}")
            return
        app.call_from_thread(self._camera_state, "camera on")
        try:
            while not worker.is_cancelled and not camera.wait(0.2):
                pass
        finally:
            camera.stop()
        if not worker.is_cancelled:
            with contextlib.suppress(RuntimeError):
                app.call_from_thread(self._camera_state, "camera ended")

    def _camera_state(self, text: str) -> None:
        self.query_one("#camera", Static).update(text)

    # --- actions --------------------------------------------------------------------
    def action_cursor(self, step: int) -> None:
        lines = self.query_one(PickLines)
        lines.move_cursor(lines.cursor + step)
        self._show_progress()

    def action_manual(self) -> None:
        def typed(code: str | None) -> None:
            if code:
                self.count_code(code, "manual")

        self.app.push_screen(ManualCodeScreen(), typed)

    def action_reload(self) -> None:
        self.reload_worker()

    @work(exclusive=True, group="pick-list")
    async def reload_worker(self) -> None:
        await self.reload()

    async def reload(self, *, keep_cursor: bool = True) -> bool:
        """Fetch the list again (the server's counts are the truth)."""
        connection = self.ctx.connection
        try:
            pick = await self.ctx.client.pick_list(self.order_id)
        except ApiError as exc:
            connection.report(exc)
            return False
        connection.answered()
        await self.apply_pick(
            pick, cursor=self.query_one(PickLines).cursor if keep_cursor else None
        )
        return True

    def action_leave(self) -> None:
        """Back to the queue; the task stays this picker's (claiming returns it)."""
        self.post_message(BackToQueue())

    def action_short(self, reason: str) -> None:
        line = self.selected()
        if line is None or self._busy:
            return
        if self.ctx.scans.pending(self.order_id):
            self.feedback.info("Wait: scans are still being sent")
            return
        if line.awaiting_customer_until is not None:
            self.refuse(f"{line.name} waits on the customer's answer: pick the rest meanwhile")
            return
        if line.quantity == 0 or line.substitute_sku is not None:
            self.refuse(f"{line.name} is already reported short")
            return
        if line.picked_qty >= line.quantity:
            self.refuse(f"{line.name} is complete: nothing is short")
            return

        def chosen(choice: ShortChoice | None) -> None:
            if choice is not None:
                self.exception_flow(line, choice)

        self.app.push_screen(ShortScreen(line, reason), chosen)

    @work(exclusive=True, group="exception")
    async def exception_flow(self, line: PickLinePublic, choice: ShortChoice) -> None:
        """Short -> (substitute offered by the store's policy) -> substitute or refund."""
        client = self.ctx.client
        self._busy = True
        try:
            result = await self._recorded(
                "short",
                lambda: client.short_pick(
                    self.order_id,
                    sku_id=line.sku_id,
                    found_qty=choice.found,
                    reason=choice.reason,
                ),
            )
            if result is None:
                return
            await self.reload(keep_cursor=False)
            what = f"{result.short_qty} x {line.name} short ({choice.reason})"
            if result.awaiting_customer_until is not None:
                # policy ask: the customer chooses; the answer is pushed (customer_answered)
                self.feedback.info(f"{what} — substitute offered to the customer; pick on")
                return
            if result.policy != "substitute" or not result.substitutes:
                why = {
                    "never": "store never substitutes",
                    "ask": "none in stock to offer the customer",
                }.get(result.policy, "none in stock")
                self.feedback.info(f"{what} — no substitute ({why}); customer refunded")
                return
            pick = await self.app.push_screen_wait(SubstituteScreen(line, result))
            if pick is None:
                self.feedback.info(f"{what} — no substitute; customer refunded")
                return
            updated = await self._recorded(
                "substitute",
                lambda: client.substitute(
                    self.order_id,
                    sku_id=line.sku_id,
                    substitute_sku=pick.sku_id,
                    quantity=pick.quantity,
                ),
            )
            if updated is None:
                return
            skus = [ln.sku_id for ln in updated.lines]
            cursor = skus.index(pick.sku_id) if pick.sku_id in skus else None
            await self.apply_pick(updated, cursor=cursor)
            sub = self.line(pick.sku_id)
            where = f" at {sub.bin_code}" if sub is not None else ""
            self.feedback.ok(f"Substitute {pick.quantity} x {pick.name} added — pick it{where}")
        finally:
            self._busy = False

    async def _recorded(self, what: str, send: Callable[[], Awaitable[T]]) -> T | None:
        """Send a short or a substitute again until answered (the server applies each
        once); a refusal is said, the list reloaded, and the answer is None."""
        try:
            return await self.ctx.connection.send_until_answered(
                send,
                resend_on=worth_resending,
                waiting=lambda why: self.feedback.info(f"⋯ {what} not answered ({why}), resending"),
            )
        except ApiError as exc:
            self.refuse(f"{what.capitalize()} not recorded: {describe(exc)}")
            await self.reload()
            return None

    @work(group="customer-answer")
    async def customer_answered(self, event: dict[str, Any]) -> None:
        """The customer's answer (or the store's rule when none came in time) about a line
        that waited on them, pushed on the work socket: the list as the server has it now
        (a substitute line to pick, or the line dropped and refunded)."""
        line = self.line(str(event.get("sku_id")))
        name = line.name if line is not None else str(event.get("sku_id"))
        if not await self.reload():
            return
        who = "no answer: store rule" if event.get("decided_by") == "timeout" else "customer"
        sub = self.line(str(event.get("chosen_sku")))
        if event.get("status") == "SUBSTITUTED" and sub is not None:
            where = f" at {sub.bin_code}" if sub.bin_code else ""
            self.feedback.ok(f"{name}: {who} — substitute {sub.quantity} x {sub.name}{where}")
        else:
            self.feedback.info(f"{name}: {who} — no substitute, refunded")

    def _waiting(self) -> list[PickLinePublic]:
        return [ln for ln in self.pick.lines if ln.awaiting_customer_until is not None]

    def action_pack(self) -> None:
        waiting = self._waiting()
        if waiting:
            names = ", ".join(ln.name for ln in waiting)
            self.refuse(f"Waiting on the customer about {names}: pick the rest meanwhile")
            return
        open_lines = [ln for ln in self.pick.lines if ln.picked_qty < ln.quantity]
        if open_lines:
            names = ", ".join(ln.name for ln in open_lines[:2])
            more = f" and {len(open_lines) - 2} more" if len(open_lines) > 2 else ""
            self.refuse(f"Not complete: {names}{more}. Scan them or report short (S).")
            return
        if self.ctx.scans.pending(self.order_id):
            self.feedback.info("Wait: scans are still being sent")
            return
        self.app.push_screen(PackScreen(self.ctx, self.pick, shorts=dict(self.shorts)))
