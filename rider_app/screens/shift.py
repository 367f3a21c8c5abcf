"""Home: the shift toggle, the GPS, and waiting for an offer."""

from __future__ import annotations

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from qc_tui.api import describe
from qc_tui.banner import ConnectionBanner
from rider_app.context import RiderContext
from rider_app.messages import PollAsked, RiderAnswered
from rider_app.screens.trip import TripScreen
from rider_app.widgets.gps_status import GpsStatus
from shared.client import ApiError


class ShiftScreen(Screen[None]):
    BINDINGS = [
        Binding("s", "toggle_shift", "Start/end shift"),
        Binding("enter", "open_trip", "Trip", show=False),
        Binding("r", "refresh", "Refresh"),
        Binding("ctrl+q", "app.quit", "Quit"),
    ]

    def __init__(self, ctx: RiderContext) -> None:
        super().__init__()
        self.ctx = ctx
        self._changing = False

    def compose(self) -> ComposeResult:
        user = self.ctx.client.user
        who = f" · {user.name} ({user.login})" if user is not None else ""
        yield Static(f"qc rider{who}", id="shift-title", classes="title")
        yield ConnectionBanner()
        with Vertical(id="shift-box"):
            yield Static(id="duty")
            yield Static(id="rider-status", classes="muted")
            yield GpsStatus(self.ctx, id="gps")
            yield Static(id="shift-hint")
            yield Static("", id="shift-error")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "on_duty", self._show)
        self.watch(self.app, "rider_status", self._show)

    def on_screen_resume(self, _event: events.ScreenResume) -> None:
        self._show()
        self.post_message(PollAsked(rider=True, trip=False))

    def _show(self, _value: object = None) -> None:
        live = self.ctx.live
        duty = self.query_one("#duty", Static)
        duty.set_class(live.on_duty, "-on")
        duty.update("● ON DUTY" if live.on_duty else "○ OFF DUTY")
        self.query_one("#rider-status", Static).update(
            f"Status {live.rider_status or '…'}" if live.rider_status else "Status …"
        )
        hint = self.query_one("#shift-hint", Static)
        if live.on_duty and live.rider_status == "OFFLINE":
            # the dispatcher sets a rider who sent no fix for 2 minutes OFFLINE and only a
            # new shift makes them IDLE (offerable) again
            hint.update(
                "⚠ Dispatch lost your GPS signal and set you OFFLINE: no offers come.\n"
                "Check the GPS, then S: restart the shift."
            )
        elif live.trip is not None:
            hint.update("A trip is open — Enter: show it")
        elif live.on_duty:
            hint.update("Waiting for an offer… it appears here by itself.\nS: end the shift")
        else:
            hint.update("S: start your shift — offers come only on duty")

    def _error(self, text: str) -> None:
        self.query_one("#shift-error", Static).update(text)

    def action_toggle_shift(self) -> None:
        live = self.ctx.live
        if self._changing:
            return
        self._changing = True
        if live.on_duty and live.rider_status == "OFFLINE":
            self.change_shift(True, restart=True)
        else:
            self.change_shift(not live.on_duty)

    @work(exclusive=True, group="shift")
    async def change_shift(self, on_duty: bool, *, restart: bool = False) -> None:
        """``restart``: end and start the shift, the one way the server makes a rider it
        set OFFLINE (signal lost) offerable again."""
        client, connection = self.ctx.client, self.ctx.connection
        self._error("Starting the shift…" if on_duty else "Ending the shift…")
        try:
            if restart:
                self.post_message(RiderAnswered(await client.set_shift(on_duty=False)))
            rider = await client.set_shift(on_duty=on_duty)
        except ApiError as exc:
            connection.report(exc)
            if exc.code == "trip_in_progress":
                self._error("Finish or hand back the current trip first")
            else:
                self._error(f"Shift not changed: {describe(exc)}")
            return
        finally:
            self._changing = False
        connection.answered()
        self._error("")
        self.post_message(RiderAnswered(rider))
        self.post_message(PollAsked())

    def action_open_trip(self) -> None:
        if self.ctx.live.trip is not None and self.is_current:
            self.app.push_screen(TripScreen(self.ctx))

    def action_refresh(self) -> None:
        self.post_message(PollAsked(rider=True))
