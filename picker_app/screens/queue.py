"""The store's pick queue, most urgent first, with live SLA countdowns."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from picker_app.api import describe
from picker_app.clock import mmss
from picker_app.widgets.banner import ConnectionBanner
from shared.client import ApiError, ConnectionLost
from shared.schemas import PickTaskSummary

if TYPE_CHECKING:
    from picker_app.app import PickerApp

URGENT_S = 120  # the countdown turns red under two minutes


def sla_text(seconds: float | None) -> Text:
    if seconds is None:
        return Text("—")
    style = "bold red" if seconds < URGENT_S else "bold yellow" if seconds < 300 else "green"
    label = mmss(seconds) if seconds >= 0 else f"LATE {mmss(-seconds)}"
    return Text(label, style=style)


class QueueScreen(Screen[None]):
    BINDINGS = [
        Binding("enter", "claim", "Claim next", priority=True),
        Binding("r", "refresh", "Refresh"),
        Binding("ctrl+q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[PickTaskSummary] = []
        self._poll_timer: Timer | None = None
        self._claiming = False
        self._suspended = False

    @property
    def picker_app(self) -> PickerApp:
        return cast("PickerApp", self.app)

    def compose(self) -> ComposeResult:
        app = self.picker_app
        user = app.client.user
        who = f" · {user.name}" if user is not None else ""
        yield Static(f"qc picker · {app.store_id}{who}", id="queue-title", classes="title")
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
        app = self.picker_app
        self._stop_polling()
        delay = app.queue_poll_s
        try:
            tasks = await app.client.queue(str(app.store_id))
        except ApiError as exc:
            if isinstance(exc, ConnectionLost):
                app.report_offline(exc)
                delay = min(delay, app.retry_delay(0))
            self._status(f"Could not load the queue: {describe(exc)}", error=True)
        else:
            app.report_online()
            self.show_tasks(tasks)
        self._schedule_poll(delay)

    def show_tasks(self, tasks: list[PickTaskSummary]) -> None:
        app = self.picker_app
        for task in tasks:
            app.server_clock.observe(task.sla_deadline, task.seconds_left)
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
                sla_text(app.server_clock.seconds_until(task.sla_deadline)),
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
        clock = self.picker_app.server_clock
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
        app = self.picker_app
        self._status("Claiming the next order…")
        try:
            pick = await app.client.claim()
        except ApiError as exc:
            if isinstance(exc, ConnectionLost):
                app.report_offline(exc)
            if exc.code == "queue_empty":
                self._status("Nothing to pick right now.")
            else:
                self._status(f"Could not claim: {describe(exc)}", error=True)
            return
        finally:
            self._claiming = False
        app.report_online()
        app.open_task(pick)
