"""The base of the picker and rider apps: a terminal that talks to the server and shows, on
every screen, whether it answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.worker import Worker, WorkerFailed, WorkType

from qc_tui.api import RETRY_DELAYS
from qc_tui.clock import ServerClock
from qc_tui.connection import Connection
from shared.client import ApiError
from shared.schemas.ops import ServerClockPublic

CLOCK_SYNC_S = 30.0  # how often a terminal sets its clock by the server's again

AskClock = Callable[[], Awaitable[ServerClockPublic]]
R = TypeVar("R")


class ClosingApp(App[None]):
    """An app whose screens' workers may outlive their widgets while it closes."""

    _screens_closing = False

    def run_worker(
        self,
        work: WorkType[R],
        name: str | None = "",
        group: str = "default",
        description: str = "",
        exit_on_error: bool = True,
        start: bool = True,
        exclusive: bool = False,
        thread: bool = False,
    ) -> Worker[R]:
        """Textual's, but a worker of the app's started once it began to close (a timer's
        poll, a push's refresh) is cancelled before it runs: the app's unmount closes its
        client, and a call started after that fails its worker ("the client has been
        closed"). Its screens' workers go with the screens."""
        worker = super().run_worker(
            work, name, group, description, exit_on_error, start, exclusive, thread
        )
        if self._screens_closing:
            worker.cancel()
        return worker

    async def _close_all(self) -> None:
        self._screens_closing = True
        await super()._close_all()

    def _handle_exception(self, error: Exception) -> None:
        # Textual removes a screen's widgets before it cancels that screen's workers: a call
        # answered in between resumes into a screen without its widgets. Closing, that is
        # not the app's failure. (Cancelling the workers first instead cancels a worker in
        # the middle of removing widgets, and Textual's removal with it.)
        if (
            self._screens_closing
            and isinstance(error, WorkerFailed)
            and isinstance(error.error, NoMatches)
        ):
            self.log.worker("after its screen's widgets went, as the app closed", error.error)
            return
        super()._handle_exception(error)


class ServerApp(ClosingApp):
    """``online`` (a reactive the banners follow) mirrors ``connection``; when the server is
    lost the app probes it until it answers, then ``reconnected`` runs."""

    # Textual's own ctrl+q is hidden: shown here, every footer says how to quit
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    online: reactive[bool] = reactive(True)
    # the reactive that counts what is kept to send later; the banner follows it too
    KEPT_COUNT = ""

    def __init__(
        self,
        *,
        health: Callable[[], Awaitable[object]],
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        super().__init__()
        self.connection = Connection(
            health, retry_delays=retry_delays, on_change=self._connection_changed
        )

    def _connection_changed(self, online: bool) -> None:
        self.online = online
        if online:
            self.reconnected()
        else:
            self.probe_connection()

    def reconnected(self) -> None:
        """The server answers again (after being lost)."""

    def keep_time(self, clock: ServerClock, ask: AskClock | None) -> None:
        """Set ``clock`` by the server's now and every ``CLOCK_SYNC_S``: countdowns, pick
        timers and the rider's fixes then run on the server's time at its speed (a demo's
        world runs faster than the wall). ``ask`` None (a test's fake server): not at all."""
        if ask is not None:
            self._keep_time(clock, ask)

    @work(exclusive=True, group="server-clock")
    async def _keep_time(self, clock: ServerClock, ask: AskClock) -> None:
        attempt = 0
        while True:
            try:
                stated = await ask()
            except ApiError as exc:
                if exc.status == 404:  # a server without a clock to state: keep estimating
                    return
                self.connection.report(exc)
                delay = self.connection.retry_delay(attempt)
                attempt += 1
            except (RuntimeError, ValueError):  # closing down, or an unreadable answer
                delay = CLOCK_SYNC_S
            else:
                clock.sync(stated.now, stated.speed)
                attempt, delay = 0, CLOCK_SYNC_S
            await asyncio.sleep(delay)

    def kept_note(self) -> str:
        """What the banner adds while offline: what is kept to send once back."""
        return ""

    @work(exclusive=True, group="probe")
    async def probe_connection(self) -> None:
        await self.connection.probe()
