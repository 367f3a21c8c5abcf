"""The store's pick queue, most urgent first, with live SLA countdowns."""

from __future__ import annotations

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from picker_app.context import PickerContext
from picker_app.messages import TaskClaimed
from qc_tui.api import describe
from qc_tui.banner import ConnectionBanner
from qc_tui.clock import sla_text
from shared.client import ApiError, ConnectionLost
from shared.schemas.picking import PickTaskSummary

PUSHED_POLL_S = 30.0


class QueueScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "claim", "Claim next", priority=True),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self, ctx: PickerContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.tasks: list[PickTaskSummary] = []
        self._poll_timer: Timer | None = None
        self._claiming = False
        self._suspended = False

    def compose(self) -> ComposeResult:
        user = self.ctx.client.user
        who = f" · {user.name}" if user is not None else ""
        yield Static(f"qc picker · {self.ctx.store_id}{who}", id="queue-title", classes="title")
        yield ConnectionBanner()
        yield DataTable(id="queue-table", cursor_type="row", zebra_stripes=True)
        yield Static("Loading the queue…", id="queue-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("#", key="rank", width=3)
        table.add_column("Order", key="order", width=10)
        table.add_column("Status", key="status", width=9)
        table.add_column("Lines", key="lines", width=5)
        table.add_column("Units", key="units", width=5)
        table.add_column("SLA", key="sla", width=10)
        self.set_interval(1.0, self._tick)
        self.refresh_queue()

    def on_screen_resume(self, _event: events.ScreenResume) -> None:
        if self._suspended:  # back from a task: the queue has moved on
            self._suspended = False
            self.refresh_queue()

    def on_screen_suspend(self, _event: events.ScreenSuspend) -> None:
        self._suspended = True
        self._stop_polling()

    # --- polling --------------------------------------------------------------------
    def _stop_polling(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None

    def _schedule_poll(self, delay: float) -> None:
        """One poll at a time: the next is scheduled only when the last one has finished."""
        self._stop_polling()
        if self.is_active:
            self._poll_timer = self.set_timer(delay, self.refresh_queue)

    @work(exclusive=True, group="queue")
    async def refresh_queue(self) -> None:
        ctx = self.ctx
        self._stop_polling()
        # with the work socket up the queue comes pushed: a poll is only a safety net
        delay = max(ctx.queue_poll_s, PUSHED_POLL_S) if ctx.pushed else ctx.queue_poll_s
        try:
            tasks = await ctx.client.queue(str(ctx.store_id))
        except ApiError as exc:
            if isinstance(exc, ConnectionLost):
                ctx.connection.lost(exc)
                delay = min(delay, ctx.connection.retry_delay(0))
            self._status(f"Could not load the queue: {describe(exc)}", error=True)
        else:
            ctx.connection.answered()
            self.show_tasks(tasks)
        self._schedule_poll(delay)

    def show_tasks(self, tasks: list[PickTaskSummary]) -> None:
        clock = self.ctx.clock
        for task in tasks:
            clock.observe(task.sla_deadline, task.seconds_left)
        self.tasks = tasks
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for rank, task in enumerate(tasks, 1):
            table.add_row(
                str(rank),
                str(task.order_id)[:8],
                task.status.lower(),
                str(task.lines),
                str(task.units),
                sla_text(clock.seconds_until(task.sla_deadline)),
                key=str(task.order_id),
            )
        if tasks:
            table.move_cursor(row=min(keep, len(tasks) - 1))
        waiting = sum(1 for t in tasks if t.status == "WAITING")
        if not tasks:
            self._status("No orders waiting. New orders appear here by themselves.")
        else:
            self._status(f"{waiting} waiting · {len(tasks) - waiting} being picked · Enter: claim")

    def _tick(self) -> None:
        clock = self.ctx.clock
        table = self.query_one(DataTable)
        for task in self.tasks:
            table.update_cell(
                str(task.order_id), "sla", sla_text(clock.seconds_until(task.sla_deadline))
            )

    def _status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#queue-status", Static)
        status.set_class(error, "-error")
        status.update(text)

    # --- actions --------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.refresh_queue()

    def action_claim(self) -> None:
        if not self._claiming:
            self._claiming = True
            self.claim_next()

    @work(exclusive=True, group="claim")
    async def claim_next(self) -> None:
        """The server hands out the most urgent waiting order (or this picker's own
        unfinished one), never the same one to two pickers."""
        connection = self.ctx.connection
        self._status("Claiming the next order…")
        try:
            pick = await self.ctx.client.claim()
        except ApiError as exc:
            connection.report(exc)
            if exc.code == "queue_empty":
                self._status("Nothing to pick right now.")
            else:
                self._status(f"Could not claim: {describe(exc)}", error=True)
            return
        finally:
            self._claiming = False
        connection.answered()
        self.post_message(TaskClaimed(pick))
